"""Pure-PyTorch reference implementations of every native operator.

Each function is written from the operator's definition (DESIGN.md §3), favouring clarity over speed.
They are what the tests compare the native kernels against, and what the public ops fall back to when the
native library cannot be loaded. Sections are ordered as the schemas in ``csrc/ops/registration.cpp``.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


# ---------------------------------------------------------------------------------------------- resize_image
def resize_image(image: Tensor, out_h: int, out_w: int) -> Tensor:
    """Pillow-identical uint8 bilinear resize (see ``pysalient.ops.resize_image``).

    Args:
        image: uint8 [H, W, C] or [B, H, W, C].
        out_h: output height, at least 1.
        out_w: output width, at least 1.

    Returns:
        uint8 [(B,) out_h, out_w, C].
    """
    if image.dim() not in (3, 4) or image.dtype != torch.uint8:
        raise ValueError(
            f"resize_image: image must be uint8 [H, W, C] or [B, H, W, C], got {image.dtype} {tuple(image.shape)}"
        )
    if out_h < 1 or out_w < 1:
        raise ValueError(f"resize_image: output size must be at least 1x1, got {out_h}x{out_w}")
    images = image if image.dim() == 4 else image[None]
    height, width = images.shape[1], images.shape[2]
    # One pass per axis, the first rounded to uint8 before the second; a pass whose size does not change is
    # skipped (it would be the identity). Pillow >= 13 runs the vertical pass first when the height shrinks by
    # more than twice as many pixels as the width (python-pillow/Pillow#9549), otherwise the horizontal one.
    axes = [(2, out_w), (1, out_h)]
    if out_h < height and height - out_h > 2 * (width - out_w):
        axes.reverse()
    resized = images
    for dim, size in axes:
        if size != images.shape[dim]:
            resized = _pillow_resample_axis(resized, dim, size)
    if resized is images:
        resized = images.clone()
    return resized if image.dim() == 4 else resized[0]


def _pillow_bilinear_taps(n_in: int, n_out: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """Input indices and 22-bit fixed-point weights, both [n_out, taps], of Pillow's stretched triangle filter."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)  # downscaling widens the filter so that every input sample is averaged
    inverse_stretch = 1.0 / stretch
    max_taps = int(math.ceil(stretch)) * 2 + 1
    center = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * scale
    # C's (int) cast truncates toward zero; Pillow clamps the range into [0, n_in) afterwards.
    first = (center - stretch + 0.5).trunc().clamp(min=0.0)
    end = (center + stretch + 0.5).trunc().clamp(max=float(n_in))
    index = first[:, None] + torch.arange(max_taps, dtype=torch.float64, device=device)
    # Multiplying by the reciprocal (not dividing by the stretch) matches Pillow to the last ulp.
    weight = (1.0 - ((index - center[:, None] + 0.5) * inverse_stretch).abs()).clamp(min=0.0)
    weight = torch.where(index < end[:, None], weight, torch.zeros_like(weight))
    total = torch.zeros_like(center)
    for tap in range(max_taps):  # summed in tap order as Pillow does; torch.sum may reorder and change an ulp
        total = total + weight[:, tap]
    weight = torch.where(total[:, None] != 0, weight / total[:, None], weight)
    fixed = torch.floor(0.5 + weight * float(1 << 22)).to(torch.int64)
    return index.to(torch.int64).clamp(max=n_in - 1), fixed


def _pillow_resample_axis(images: Tensor, dim: int, n_out: int) -> Tensor:
    """Resamples uint8 [B, H, W, C] along dim 1 (rows) or 2 (columns) to ``n_out`` samples."""
    index, weight = _pillow_bilinear_taps(images.shape[dim], n_out, images.device)
    samples = images.movedim(dim, -2).to(torch.int64)  # [..., n_in, C]
    accumulated = (samples[..., index, :] * weight[:, :, None]).sum(-2) + (1 << 21)
    return (accumulated >> 22).clamp(0, 255).to(torch.uint8).movedim(-2, dim)


# ----------------------------------------------------------------------------------------------- roi_masking
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


