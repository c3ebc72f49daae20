"""Dice loss of mask probabilities (Milletari et al., V-Net, 3DV'16; the form SparseInst and SOLO use)."""

from __future__ import annotations

from torch import Tensor


def dice_loss(logits: Tensor, targets: Tensor, eps: float = 1e-4) -> Tensor:
    """Per-mask dice loss ``1 - 2<s, t> / (|s|^2 + |t|^2 + eps)`` with ``s = sigmoid(logits)``.

    Args:
        logits: [M, P] mask logits (P pixels per mask).
        targets: [M, P] targets in [0, 1].
        eps: added to the denominator after both squared norms (SparseInst's 1e-4), so empty pairs give 1.

    Returns:
        [M] losses (sum or average them as the recipe says).
    """
    probabilities = logits.sigmoid()
    numerator = 2 * (probabilities * targets).sum(-1)
    denominator = (probabilities * probabilities).sum(-1) + (targets * targets).sum(-1)
    return 1 - numerator / (denominator + eps)
