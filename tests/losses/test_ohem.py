"""Online hard example mining of negatives."""

from __future__ import annotations

import pytest
import torch

from pysalient.losses.ohem import hardest_negatives_loss


def test_sums_the_hardest_negatives_over_the_fixed_count() -> None:
    losses = torch.tensor([5.0, 1.0, 4.0, 3.0, 2.0, 9.0], requires_grad=True)
    negatives = torch.tensor([True, True, True, True, True, False])  # 9 is a positive, never mined
    loss = hardest_negatives_loss(losses, negatives, 2)
    assert loss.item() == pytest.approx((5 + 4) / 2)
    loss.backward()
    assert losses.grad.tolist() == [0.5, 0.0, 0.5, 0.0, 0.0, 0.0]


def test_fewer_negatives_than_the_count_keep_the_divisor() -> None:
    losses = torch.tensor([2.0, 6.0])
    assert hardest_negatives_loss(losses, torch.tensor([True, True]), 256).item() == pytest.approx(8 / 256)
    none = hardest_negatives_loss(losses.requires_grad_(), torch.tensor([False, False]), 256)
    assert none.item() == 0.0 and none.requires_grad


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="num_hardest"):
        hardest_negatives_loss(torch.ones(3), torch.ones(3, dtype=torch.bool), 0)
    with pytest.raises(ValueError, match="both be \\[N\\]"):
        hardest_negatives_loss(torch.ones(3), torch.ones(4, dtype=torch.bool), 2)
