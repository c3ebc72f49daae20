"""Sigmoid focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV'17, Eq. 5)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Summed sigmoid focal loss, the fvcore/torchvision formula (``reduction="sum"``).

    Args:
        logits: [...] logits.
        targets: [...] same shape, 0/1 (or soft) targets.
        alpha: weight of positives (1 - alpha for negatives); a negative value disables the balancing.
        gamma: focusing exponent (0: plain binary cross-entropy).

    Returns:
        Scalar sum over all elements.
    """
    probabilities = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probabilities * targets + (1 - probabilities) * (1 - targets)
    loss = cross_entropy * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.sum()
