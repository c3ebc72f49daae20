"""SPRNet's training targets: the "positive pixels" of the mask branch and their 32 x 32 masks.

Per image (the report's §2.2): over the anchors of every level, those whose best IoU with a ground-truth box is
strictly above ``mask_iou`` (0.7), sorted by that IoU (descending, ties in anchor order), at most ``mask_samples``
(300) of them; each gives its pixel (level, y, x) and its best ground truth. Several anchors of one pixel may all be
kept (B13, faithful). The target is that ground truth's mask cropped to its own box and resampled to 32 x 32
(RoIAlign aligned, then ``>= 0.5``; B12): every pixel of one instance has the same target.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from pysalient.detection.boxes import box_iou
from pysalient.detection.mask_targets import crop_and_resize_masks


def mask_sample_anchors(
    anchors: Tensor, gt_boxes: Tensor, iou_threshold: float, max_samples: int
) -> Tuple[Tensor, Tensor]:
    """The anchors that train the mask branch and their ground truths.

    Args:
        anchors: [N, 4] every anchor of the image (levels concatenated).
        gt_boxes: [G, 4] ground-truth boxes (x1, y1, x2, y2).
        iou_threshold: an anchor needs a best IoU strictly above it.
        max_samples: at most this many anchors, the highest IoU first.

    Returns:
        anchor rows int64 [S] and ground-truth indices int64 [S], by non-increasing IoU (S = 0 without ground truth
        or without an anchor above the threshold).
    """
    if gt_boxes.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=anchors.device)
        return empty, empty
    best, matched = box_iou(gt_boxes.to(anchors.dtype), anchors).max(dim=0)
    candidates = torch.nonzero(best > iou_threshold).flatten()
    order = torch.sort(best[candidates], descending=True, stable=True).indices[:max_samples]
    rows = candidates[order]
    return rows, matched[rows]


def mask_sample_targets(masks: Tensor, gt_boxes: Tensor, gt_indices: Tensor, size: int) -> Tensor:
    """float32 [S, size, size] in {0, 1}: ``masks[gt_indices]`` [K, H, W] inside ``gt_boxes[gt_indices]``."""
    return crop_and_resize_masks(masks, gt_boxes[gt_indices], gt_indices, size)
