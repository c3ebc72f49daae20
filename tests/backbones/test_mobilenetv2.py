"""MobileNetV2 backbone: structure of the paper's network, widths, strides, training."""

from __future__ import annotations

import pytest
import torch

from pysalient.backbones import build_backbone
from pysalient.backbones.mobilenetv2 import make_divisible


def test_width_one_has_the_papers_feature_extractor() -> None:
    model = build_backbone("mobilenetv2")
    # MobileNetV2 1.0 of the paper without its classifier and final 1x1 conv to 1280 channels.
    assert sum(p.numel() for p in model.parameters()) == 1_811_712
    assert model.out_channels == {"res3": 32, "res4": 96, "res5": 320}
    assert model.out_strides == {"res3": 8, "res4": 16, "res5": 32}


@pytest.mark.parametrize(("width", "channels"), [(0.5, (16, 48, 160)), (0.35, (16, 32, 112)), (1.4, (48, 136, 448))])
def test_width_multiplier_scales_channels(width: float, channels: tuple) -> None:
    model = build_backbone("mobilenetv2", width_multiplier=width)
    outputs = model(torch.randn(2, 3, 96, 128))
    assert tuple(value.shape[1] for value in outputs.values()) == channels
    assert [tuple(value.shape[2:]) for value in outputs.values()] == [(12, 16), (6, 8), (3, 4)]


def test_make_divisible_never_drops_more_than_ten_percent() -> None:
    assert make_divisible(32 * 0.35) == 16 and make_divisible(24) == 24 and make_divisible(17) == 16
    assert make_divisible(13) == 16  # 8 would lose 38 %


def test_residual_blocks_add_their_input() -> None:
    model = build_backbone("mobilenetv2").eval()
    block = model.stages[0][2]  # second 24-channel block: stride 1, 24 -> 24
    assert block.use_residual
    for parameter in block.conv[-1].norm.parameters():
        parameter.data.zero_()  # projection output becomes 0, so the block is the identity
    x = torch.randn(1, 24, 8, 8)
    torch.testing.assert_close(block(x), x)


def test_train_step_reaches_every_parameter_and_scripts() -> None:
    model = build_backbone("mobilenetv2", width_multiplier=0.5)
    sum(value.mean() for value in model(torch.randn(2, 3, 64, 64)).values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    scripted = torch.jit.script(model)
    for name, value in model(x).items():
        torch.testing.assert_close(scripted(x)[name], value)
