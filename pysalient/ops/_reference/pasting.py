"""Reference of ``paste_masks``: RoI masks pasted into the image by bilinear sampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
