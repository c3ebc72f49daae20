"""FCOSLoss on a hand-sized case: the three losses computed from their formulas."""

from __future__ import annotations

import math

import pytest
import torch

from pysalient.heads.fcos_loss import FCOSLoss, flatten_levels


def focal(logit: float, target: float, alpha: float = 0.25, gamma: float = 2.0) -> float:
    p = 1 / (1 + math.exp(-logit))
    if target == 1:
        return -alpha * (1 - p) ** gamma * math.log(p)
    return -(1 - alpha) * p**gamma * math.log(1 - p)


def test_flatten_levels_is_row_major_per_level() -> None:
    a = torch.arange(12.0).reshape(1, 3, 2, 2)
    b = torch.arange(3.0).reshape(1, 3, 1, 1) + 100
    flat = flatten_levels([a, b])
    assert flat.shape == (1, 5, 3)
    assert flat[0, 1].tolist() == [1.0, 5.0, 9.0] and flat[0, 4].tolist() == [100.0, 101.0, 102.0]


def test_losses_by_hand() -> None:
    # One level of stride 8 with 2 x 2 points at (4, 4), (12, 4), (4, 12), (12, 12); one image, one box of class 1
    # containing only (4, 4) and (12, 4).
    loss = FCOSLoss([8], num_classes=2, size_ranges=[(-1.0, 64.0)])
    logits = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]], [[1.5, -0.5], [-2.0, 0.3]]]])  # [1, 2, 2, 2]
    distances = torch.tensor(
        [[[[3.0, 10.0], [1.0, 1.0]], [[2.0, 2.0], [1.0, 1.0]], [[20.0, 8.0], [1.0, 1.0]], [[6.0, 6.0], [1.0, 1.0]]]]
    )  # [1, 4, 2, 2] (l, t, r, b)
    centerness = torch.tensor([[[[0.2, -0.4], [0.0, 0.0]]]])
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 20.0, 10.0]]), "labels": torch.tensor([1])}]
    losses = loss([logits], [distances], [centerness], targets)
    # Classification: points 0 and 1 are positives of class 1; everything else is a negative.
    flat = logits[0].reshape(2, 4).t()
    wanted = torch.zeros(4, 2)
    wanted[0, 1] = wanted[1, 1] = 1
    expected_cls = sum(focal(flat[i, c].item(), wanted[i, c].item()) for i in range(4) for c in range(2)) / (2 + 1)
    assert losses["loss_cls"].item() == pytest.approx(expected_cls, rel=1e-5)
    # Regression targets: (4, 4) -> (4, 4, 16, 6), (12, 4) -> (12, 4, 8, 6).
    target_ltrb = [(4.0, 4.0, 16.0, 6.0), (12.0, 4.0, 8.0, 6.0)]
    predicted_ltrb = [(3.0, 2.0, 20.0, 6.0), (10.0, 2.0, 8.0, 6.0)]
    ious, weights = [], []
    for (pl, pt, pr, pb), (tl, tt, tr, tb) in zip(predicted_ltrb, target_ltrb):
        intersection = (min(pl, tl) + min(pr, tr)) * (min(pt, tt) + min(pb, tb))
        union = (pl + pr) * (pt + pb) + (tl + tr) * (tt + tb) - intersection
        ious.append(-math.log((intersection + 1) / (union + 1)))
        weights.append(math.sqrt(min(tl, tr) / max(tl, tr) * min(tt, tb) / max(tt, tb)))
    expected_reg = sum(i * w for i, w in zip(ious, weights)) / sum(weights)
    assert losses["loss_reg"].item() == pytest.approx(expected_reg, rel=1e-5)
    expected_ctr = (
        sum(
            -(w * math.log(1 / (1 + math.exp(-x))) + (1 - w) * math.log(1 - 1 / (1 + math.exp(-x))))
            for x, w in zip([0.2, -0.4], weights)
        )
        / 2
    )
    assert losses["loss_centerness"].item() == pytest.approx(expected_ctr, rel=1e-5)


def test_no_positive_keeps_every_prediction_in_the_graph() -> None:
    loss = FCOSLoss([8, 16], num_classes=1)
    logits = [torch.zeros(2, 1, 4, 4, requires_grad=True), torch.zeros(2, 1, 2, 2, requires_grad=True)]
    distances = [torch.ones(2, 4, 4, 4, requires_grad=True), torch.ones(2, 4, 2, 2, requires_grad=True)]
    centerness = [torch.zeros(2, 1, 4, 4, requires_grad=True), torch.zeros(2, 1, 2, 2, requires_grad=True)]
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = loss(logits, distances, centerness, [empty, empty])
    # Every point is a negative at p = 0.5: focal = 0.75 * 0.25 * log 2 each, over 0 positives + 2 images.
    expected = 40 * 0.75 * 0.25 * math.log(2) / 2
    assert losses["loss_cls"].item() == pytest.approx(expected, rel=1e-5)
    assert losses["loss_reg"].item() == 0.0 and losses["loss_centerness"].item() == 0.0
    sum(losses.values()).backward()
    assert all(tensor.grad is not None for tensor in logits + distances + centerness)


def test_mismatched_batch_raises() -> None:
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        FCOSLoss([8], 1)([torch.zeros(2, 1, 2, 2)], [torch.ones(2, 4, 2, 2)], [torch.zeros(2, 1, 2, 2)], [{}])
