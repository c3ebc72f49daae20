"""S4Net's training targets: anchor labels and deltas, segmentation targets and the loss weights of the boxes.

Conventions of the released code: boxes cover pixels ``x1..x2`` inclusive (a pysalient target box, whose right and
bottom edges are exclusive, loses one pixel on those sides: :func:`inclusive_boxes`); IoU with ``+1`` sizes; an anchor
is positive when its IoU with some ground-truth box is >= 0.4 and negative otherwise (no ignore band, no forced
best-anchor match); deltas are the legacy R-CNN deltas with unit weights. Segmentation targets are the instance masks
resized bilinearly to the stride-8 map and rounded; only the cells of the box (snapped outward to whole cells, as
RoIMasking does) are supervised.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from pysalient.detection.box_coder import DeltaBoxCoder
from pysalient.detection.boxes import box_iou
from pysalient.detection.matcher import IoUMatcher


def inclusive_boxes(boxes: Tensor) -> Tensor:
    """Boxes [K, 4] with exclusive right / bottom edges -> inclusive pixel boxes (``x2 - 1``, ``y2 - 1``, kept at
    least ``x1``, ``y1``)."""
    x2 = torch.maximum(boxes[:, 2] - 1, boxes[:, 0])
    y2 = torch.maximum(boxes[:, 3] - 1, boxes[:, 1])
    return torch.stack([boxes[:, 0], boxes[:, 1], x2, y2], dim=1)


def anchor_targets(
    anchors: Tensor, gt_boxes: Tensor, gt_labels: Tensor, positive_iou: float, coder: DeltaBoxCoder
) -> Tuple[Tensor, Tensor, Tensor]:
    """Classification and regression targets of one image's anchors.

    Args:
        anchors: [N, 4] inclusive pixel boxes (all levels).
        gt_boxes: [G, 4] inclusive pixel boxes.
        gt_labels: int64 [G] 0-based classes.
        positive_iou: IoU (``+1`` sizes) from which an anchor is positive.
        coder: the legacy delta coder.

    Returns:
        classes int64 [N] (0 background, ``label + 1`` for positives), positive bool [N] and deltas float32 [N, 4]
        (zeros for negatives).
    """
    matcher = IoUMatcher([positive_iou], [0, 1])
    if gt_boxes.shape[0] == 0:
        count = anchors.shape[0]
        zeros = torch.zeros(count, dtype=torch.int64, device=anchors.device)
        return zeros, zeros.bool(), anchors.new_zeros((count, 4))
    matches, match_labels = matcher(box_iou(gt_boxes.float(), anchors.float(), legacy=True))
    positive = match_labels == 1
    classes = torch.where(positive, gt_labels[matches] + 1, torch.zeros_like(matches))
    deltas = coder.encode(anchors.float(), gt_boxes.float()[matches])
    deltas = torch.where(positive[:, None], deltas, torch.zeros_like(deltas))
    return classes, positive, deltas


def segmentation_targets(masks: Tensor, map_hw: Tuple[int, int]) -> Tensor:
    """Instance masks [K, Hp, Wp] (bool, padded frame) -> float32 [K, h, w] in {0, 1}: bilinear resize of the 0/1
    masks to the map (align_corners=False), then > 0.5 (NumPy's rounding sends 0.5 to 0)."""
    if masks.shape[0] == 0:
        return torch.zeros((0, map_hw[0], map_hw[1]), dtype=torch.float32, device=masks.device)
    resized = F.interpolate(masks[:, None].float(), size=map_hw, mode="bilinear", align_corners=False)[:, 0]
    return (resized > 0.5).float()


def box_cell_weights(rois: Tensor, map_hw: Tuple[int, int], spatial_scale: float) -> Tensor:
    """1 on the cells of each RoI's box, snapped outward as RoIMasking snaps it, 0 elsewhere.

    Args:
        rois: [R, 5] (batch index, x1, y1, x2, y2) inclusive pixel boxes.
        map_hw: ``(h, w)`` of the map.
        spatial_scale: cells per input pixel (1/8).

    Returns:
        float32 [R, h, w]: cells ``floor(y1 s) <= y < floor(y2 s) + 1`` and ``floor(x1 s) <= x < floor(x2 s) + 1``.
    """
    boxes = rois[:, 1:].double() * spatial_scale
    x0, y0 = torch.floor(boxes[:, 0]), torch.floor(boxes[:, 1])
    xe, ye = torch.floor(boxes[:, 2]) + 1, torch.floor(boxes[:, 3]) + 1
    ys = torch.arange(map_hw[0], device=rois.device, dtype=torch.float64)
    xs = torch.arange(map_hw[1], device=rois.device, dtype=torch.float64)
    inside_y = (ys[None, :] >= y0[:, None]) & (ys[None, :] < ye[:, None])
    inside_x = (xs[None, :] >= x0[:, None]) & (xs[None, :] < xe[:, None])
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()
