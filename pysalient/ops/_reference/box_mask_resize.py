"""Reference of ``resize_masks_in_boxes`` (S4Net's test-time mask step) and the probabilities it thresholds."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import Tensor


def resize_masks_in_boxes(
    probabilities: Tensor,
    boxes: Tensor,
    padded_hw: Sequence[int],
    image_hw: Sequence[int],
    output_hw: Sequence[int],
    threshold: float,
) -> Tensor:
    """S4Net's mask step written from its definition (see ``pysalient.ops.resize_masks_in_boxes``).

    Args:
        probabilities: [N, h, w] foreground probabilities covering the padded input (any floating dtype).
        boxes: [N, 4] (x1, y1, x2, y2) in output pixels (any floating dtype).
        padded_hw: (Hp, Wp) of the padded network input.
        image_hw: (hi, wi) of the resized image, the top-left part of the padded input.
        output_hw: (H, W) of the masks to return (the original image size).
        threshold: probability above which a pixel inside its box is foreground (strict), in [0, 1).

    Returns:
        uint8 [N, H, W].

    Raises:
        ValueError: on arguments the native kernels reject (shapes, sizes, threshold).
    """
    _check_arguments(probabilities, boxes, padded_hw, image_hw, output_hw, threshold)
    samples = resized_probabilities(probabilities, padded_hw, image_hw, output_hw)
    cut = torch.tensor(threshold, dtype=samples.dtype)
    return ((samples > cut) & box_rectangles(boxes, output_hw)).to(torch.uint8)


def resized_probabilities(
    probabilities: Tensor, padded_hw: Sequence[int], image_hw: Sequence[int], output_hw: Sequence[int]
) -> Tensor:
    """The bilinear resize (align_corners=False) of the image part of the maps to the output size, box-free.

    Output row y samples the map at ``sy = (y + 0.5) * (hi / H) * (h / Hp) - 0.5`` clamped below at 0, between rows
    ``floor(sy)`` and ``min(floor(sy) + 1, h - 1)`` with weight ``sy - floor(sy)`` on the second (columns alike).
    Positions are formed in float64; weights and samples in float32 (float64 for float64 maps).

    Args:
        probabilities: [N, h, w] maps over the padded input.
        padded_hw: (Hp, Wp).
        image_hw: (hi, wi).
        output_hw: (H, W).

    Returns:
        [N, H, W] samples, float64 for float64 maps, else float32.
    """
    compute = torch.float64 if probabilities.dtype == torch.float64 else torch.float32
    maps = probabilities.to(compute)
    y0, y1, wy0, wy1 = _axis_taps(maps.shape[1], padded_hw[0], image_hw[0], output_hw[0], compute, maps.device)
    x0, x1, wx0, wx1 = _axis_taps(maps.shape[2], padded_hw[1], image_hw[1], output_hw[1], compute, maps.device)
    top, bottom = maps[:, y0], maps[:, y1]  # [N, H, w]
    wx0, wx1 = wx0[None, None, :], wx1[None, None, :]
    upper = wx0 * top[:, :, x0] + wx1 * top[:, :, x1]
    lower = wx0 * bottom[:, :, x0] + wx1 * bottom[:, :, x1]
    return wy0[None, :, None] * upper + wy1[None, :, None] * lower


def box_rectangles(boxes: Tensor, output_hw: Sequence[int]) -> Tensor:
    """Whether each output pixel lies in its box: ``floor(x1) <= x < floor(x2) + 1`` and likewise rows.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2); NaN coordinates select nothing.
        output_hw: (H, W).

    Returns:
        bool [N, H, W].
    """
    corners = boxes.to(torch.float64).floor()
    rows = torch.arange(output_hw[0], dtype=torch.float64, device=boxes.device)
    cols = torch.arange(output_hw[1], dtype=torch.float64, device=boxes.device)
    in_rows = (rows[None, :] >= corners[:, 1:2]) & (rows[None, :] < corners[:, 3:4] + 1)
    in_cols = (cols[None, :] >= corners[:, 0:1]) & (cols[None, :] < corners[:, 2:3] + 1)
    return in_rows[:, :, None] & in_cols[:, None, :]


def _axis_taps(
    n_map: int, n_padded: int, n_image: int, n_out: int, dtype: torch.dtype, device: torch.device
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    scale = (n_image / n_out) * (n_map / n_padded)
    source = ((torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * scale - 0.5).clamp(min=0.0)
    lower = source.floor().clamp(max=n_map - 1)
    upper_weight = (source - lower).to(dtype)
    lower_index = lower.long()
    upper_index = (lower_index + 1).clamp(max=n_map - 1)
    return lower_index, upper_index, 1 - upper_weight, upper_weight


def _check_arguments(
    probabilities: Tensor,
    boxes: Tensor,
    padded_hw: Sequence[int],
    image_hw: Sequence[int],
    output_hw: Sequence[int],
    threshold: float,
) -> None:
    op = "resize_masks_in_boxes"
    if probabilities.dim() != 3 or not probabilities.is_floating_point():
        raise ValueError(
            f"{op}: probabilities must be a floating [N, h, w] tensor, got {probabilities.dtype} "
            f"{tuple(probabilities.shape)}"
        )
    if boxes.dim() != 2 or boxes.shape[1] != 4 or not boxes.is_floating_point():
        raise ValueError(f"{op}: boxes must be a floating [N, 4] tensor, got {boxes.dtype} {tuple(boxes.shape)}")
    if boxes.shape[0] != probabilities.shape[0]:
        raise ValueError(f"{op}: probabilities has {probabilities.shape[0]} masks but boxes has {boxes.shape[0]} rows")
    if boxes.device != probabilities.device:
        raise ValueError(f"{op}: boxes is on {boxes.device} but probabilities is on {probabilities.device}")
    if probabilities.shape[1] < 1 or probabilities.shape[2] < 1:
        raise ValueError(f"{op}: probabilities must have a non-empty [h, w] map, got {tuple(probabilities.shape)}")
    if min(image_hw) < 1 or min(output_hw) < 1:
        raise ValueError(f"{op}: image_hw and output_hw must be at least 1x1, got {image_hw} and {output_hw}")
    if padded_hw[0] < image_hw[0] or padded_hw[1] < image_hw[1]:
        raise ValueError(f"{op}: padded_hw {padded_hw} must be at least image_hw {image_hw}")
    if not (math.isfinite(threshold) and 0.0 <= threshold < 1.0):
        raise ValueError(f"{op}: threshold must be a finite value in [0, 1), got {threshold}")
