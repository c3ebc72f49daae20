"""Online hard example mining of negatives (Shrivastava et al., CVPR'16, as S4Net's detector uses it)."""

from __future__ import annotations

import torch
from torch import Tensor


def hardest_negatives_loss(losses: Tensor, negatives: Tensor, num_hardest: int) -> Tensor:
    """The sum of the ``num_hardest`` largest losses among the negatives, divided by ``num_hardest``.

    With fewer negatives than ``num_hardest`` every negative counts and the divisor stays ``num_hardest`` (S4Net's
    ``top_k`` then ``/ 256``). Gradients flow to the selected losses only.

    Args:
        losses: [N] per-sample losses (e.g. cross-entropies of every anchor).
        negatives: bool [N], the samples that may be selected.
        num_hardest: how many to keep (S4Net: 256), >= 1.

    Returns:
        Scalar, 0 (with a gradient path) when there is no negative.

    Raises:
        ValueError: ``num_hardest`` < 1 or shapes that differ.
    """
    if num_hardest < 1:
        raise ValueError(f"hardest_negatives_loss: num_hardest must be >= 1, got {num_hardest}")
    if losses.shape != negatives.shape or losses.dim() != 1:
        raise ValueError(
            f"hardest_negatives_loss: losses and negatives must both be [N], got {tuple(losses.shape)} and "
            f"{tuple(negatives.shape)}"
        )
    candidates = losses[negatives]
    hardest = torch.sort(candidates, descending=True).values[:num_hardest]
    return hardest.sum() / float(num_hardest)
