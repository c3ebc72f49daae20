"""RetinaNet head: module layout, the focal-loss prior, shared weights over levels, outputs in anchor-head layout."""

from __future__ import annotations

import math

import pytest
import torch

from pysalient.heads.anchor_head import flatten_anchor_outputs
from pysalient.heads.retinanet import RetinaNetHead


def test_layout_init_and_prior() -> None:
    torch.manual_seed(0)
    head = RetinaNetHead(32, 9, 3, num_convs=4)
    convs = [m for m in head.cls_subnet if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and len([m for m in head.bbox_subnet if isinstance(m, torch.nn.Conv2d)]) == 4
    assert head.cls_score.out_channels == 27 and head.bbox_pred.out_channels == 36
    torch.testing.assert_close(head.cls_score.bias, torch.full((27,), -math.log(99.0)))
    assert abs(float(convs[0].weight.std()) - 0.01) < 0.002 and bool((head.bbox_pred.bias == 0).all())
    # with the prior every anchor starts at probability 0.01, whatever the features
    logits, _ = head([torch.zeros(1, 32, 3, 3)])
    torch.testing.assert_close(torch.sigmoid(logits[0]), torch.full_like(logits[0], 0.01))


def test_same_weights_on_every_level_and_anchor_major_outputs() -> None:
    torch.manual_seed(0)
    head = RetinaNetHead(8, 2, 3, channels=4, num_convs=2)
    level = torch.randn(1, 8, 4, 5)
    logits, deltas = head([level, level[:, :, :2, :3]])
    assert logits[0].shape == (1, 6, 4, 5) and deltas[1].shape == (1, 8, 2, 3)
    torch.testing.assert_close(logits[1], head([level[:, :, :2, :3]])[0][0])
    rows = flatten_anchor_outputs(logits, 3)
    assert rows.shape == (1, 4 * 5 * 2 + 2 * 3 * 2, 3)
    torch.testing.assert_close(rows[0, 1], logits[0][0, 3:6, 0, 0])  # anchor 1 of cell (0, 0)


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="positive"):
        RetinaNetHead(8, 0, 1)
    with pytest.raises(ValueError, match="prior"):
        RetinaNetHead(8, 9, 1, prior=1.0)
