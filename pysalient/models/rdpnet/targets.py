"""RDPNet's mask-head training samples (the official ``MaskRCNNLossComputation`` on FCOS proposals).

Per image, the proposals are the FCOS detections of the current predictions (the test-time post-processing:
threshold 0.05, top 1000 per level, NMS 0.6, 100 kept; computed without gradients) with the ground-truth boxes
appended (the official code always appends them). Each proposal is matched to the ground truth of highest IoU
(maskrcnn-benchmark's ``+1`` IoU); those with IoU >= 0.5 are the positives (no low-quality matches), and their
targets are the matched masks cropped to the proposal and resampled to 32 x 32
(:func:`pysalient.detection.crop_and_resize_masks`).

Deviation: the official proposals are clipped to the resized image; the training targets carry no image sizes, so
they are clipped to the padded batch (the padding holds no mask pixels, so targets are unaffected).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import Tensor

from pysalient.detection.boxes import box_iou
from pysalient.detection.mask_targets import crop_and_resize_masks
from pysalient.detection.matcher import IoUMatcher

MASK_IOU_THRESHOLD = 0.5
MASK_SIZE = 32

MaskSamples = Tuple[Tensor, Tensor, Tensor]  # rois [P, 5], labels int64 [P], targets float32 [P, 32, 32]


def mask_samples(
    proposals: List[Tensor],
    targets: List[Dict[str, Tensor]],
    iou_threshold: float = MASK_IOU_THRESHOLD,
    size: int = MASK_SIZE,
) -> MaskSamples:
    """The positive RoIs of the mask head and their targets.

    Args:
        proposals: per image, detached proposal boxes [N_i, 4] (x1, y1, x2, y2) in input pixels.
        targets: per image ``boxes`` [K, 4], ``labels`` int64 [K] and ``masks`` bool [K, Hp, Wp] (padded frame).
        iou_threshold: positives have an IoU >= this with their best ground truth.
        size: side of the mask targets.

    Returns:
        rois float32 [P, 5] (batch index, x1, y1, x2, y2), labels int64 [P] (0-based class of the matched ground
        truth) and targets float32 [P, size, size] in {0, 1}.
    """
    matcher = IoUMatcher([iou_threshold], [0, 1], allow_low_quality_matches=False)
    rois: List[Tensor] = []
    labels: List[Tensor] = []
    masks: List[Tensor] = []
    for index, (image_proposals, target) in enumerate(zip(proposals, targets)):
        gt_boxes = target["boxes"].to(torch.float32)
        if gt_boxes.shape[0] == 0:
            continue
        boxes = torch.cat([image_proposals.detach().to(gt_boxes), gt_boxes])
        matches, match_labels = matcher(box_iou(gt_boxes, boxes, legacy=True))
        positive = torch.nonzero(match_labels == 1).flatten()
        boxes, matches = boxes[positive], matches[positive]
        rois.append(torch.cat([torch.full_like(boxes[:, :1], float(index)), boxes], dim=1))
        labels.append(target["labels"][matches])
        masks.append(crop_and_resize_masks(target["masks"], boxes, matches, size))
    if not rois:
        device = targets[0]["boxes"].device if targets else torch.device("cpu")
        return (
            torch.zeros((0, 5), device=device),
            torch.zeros((0,), dtype=torch.int64, device=device),
            torch.zeros((0, size, size), device=device),
        )
    return torch.cat(rois), torch.cat(labels), torch.cat(masks)