# ---------------------------------------------------------------------------------------- assemble_instances
def assemble_instances(score_maps: Tensor, windows: Tensor, m: int, k: int) -> Tensor:
    """InstanceFCN assembling from its definition (see ``pysalient.ops.assemble_instances``).

    Args:
        score_maps: [B, k*k, H, W] instance-sensitive score maps.
        windows: int64 [R, 3] (batch_idx, y0, x0), top-left cell of each m x m window.
        m: window size in cells.
        k: sub-windows per side.

    Returns:
        [R, m, m] assembled windows (0 off the map), differentiable with respect to ``score_maps``.
    """
    num_windows = windows.shape[0]
    height, width = score_maps.shape[2], score_maps.shape[3]
    if height == 0 or width == 0:
        # Nothing to index; adding the (zero) sum of the empty maps keeps the result in the autograd graph.
        return score_maps.new_zeros((num_windows, m, m)) + score_maps.sum()
    cells = torch.arange(m, device=windows.device)
    sub_window = cells * k // m
    channel = sub_window[:, None] * k + sub_window[None, :]
    # Offsets clamped to [-m, size] (still fully off the map beyond) so the sums below cannot overflow.
    ys = windows[:, 1:2].clamp(-m, height) + cells
    xs = windows[:, 2:3].clamp(-m, width) + cells
    on_map = ((ys >= 0) & (ys < height))[:, :, None] & ((xs >= 0) & (xs < width))[:, None, :]
    rows = ys.clamp(0, height - 1)[:, :, None]
    cols = xs.clamp(0, width - 1)[:, None, :]
    values = score_maps[windows[:, 0, None, None], channel[None], rows, cols]
    return torch.where(on_map, values, torch.zeros_like(values))


# -------------------------------------------------------------------------------------- multilevel_roi_align
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


