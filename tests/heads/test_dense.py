"""conv_tower: layer layout (official key indices), initialisation and bad arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pysalient.heads.dense import conv_tower


def test_layout_without_and_with_group_norm() -> None:
    plain = conv_tower(3, 8, 16)
    assert [type(layer) for layer in plain] == [nn.Conv2d, nn.ReLU] * 3
    assert sorted({key.split(".")[0] for key in plain.state_dict()}) == ["0", "2", "4"]  # SparseInst's keys
    assert plain[0].in_channels == 8 and plain[2].in_channels == 16
    normed = conv_tower(2, 8, 16, norm_groups=4)
    assert [type(layer) for layer in normed] == [nn.Conv2d, nn.GroupNorm, nn.ReLU] * 2
    assert sorted({key.split(".")[0] for key in normed.state_dict()}) == ["0", "1", "3", "4"]  # FCOS' keys


def test_c2_msra_init_and_values() -> None:
    torch.manual_seed(0)
    tower = conv_tower(1, 4, 8)
    assert tower[0].bias.abs().sum() == 0
    # Kaiming normal, fan-out (8 x 3 x 3 = 72), ReLU gain: std sqrt(2 / 72) = 0.1667.
    assert abs(tower[0].weight.std().item() - (2 / 72) ** 0.5) < 0.03
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(tower(x), torch.relu(tower[0](x)))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="num_convs"):
        conv_tower(0, 4, 8)
    with pytest.raises(ValueError, match="divisible"):
        conv_tower(1, 4, 10, norm_groups=4)
    with pytest.raises(ValueError, match="init"):
        conv_tower(1, 4, 8, init="xavier")
