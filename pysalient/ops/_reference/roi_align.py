"""Reference of ``multilevel_roi_align``: torchvision's RoIAlign on every pyramid level."""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor


def multilevel_roi_align(
    features: List[Tensor],
    rois: Tensor,
    spatial_scales: List[float],
    output_sizes: List[int],
    sampling_ratio: int,
    aligned: bool,
) -> List[Tensor]:
    """RoIAlign of every level with torchvision's semantics (see ``pysalient.ops.roi_align``).

    Args:
        features: L maps [B, C_l, H_l, W_l].
        rois: [R, 5] (batch_idx, x1, y1, x2, y2) in input pixels; receives no gradient.
        spatial_scales: L scales from input pixels to map cells.
        output_sizes: L square sizes or 2L entries (out_h_0, out_w_0, out_h_1, ...).
        sampling_ratio: samples per bin and axis; <= 0 means ceil(roi_extent / out) per RoI.
        aligned: half-pixel offset (True) or legacy RoIs stretched to at least one cell (False).

    Returns:
        L tensors [R, C_l, out_h_l, out_w_l].
    """
    levels = len(features)
    if len(output_sizes) == levels:
        pooled = [(int(size), int(size)) for size in output_sizes]
    else:
        pooled = [(int(output_sizes[2 * level]), int(output_sizes[2 * level + 1])) for level in range(levels)]
    return [
        _roi_align_level(level_features, rois, float(scale), out_h, out_w, sampling_ratio, aligned)
        for level_features, scale, (out_h, out_w) in zip(features, spatial_scales, pooled)
    ]


def _roi_align_level(
    features: Tensor, rois: Tensor, scale: float, out_h: int, out_w: int, sampling_ratio: int, aligned: bool
) -> Tensor:
    # Half precision is computed in float, as the native kernel does.
    compute = torch.float32 if features.dtype in (torch.float16, torch.bfloat16) else features.dtype
    batch, channels, height, width = features.shape
    num_rois = rois.shape[0]
    if num_rois == 0 or height == 0 or width == 0:
        return features.new_zeros((num_rois, channels, out_h, out_w))
    boxes = rois.detach().to(compute)
    y_low, y_high, y_low_weight, y_high_weight, grid_h = _roi_align_axis(
        boxes[:, 2], boxes[:, 4], scale, out_h, height, sampling_ratio, aligned
    )
    x_low, x_high, x_low_weight, x_high_weight, grid_w = _roi_align_axis(
        boxes[:, 1], boxes[:, 3], scale, out_w, width, sampling_ratio, aligned
    )
    # Channels-last rows so one gather fetches every channel of a neighbour: [B * H * W, C].
    table = features.to(compute).permute(0, 2, 3, 1).reshape(batch * height * width, channels)
    image_offset = (boxes[:, 0].to(torch.int64) * (height * width))[:, None, None]
    total = torch.zeros((num_rois, out_h, out_w, channels), dtype=compute, device=features.device)
    # One sub-grid position (i, j) at a time, for every RoI and bin at once; invalid samples have zero weights.
    for i in range(y_low.shape[2]):
        rows = ((y_low[:, :, i], y_low_weight[:, :, i]), (y_high[:, :, i], y_high_weight[:, :, i]))
        for j in range(x_low.shape[2]):
            cols = ((x_low[:, :, j], x_low_weight[:, :, j]), (x_high[:, :, j], x_high_weight[:, :, j]))
            # The four neighbours in torchvision's order (low/low, low/high, high/low, high/high), summed left to right.
            value = torch.zeros_like(total)
            for row, row_weight in rows:
                for col, col_weight in cols:
                    index = image_offset + row[:, :, None] * width + col[:, None, :]
                    weight = row_weight[:, :, None] * col_weight[:, None, :]
                    gathered = table.index_select(0, index.reshape(-1)).view(num_rois, out_h, out_w, channels)
                    value = value + weight[..., None] * gathered
            total = total + value
    count = (grid_h * grid_w).clamp(min=1).to(compute)
    output = total / count[:, None, None, None]
    return output.permute(0, 3, 1, 2).contiguous().to(features.dtype)


def _roi_align_axis(
    first: Tensor, last: Tensor, scale: float, pooled: int, size: int, sampling_ratio: int, aligned: bool
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Bilinear neighbours of every sample along one axis.

    Returns:
        low, high: int64 [R, pooled, G] neighbour indices; low_weight, high_weight: [R, pooled, G] weights, zero
        for samples outside [-1, size] or beyond the RoI's own grid; grid: int64 [R] samples per bin.
    """
    offset = 0.5 if aligned else 0.0
    start = first * scale - offset
    extent = (last * scale - offset) - start
    if not aligned:
        extent = torch.where(extent < 1, torch.ones_like(extent), extent)
    bin_size = extent / pooled
    if sampling_ratio > 0:
        grid = torch.full_like(extent, sampling_ratio, dtype=torch.int64)
    else:
        samples = torch.ceil(extent / pooled)
        usable = (samples >= 1) & (samples < 2**31 - 1)
        grid = torch.where(usable, samples, torch.zeros_like(samples)).to(torch.int64)
    max_grid = int(grid.max())
    bins = torch.arange(pooled, dtype=first.dtype, device=first.device)[None, :, None]
    sample = torch.arange(max_grid, dtype=first.dtype, device=first.device)[None, None, :]
    # Same operation order as the native kernel (and torchvision) so fp32 results agree to the last bit.
    coordinate = start[:, None, None] + bins * bin_size[:, None, None]
    coordinate = coordinate + (sample + 0.5) * bin_size[:, None, None] / grid.to(first.dtype)[:, None, None]
    within_grid = torch.arange(max_grid, device=first.device)[None, None, :] < grid[:, None, None]
    valid = within_grid & (coordinate >= -1) & (coordinate <= size) & (size > 0)
    clamped = torch.where(valid, coordinate.clamp(min=0), torch.zeros_like(coordinate))
    low = clamped.floor().to(torch.int64)
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, max(size - 1, 0)), low)
    high = torch.where(at_edge, low, low + 1)
    clamped = torch.where(at_edge, low.to(first.dtype), clamped)
    high_weight = clamped - low.to(first.dtype)
    low_weight = 1 - high_weight
    zero = torch.zeros_like(high_weight)
    return low, high, torch.where(valid, low_weight, zero), torch.where(valid, high_weight, zero), grid
