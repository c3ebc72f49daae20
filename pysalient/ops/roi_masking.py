"""S4Net's RoIMasking: ``roi_masking`` and ``RoIMasking``.

Unlike RoIAlign, RoIMasking keeps the full feature map of each RoI and multiplies it by a mask built from the
box, so the segmentation branch sees the context around the object (Fan et al., "S4Net: Single Stage
Salient-Instance Segmentation", CVPR 2019 / CVM 2020, §3.2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native

ROI_MASKING_MODES = ("binary", "expanded_binary", "ternary")


def roi_masking(
    features: Tensor, rois: Tensor, spatial_scale: float, expand_ratio: float = 1.0 / 3.0, mode: str = "ternary"
) -> Tensor:
    """Masks a full copy of the feature map for every RoI (S4Net RoIMasking).

    Geometry on the feature grid, computed in double precision: the box is snapped outward to whole cells,
    ``x0 = floor(x1 * s)``, ``xe = floor(x2 * s) + 1`` (exclusive end; likewise for y) and clipped to the map;
    the ring around it is ``dx = floor((xe - x0) * expand_ratio)`` cells wide on the left and right (``dy`` on
    the top and bottom, from the clipped box) and clamped at the map borders. A box that is empty after clipping
    (fully off the map, or inverted) gives an all-zero mask. The mask is

    - ``"binary"``: 1 inside the box, 0 elsewhere;
    - ``"expanded_binary"``: 1 inside the box and its ring;
    - ``"ternary"`` (S4Net's choice): +1 inside the box, -1 in the ring, 0 elsewhere.

    This follows DESIGN.md §3, which differs from the official code (``generate_bimasks``) in two corner
    cases: the official ring width ``w // 3`` is measured on the unclipped box (its proposals are clipped to
    the image beforehand, so this rarely matters), and a ring that would start above or left of the map
    becomes a negative numpy slice start, counted from the far end, which usually empties the whole ring along
    that axis; here the ring is clamped at the borders instead. With ``expand_ratio=1/3``,
    ``floor(w * expand_ratio) == w // 3`` for every integer width. A NaN coordinate acts as 0.

    Differentiable with respect to ``features`` only: ``grad_features[b] = sum over RoIs r of image b of
    mask_r * grad_out[r]`` (deterministic); ``rois`` get no gradient.

    Args:
        features: [B, C, H, W] feature map (fp32, fp64, fp16 or bf16).
        rois: [R, 5] (batch_idx, x1, y1, x2, y2) in input pixels, same dtype and device as ``features``;
            batch indices must be integers in [0, B).
        spatial_scale: feature cells per input pixel (1/8 for S4Net's stride-8 map); > 0.
        expand_ratio: ring width per side as a fraction of the box extent (S4Net: 1/3); >= 0.
        mode: ``"binary"``, ``"expanded_binary"`` or ``"ternary"``.

    Returns:
        [R, C, H, W] ``features[batch_idx] * mask`` for every RoI.

    Raises:
        ValueError: for an unknown ``mode``.
    """
    mode_index = _mode_index(mode)
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.roi_masking(features, rois, spatial_scale, expand_ratio, mode_index)
    return torch.ops.pysalient.roi_masking(features, rois, spatial_scale, expand_ratio, mode_index)


def _mode_index(mode: str) -> int:
    # An if-chain rather than a dict lookup keeps this scriptable.
    if mode == "binary":
        return 0
    if mode == "expanded_binary":
        return 1
    if mode == "ternary":
        return 2
    raise ValueError(f"roi_masking: mode must be one of 'binary', 'expanded_binary', 'ternary', got '{mode}'")


class RoIMasking(nn.Module):
    """Module form of :func:`roi_masking` with fixed geometry.

    Args:
        spatial_scale: feature cells per input pixel (1/8 for S4Net's stride-8 map).
        expand_ratio: ring width per side as a fraction of the box extent (S4Net: 1/3).
        mode: ``"binary"``, ``"expanded_binary"`` or ``"ternary"``.
    """

    def __init__(self, spatial_scale: float, expand_ratio: float = 1.0 / 3.0, mode: str = "ternary") -> None:
        super().__init__()
        _mode_index(mode)
        if not spatial_scale > 0:
            raise ValueError(f"RoIMasking: spatial_scale must be > 0, got {spatial_scale}")
        if not expand_ratio >= 0:
            raise ValueError(f"RoIMasking: expand_ratio must be >= 0, got {expand_ratio}")
        self.spatial_scale = float(spatial_scale)
        self.expand_ratio = float(expand_ratio)
        self.mode = mode

    def forward(self, features: Tensor, rois: Tensor) -> Tensor:
        """Returns [R, C, H, W] masked features for ``features`` [B, C, H, W] and ``rois`` [R, 5]."""
        return roi_masking(features, rois, self.spatial_scale, self.expand_ratio, self.mode)

    def extra_repr(self) -> str:
        return f"spatial_scale={self.spatial_scale}, expand_ratio={self.expand_ratio}, mode={self.mode!r}"
