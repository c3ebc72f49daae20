"""Reference of ``dice_cost``: the SparseInst dice matching score."""

from __future__ import annotations

import torch
from torch import Tensor


def dice_cost(pred_logits: Tensor, targets: Tensor) -> Tensor:
    """SparseInst dice matching score, literally the official formula (see ``pysalient.ops.dice_cost``).

    Args:
        pred_logits: [N, P] mask logits, floating point.
        targets: [K, P] target masks, floating point, bool or uint8.

    Returns:
        [N, K] dice coefficients, float32 (float64 for float64 ``pred_logits``).
    """
    dtype = torch.float64 if pred_logits.dtype == torch.float64 else torch.float32
    probs = pred_logits.to(dtype).sigmoid()
    target_values = targets.to(dtype)
    numerator = 2 * torch.matmul(probs, target_values.t())
    denominator = (probs * probs).sum(-1)[:, None] + (target_values * target_values).sum(-1)[None, :]
    return numerator / (denominator + 1e-4)
