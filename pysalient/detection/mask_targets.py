"""Mask targets of RoI heads: ground-truth bitmasks cropped to boxes and resampled to a fixed grid."""

from __future__ import annotations

import torch
from torch import Tensor

from pysalient import ops


def crop_and_resize_masks(masks: Tensor, boxes: Tensor, indices: Tensor, size: int, threshold: float = 0.5) -> Tensor:
    """Binary ``size`` x ``size`` targets of ``masks[indices[i]]`` inside ``boxes[i]``.

    Cell (u, v) of a target samples the mask at the box point ``x1 + (u + 0.5) (x2 - x1) / size`` (and likewise for
    y) by bilinear interpolation of the pixel grid, averaged over ``ceil(box / size)`` samples per cell and axis
    (``roi_align(..., aligned=True)``, detectron2's ``BitMasks.crop_and_resize``), then compared with
    ``threshold`` (``>=``). This matches rasterising polygons cropped and scaled to the box (maskrcnn-benchmark)
    up to the rasteriser's boundary rule.

    Args:
        masks: [K, H, W] bool or float ground-truth masks.
        boxes: [P, 4] float boxes (x1, y1, x2, y2) in mask pixels.
        indices: [P] int64, the mask of each box.
        size: side of the targets (RDPNet 32).
        threshold: binarisation threshold of the resampled mask.

    Returns:
        float32 [P, size, size] in {0, 1}.
    """
    if boxes.shape[0] == 0:
        return torch.zeros((0, size, size), dtype=torch.float32, device=masks.device)
    rois = torch.cat([indices.to(torch.float32)[:, None], boxes.to(torch.float32)], dim=1)
    sampled = ops.roi_align(masks[:, None].to(torch.float32), rois, size, 1.0, 0, True)[:, 0]
    return (sampled >= threshold).to(torch.float32)
