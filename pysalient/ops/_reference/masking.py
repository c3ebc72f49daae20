"""Reference of ``roi_masking`` (S4Net RoIMasking) and the masks it multiplies the features by."""

from __future__ import annotations

import torch
from torch import Tensor


def roi_masking_masks(
    rois: Tensor, height: int, width: int, spatial_scale: float, expand_ratio: float, mode: int
) -> Tensor:
    """The [R, H, W] float64 masks of ``roi_masking`` (values in {0, 1} or, in ternary mode, {-1, 0, 1}).

    Args:
        rois: [R, 5] (batch_idx, x1, y1, x2, y2) in input pixels.
        height: H of the feature map.
        width: W of the feature map.
        spatial_scale: feature cells per input pixel.
        expand_ratio: ring width per side as a fraction of the box extent.
        mode: 0 binary, 1 expanded binary, 2 ternary.

    Returns:
        float64 [R, H, W] masks.
    """
    if mode not in (0, 1, 2):
        raise ValueError(f"roi_masking: mode must be 0, 1 or 2, got {mode}")
    # Same double-precision arithmetic as the kernel so both snap a coordinate to the same cell.
    coords = rois[:, 1:].to(torch.float64) * spatial_scale
    limit = torch.tensor([width, height], dtype=torch.float64, device=rois.device)
    # NaN coordinates act as 0 and +-inf clip to the border (the kernel's fmin/fmax semantics).
    starts = torch.minimum(torch.nan_to_num(coords[:, :2].floor(), nan=0.0).clamp(min=0.0), limit)
    ends = torch.minimum(torch.nan_to_num(coords[:, 2:].floor() + 1.0, nan=0.0).clamp(min=0.0), limit)
    nonempty = (ends > starts).all(dim=1)
    ring = torch.minimum(((ends - starts).clamp(min=0.0) * expand_ratio).floor(), limit)
    outer_starts = (starts - ring).clamp(min=0.0)
    outer_ends = torch.minimum(ends + ring, limit)

    def inside(begin: Tensor, end: Tensor) -> Tensor:
        cols = torch.arange(width, dtype=torch.float64, device=rois.device)
        rows = torch.arange(height, dtype=torch.float64, device=rois.device)
        in_cols = (cols >= begin[:, 0:1]) & (cols < end[:, 0:1])
        in_rows = (rows >= begin[:, 1:2]) & (rows < end[:, 1:2])
        return in_rows[:, :, None] & in_cols[:, None, :] & nonempty[:, None, None]

    box = inside(starts, ends).to(torch.float64)
    if mode == 0:
        return box
    expanded = inside(outer_starts, outer_ends).to(torch.float64)
    return expanded if mode == 1 else 2.0 * box - expanded


def roi_masking(features: Tensor, rois: Tensor, spatial_scale: float, expand_ratio: float, mode: int) -> Tensor:
    """S4Net RoIMasking from its definition: ``out[r] = features[b_r] * mask_r`` (see ``pysalient.ops.roi_masking``).

    Args:
        features: [B, C, H, W].
        rois: [R, 5] (batch_idx, x1, y1, x2, y2) in input pixels.
        spatial_scale: feature cells per input pixel.
        expand_ratio: ring width per side as a fraction of the box extent.
        mode: 0 binary, 1 expanded binary, 2 ternary.

    Returns:
        [R, C, H, W] masked copies of the features, differentiable with respect to ``features``.
    """
    masks = roi_masking_masks(rois, features.shape[2], features.shape[3], spatial_scale, expand_ratio, mode)
    return features[rois[:, 0].long()] * masks.to(features.dtype)[:, None]