# ------------------------------------------------------------------------------------------------------- nms
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS, one kept box at a time (see ``pysalient.ops.nms``).

    Args:
        boxes: [N, 4] (x1, y1, x2, y2).
        scores: [N].
        iou_threshold: a box whose IoU with a kept box is strictly greater is suppressed.

    Returns:
        int64 [K] kept indices in decreasing score order.
    """
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.dtype in (torch.float16, torch.bfloat16):
        boxes = boxes.float()
    order = torch.sort(scores.to(boxes.dtype), stable=True, descending=True)[1]
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep: List[int] = []
    for position, index in enumerate(order.tolist()):
        if suppressed[index]:
            continue
        keep.append(index)
        rest = order[position + 1 :]
        width = (torch.minimum(x2[index], x2[rest]) - torch.maximum(x1[index], x1[rest])).clamp(min=0)
        height = (torch.minimum(y2[index], y2[rest]) - torch.maximum(y1[index], y1[rest])).clamp(min=0)
        inter = width * height
        iou = inter / (areas[index] + areas[rest] - inter)
        suppressed[rest[iou > iou_threshold]] = True
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


# ---------------------------------------------------------------------------------------------- paste_masks
def paste_masks(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float) -> Tensor:
    """Pastes RoI mask probabilities into the image by bilinear sampling (see ``pysalient.ops.paste_masks``).

    Args:
        masks: [R, Mh, Mw] probabilities.
        boxes: [R, 4] (x1, y1, x2, y2) in image pixels.
        height: image height.
        width: image width.
        threshold: a pixel is set when its sample is >= threshold, 0 < threshold <= 1.

    Returns:
        uint8 [R, height, width].
    """
    return (paste_mask_samples(masks, boxes, height, width) >= threshold).to(torch.uint8)


def paste_mask_samples(masks: Tensor, boxes: Tensor, height: int, width: int) -> Tensor:
    """The samples ``paste_masks`` thresholds: ``grid_sample`` of each mask at every pixel centre.

    Sampling is bilinear (align_corners=False, zero padding) over the whole image, in float64 so that pixel
    coordinates in the thousands keep sub-cell precision; degenerate boxes sample 0 everywhere.

    Args:
        masks: [R, Mh, Mw] probabilities.
        boxes: [R, 4] (x1, y1, x2, y2) in image pixels.
        height: image height.
        width: image width.

    Returns:
        float64 [R, height, width].
    """
    num_masks = masks.shape[0]
    if num_masks == 0 or height == 0 or width == 0:
        return torch.zeros((num_masks, height, width), dtype=torch.float64, device=masks.device)
    boxes = boxes.to(torch.float64)
    x1, y1, x2, y2 = boxes.unbind(1)
    # Degenerate (empty or non-finite) boxes paste nothing; give them a harmless unit box to avoid 0/0.
    valid = torch.isfinite(boxes).all(1) & (x2 > x1) & (y2 > y1)
    one = torch.ones_like(x1)
    zero = torch.zeros_like(x1)
    x1, y1 = torch.where(valid, x1, zero), torch.where(valid, y1, zero)
    box_w, box_h = torch.where(valid, x2 - x1, one), torch.where(valid, y2 - y1, one)
    centers_x = torch.arange(width, dtype=torch.float64, device=masks.device) + 0.5
    centers_y = torch.arange(height, dtype=torch.float64, device=masks.device) + 0.5
    grid_x = 2.0 * (centers_x[None, :] - x1[:, None]) / box_w[:, None] - 1.0  # [R, W]
    grid_y = 2.0 * (centers_y[None, :] - y1[:, None]) / box_h[:, None] - 1.0  # [R, H]
    grid = torch.stack(
        [grid_x[:, None, :].expand(num_masks, height, width), grid_y[:, :, None].expand(num_masks, height, width)],
        dim=-1,
    )
    samples = F.grid_sample(
        masks.to(torch.float64)[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[:, 0]
    return torch.where(valid[:, None, None], samples, torch.zeros_like(samples))


# ------------------------------------------------------------------------------------------- upsample_masks
def upsample_masks(
    mask_logits: Tensor, padded_hw: Sequence[int], image_hw: Sequence[int], output_hw: Sequence[int], threshold: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """SparseInst mask post-processing, step by step as the official code does it (see ``pysalient.ops``).

    Args:
        mask_logits: [N, h, w] mask logits covering the padded input.
        padded_hw: (height, width) of the padded network input.
        image_hw: (height, width) of the resized image inside the padded input.
        output_hw: (height, width) of the masks to return (the original image size).
        threshold: probability above which a pixel is foreground (strict).

    Returns:
        masks: uint8 [N, Ho, Wo].
        boxes: [N, 4] (x_min, y_min, x_max + 1, y_max + 1) of each mask in output pixels, zeros when empty.
        maskness: [N] mean probability of the pixels above threshold at the input resolution.
    """
    logits = mask_logits.float() if mask_logits.dtype in (torch.float16, torch.bfloat16) else mask_logits
    probabilities = upsample_mask_probabilities(logits, padded_hw, image_hw, output_hw)
    decoder_probabilities = logits.sigmoid()
    above = (decoder_probabilities > threshold).to(decoder_probabilities.dtype)
    # Mask rescoring of the official code: the 1e-6 keeps an empty mask at maskness 0.
    maskness = (decoder_probabilities * above).sum((1, 2)) / (above.sum((1, 2)) + 1e-6)
    masks = probabilities > threshold
    return masks.to(torch.uint8), mask_boxes(masks).to(logits.dtype), maskness


def upsample_mask_probabilities(
    mask_logits: Tensor, padded_hw: Sequence[int], image_hw: Sequence[int], output_hw: Sequence[int]
) -> Tensor:
    """The probabilities ``upsample_masks`` thresholds: sigmoid, resize to padded, crop, resize to output.

    Args:
        mask_logits: [N, h, w] (float32 or float64).
        padded_hw: (height, width) of the padded network input.
        image_hw: (height, width) of the resized image inside the padded input.
        output_hw: (height, width) of the output.

    Returns:
        [N, Ho, Wo] probabilities.
    """
    if mask_logits.shape[0] == 0:
        return mask_logits.new_zeros((0, output_hw[0], output_hw[1]))
    padded = F.interpolate(
        mask_logits.sigmoid()[:, None], size=(padded_hw[0], padded_hw[1]), mode="bilinear", align_corners=False
    )
    cropped = padded[:, :, : image_hw[0], : image_hw[1]]
    return F.interpolate(cropped, size=(output_hw[0], output_hw[1]), mode="bilinear", align_corners=False)[:, 0]


def mask_boxes(masks: Tensor) -> Tensor:
    """Tight boxes of binary masks (detectron2 ``BitMasks.get_bounding_boxes``).

    Args:
        masks: bool [N, H, W] with H, W >= 1.

    Returns:
        int64 [N, 4] (x_min, y_min, x_max + 1, y_max + 1); all zeros for an empty mask.
    """
    rows, cols = masks.any(2), masks.any(1)
    y = torch.arange(masks.shape[1], device=masks.device)
    x = torch.arange(masks.shape[2], device=masks.device)
    y_min, y_max = torch.where(rows, y, masks.shape[1]).amin(1), torch.where(rows, y, -1).amax(1) + 1
    x_min, x_max = torch.where(cols, x, masks.shape[2]).amin(1), torch.where(cols, x, -1).amax(1) + 1
    boxes = torch.stack([x_min, y_min, x_max, y_max], dim=1)
    return torch.where(rows.any(1)[:, None], boxes, torch.zeros_like(boxes))


# ------------------------------------------------------------------------------------------------ dice_cost
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


# ---------------------------------------------------------------------------------- linear_sum_assignment
def linear_sum_assignment(cost: Tensor, maximize: bool) -> Tuple[Tensor, Tensor]:
    """Rectangular assignment by the O(n^3) Hungarian method with potentials (see ``pysalient.ops``).

    Args:
        cost: [N, K] floating point; +inf marks a forbidden pair (-inf when ``maximize``).
        maximize: maximise the total instead of minimising it.

    Returns:
        (rows, cols): int64 [min(N, K)] each, rows ascending.
    """
    device = cost.device
    if cost.shape[0] == 0 or cost.shape[1] == 0:
        empty = torch.empty((0,), dtype=torch.int64, device=device)
        return empty, empty.clone()
    values = cost.detach().to(device="cpu", dtype=torch.float64)
    if maximize:
        values = -values
    if bool(torch.isnan(values).any()) or bool((values == -math.inf).any()):
        raise RuntimeError(
            "pysalient::linear_sum_assignment: cost matrix contains invalid numeric entries (NaN or -inf; "
            "NaN or +inf when maximize=True)"
        )
    transpose = values.shape[0] > values.shape[1]
    matrix: List[List[float]] = (values.t() if transpose else values).tolist()
    column_of_row = _hungarian_rows_into_columns(matrix)
    if column_of_row is None:
        raise RuntimeError("pysalient::linear_sum_assignment: cost matrix is infeasible")
    pairs = [(column, row) if transpose else (row, column) for row, column in enumerate(column_of_row)]
    pairs.sort()
    rows = torch.tensor([pair[0] for pair in pairs], dtype=torch.int64, device=device)
    cols = torch.tensor([pair[1] for pair in pairs], dtype=torch.int64, device=device)
    return rows, cols


def _hungarian_rows_into_columns(cost: List[List[float]]) -> Optional[List[int]]:
    """Assigns each of the n rows to one of m >= n columns at minimum total cost; None when infeasible.

    Rows are added one at a time; each addition grows a tree of tight edges (reduced cost c - u - v = 0) from
    the new row, raising the potentials by the smallest reduced cost ``delta`` towards an unreached column until
    a free column is reached, then flips the matching along the tree path. Column 0 is a virtual column that
    holds the row being added. An infinite ``delta`` means no finite path exists: infeasible.
    """
    n, m = len(cost), len(cost[0])
    row_potential = [0.0] * (n + 1)  # 1-based rows
    column_potential = [0.0] * (m + 1)  # 1-based columns, 0 is the virtual column
    row_of_column = [0] * (m + 1)  # 0 = free
    previous_column = [0] * (m + 1)
    for new_row in range(1, n + 1):
        row_of_column[0] = new_row
        column = 0
        slack = [math.inf] * (m + 1)
        in_tree = [False] * (m + 1)
        while True:
            in_tree[column] = True
            row = row_of_column[column]
            delta, next_column = math.inf, -1
            for j in range(1, m + 1):
                if in_tree[j]:
                    continue
                reduced = cost[row - 1][j - 1] - row_potential[row] - column_potential[j]
                if reduced < slack[j]:
                    slack[j], previous_column[j] = reduced, column
                if slack[j] < delta:
                    delta, next_column = slack[j], j
            if delta == math.inf:
                return None
            for j in range(m + 1):
                if in_tree[j]:
                    row_potential[row_of_column[j]] += delta
                    column_potential[j] -= delta
                else:
                    slack[j] -= delta
            column = next_column
            if row_of_column[column] == 0:
                break
        while column != 0:
            source = previous_column[column]
            row_of_column[column] = row_of_column[source]
            column = source
    column_of_row = [0] * n
    for j in range(1, m + 1):
        if row_of_column[j] != 0:
            column_of_row[row_of_column[j] - 1] = j - 1
    return column_of_row
