"""The FCOS head: official names, initialisation, centerness on the class tower, per-level scales."""

from __future__ import annotations

import math

import torch

from pysalient.heads.fcos import FCOSHead
from pysalient.layers.scale import Scale


def test_scale_by_hand() -> None:
    scale = Scale(2.5)
    assert scale(torch.tensor([1.0, -2.0])).tolist() == [2.5, -5.0] and list(scale.state_dict()) == ["scale"]


def test_names_init_and_outputs() -> None:
    torch.manual_seed(0)
    head = FCOSHead(64, 3, channels=32, num_convs=2, num_scales=6)
    names = set(head.state_dict())
    assert {"cls_tower.0.weight", "cls_tower.1.weight", "cls_tower.3.weight", "bbox_tower.4.bias"} <= names
    assert {"cls_logits.bias", "bbox_pred.weight", "centerness.weight", "scales.5.scale"} <= names
    torch.testing.assert_close(head.cls_logits.bias, torch.full((3,), -math.log(99)))
    features = [torch.randn(2, 64, 8, 8), torch.randn(2, 64, 4, 4)]
    logits, distances, centerness = head(features)
    assert [tuple(x.shape) for x in logits] == [(2, 3, 8, 8), (2, 3, 4, 4)]
    assert distances[1].shape == (2, 4, 4, 4) and bool((distances[0] > 0).all()) and centerness[0].shape == (2, 1, 8, 8)
    # bbox_reg = exp(scale_l * bbox_pred(tower)): doubling the level-1 scale squares its distances.
    with torch.no_grad():
        head.scales[1].scale.fill_(2.0)
    torch.testing.assert_close(head(features)[1][1], distances[1] ** 2)
    scripted = torch.jit.script(head)
    for a, b in zip(head(features)[0], scripted(features)[0]):
        assert torch.equal(a, b)


def test_centerness_reads_the_class_tower() -> None:
    head = FCOSHead(32, 1, channels=32, num_convs=1)
    features = [torch.randn(1, 32, 6, 6)]
    before = head(features)[2][0]
    with torch.no_grad():
        head.bbox_tower[0].weight.mul_(3.0)  # the box tower does not change the centerness
    assert torch.equal(head(features)[2][0], before)
    other = FCOSHead(32, 1, channels=32, num_convs=1, centerness_on_reg=True)
    with torch.no_grad():
        other.bbox_tower[0].weight.mul_(3.0)
    assert other(features)[2][0].shape == before.shape
