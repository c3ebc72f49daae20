"""Hand-computed values of the shared losses (pysalient.losses) and weight fills (pysalient.layers.weight_init)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pysalient.layers.weight_init import c2_msra_fill, c2_xavier_fill, normal_fill, prior_probability_bias
from pysalient.losses import dice_loss, giou_loss, iou_loss, mean_over_workers, sigmoid_focal_loss, smooth_l1_loss


def test_focal_loss_matches_the_formula_by_hand() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64)
    targets = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    expected = 0.0
    for x, t in zip(logits.tolist(), targets.tolist()):
        p = 1 / (1 + math.exp(-x))
        p_t = p if t == 1 else 1 - p
        alpha_t = 0.25 if t == 1 else 0.75
        expected += -alpha_t * (1 - p_t) ** 2 * math.log(p_t)
    assert sigmoid_focal_loss(logits, targets).item() == pytest.approx(expected, rel=1e-12)
    # gamma 0 and no balancing: plain summed binary cross-entropy
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    assert sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0).item() == pytest.approx(bce.item(), rel=1e-12)


def test_dice_loss_by_hand() -> None:
    logits = torch.tensor([[0.0, 0.0], [100.0, -100.0]], dtype=torch.float64)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    # row 0: s = (0.5, 0.5): 1 - 2*0.5 / (0.5 + 1 + 1e-4); row 1: a perfect mask, loss ~ 1e-4 / 2
    expected = torch.tensor([1 - 1.0 / (1.5 + 1e-4), 1 - 2.0 / (2.0 + 1e-4)], dtype=torch.float64)
    torch.testing.assert_close(dice_loss(logits, targets), expected)


def test_smooth_l1_loss_below_and_above_beta() -> None:
    input = torch.tensor([0.0, 0.05, 0.5, -2.0])
    target = torch.zeros(4)
    beta = 1 / 9  # S4Net's sigma 3
    expected = torch.tensor([0.0, 0.5 * 0.05**2 * 9, 0.5 - 0.5 / 9, 2.0 - 0.5 / 9])
    torch.testing.assert_close(smooth_l1_loss(input, target, beta), expected)
    torch.testing.assert_close(smooth_l1_loss(input, target, 0.0), input.abs())
    with pytest.raises(ValueError, match="beta must be >= 0"):
        smooth_l1_loss(input, target, -1.0)


def test_iou_and_giou_losses_by_hand() -> None:
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    targets = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0]])
    iou = torch.tensor([1 / 7, 1.0, 0.0])
    torch.testing.assert_close(iou_loss(boxes, targets, mode="linear"), 1 - iou, atol=1e-6, rtol=0)
    torch.testing.assert_close(iou_loss(boxes[:2], targets[:2]), -torch.log(iou[:2]), atol=1e-5, rtol=0)
    # GIoU = IoU - (enclosing - union) / enclosing: enclosing areas 9, 1, 3; unions 7, 1, 2
    giou = torch.tensor([1 / 7 - 2 / 9, 1.0, 0.0 - 1 / 3])
    torch.testing.assert_close(giou_loss(boxes, targets), 1 - giou, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="mode must be"):
        iou_loss(boxes, targets, mode="square")
    # FCOS' smoothed form -log((I + 1) / (U + 1)): intersections 1, 1, 0 and unions 7, 1, 2; finite when disjoint.
    smoothed = torch.tensor([-math.log(2 / 8), 0.0, -math.log(1 / 3)])
    torch.testing.assert_close(iou_loss(boxes, targets, smooth=1.0), smoothed, atol=1e-6, rtol=0)


def test_normaliser_without_distributed_is_the_count_at_least_one() -> None:
    assert mean_over_workers(0, torch.device("cpu")) == 1.0
    assert mean_over_workers(7, torch.device("cpu")) == 7.0


def test_weight_fills_and_prior_bias() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 256, 3)
    c2_msra_fill(conv)
    fan_out = 256 * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05) and torch.all(conv.bias == 0)
    c2_xavier_fill(conv)
    bound = math.sqrt(3 / (64 * 9))  # kaiming_uniform with a=1: gain 1, fan_in
    assert conv.weight.abs().max().item() <= bound and conv.weight.abs().max().item() > 0.9 * bound
    normal_fill(conv, std=0.01)
    assert conv.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.sigmoid(torch.tensor(prior_probability_bias(0.01))).item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="prior must lie in"):
        prior_probability_bias(1.0)
