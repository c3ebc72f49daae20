"""Reference of ``paste_masks``: RoI masks pasted into the image by bilinear sampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def paste_masks(
    masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float, legacy: bool = False, padding: int = 1
) -> Tensor:
    """Pastes RoI mask probabilities into the image by bilinear sampling (see ``pysalient.ops.paste_masks``).

    Args:
        masks: [R, Mh, Mw] probabilities.
        boxes: [R, 4] (x1, y1, x2, y2) in image pixels.
        height: image height.
        width: image width.
        threshold: a pixel is set when its sample is >= threshold, 0 < threshold <= 1 (> threshold with ``legacy``).
        legacy: maskrcnn-benchmark's ``Masker`` instead (:func:`paste_masks_masker`).
        padding: zero cells around each mask before the Masker enlarges its box (``legacy`` only).

    Returns:
        uint8 [R, height, width].
    """
    if legacy:
        return paste_masks_masker(masks, boxes, height, width, threshold, padding)
    return (paste_mask_samples(masks, boxes, height, width) >= threshold).to(torch.uint8)


def paste_masks_masker(
    masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float, padding: int = 1
) -> Tensor:
    """maskrcnn-benchmark's ``Masker(threshold, padding)``, one box at a time as its ``paste_mask_in_image``.

    Zero-pads each M x M map by ``padding`` cells, enlarges the float32 box about its centre by (M + 2 padding) / M,
    truncates the corners to int32, resizes the padded map to the integer box with ``F.interpolate`` (bilinear,
    align_corners=False), thresholds it strictly and writes it into the image, clipped. Boxes whose paste region
    lies outside the image (where the original code raises a shape error) paste nothing.

    Args:
        masks: [R, M, M] probabilities.
        boxes: [R, 4] (x1, y1, x2, y2) in image pixels.
        height: image height.
        width: image width.
        threshold: a pixel is set when its resized value is > threshold.
        padding: zero cells added on each side of the map.

    Returns:
        uint8 [R, height, width].
    """
    count, size = masks.shape[0], masks.shape[-1]
    output = torch.zeros((count, height, width), dtype=torch.uint8, device=masks.device)
    if count == 0:
        return output
    padded = F.pad(masks.to(torch.float32), [padding, padding, padding, padding])
    scale = float(size + 2 * padding) / size
    boxes = boxes.to(torch.float32)
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5
    center_x = (boxes[:, 2] + boxes[:, 0]) * 0.5
    center_y = (boxes[:, 3] + boxes[:, 1]) * 0.5
    half_w *= scale
    half_h *= scale
    corners = torch.stack([center_x - half_w, center_y - half_h, center_x + half_w, center_y + half_h], dim=1)
    corners = corners.to(torch.int32).tolist()
    for r, (x0, y0, x1, y1) in enumerate(corners):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(padded[r][None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        foreground = (resized > threshold).to(torch.uint8)
        x_first, x_end = max(x0, 0), min(x1 + 1, width)
        y_first, y_end = max(y0, 0), min(y1 + 1, height)
        if x_first < x_end and y_first < y_end:
            output[r, y_first:y_end, x_first:x_end] = foreground[y_first - y0 : y_end - y0, x_first - x0 : x_end - x0]
    return output


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
