"""Dice matching cost of SparseInst: how well each predicted mask covers each target mask."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def dice_cost(pred_logits: Tensor, targets: Tensor) -> Tensor:
    """Dice coefficient between every predicted mask and every target mask (SparseInst, CVPR'22, Sec. 3.3).

    ``D[i, j] = 2 <sigmoid(p_i), t_j> / (||sigmoid(p_i)||^2 + ||t_j||^2 + 1e-4)``, exactly the official
    ``dice_score`` of the SparseInst matcher (the epsilon is added after both squared norms). Computed in
    float32 (float64 when ``pred_logits`` is float64); half-precision logits are widened before the sigmoid.

    It is a matching score, not a loss: the op has no derivative, and the result never requires grad (the
    inputs are detached), as in the official matcher which runs under ``torch.no_grad()``. Higher is a better
    match; use ``maximize=True`` (or negate it) when feeding it to :func:`linear_sum_assignment`.

    Args:
        pred_logits: [N, P] mask logits of the N predictions, P pixels each (flattened), any floating dtype.
        targets: [K, P] target masks at the same resolution, floating point in [0, 1], bool or uint8 (0/1).
            Their values are not checked (like torchvision's ops with NaN boxes, and because a check would cost a
            device synchronisation on CUDA): targets outside [0, 1] (uint8 values above 1 included) or non-finite
            ones give coefficients outside [0, 1) or NaN, computed by the same formula.

    Returns:
        [N, K] dice coefficients in [0, 1), float32 (float64 for float64 ``pred_logits``). P = 0 gives zeros.
    """
    pred_logits = pred_logits.detach()
    targets = targets.detach()
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.dice_cost(pred_logits, targets)
    return torch.ops.pysalient.dice_cost(pred_logits, targets)


class DiceCost(nn.Module):
    """Module form of :func:`dice_cost`."""

    def forward(self, pred_logits: Tensor, targets: Tensor) -> Tensor:
        """Returns the [N, K] dice coefficients of ``pred_logits`` [N, P] against ``targets`` [K, P]."""
        return dice_cost(pred_logits, targets)
