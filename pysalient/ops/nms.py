"""Non-maximum suppression: ``nms`` and ``batched_nms`` with torchvision's exact arguments and results."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (torchvision semantics).

    Boxes are visited in decreasing score order (stable for ties); a box is dropped when its IoU with an
    already kept box is strictly greater than ``iou_threshold``. IoU has no ``+1`` in widths and heights.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2) with ``0 <= x1 < x2`` and ``0 <= y1 < y2`` expected.
        scores: [N] score of each box.
        iou_threshold: IoU above which the lower-scored box is discarded.

    Returns:
        keep: int64 [K] indices of the kept boxes, sorted by decreasing score.
    """
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.nms(boxes, scores, iou_threshold)
    return torch.ops.pysalient.nms(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS applied independently per category (torchvision semantics).

    Boxes of different ``idxs`` never suppress each other. Small inputs use the coordinate-offset trick
    (one ``nms`` call on boxes shifted apart per category); large CPU inputs run one ``nms`` per category,
    which avoids the precision loss of large offsets, exactly as torchvision does.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2).
        scores: [N] score of each box.
        idxs: [N] integer category (or image) of each box.
        iou_threshold: IoU above which the lower-scored box of the same category is discarded.

    Returns:
        keep: int64 [K] indices of the kept boxes, sorted by decreasing score.
    """
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 20000):
        return _batched_nms_per_category(boxes, scores, idxs, iou_threshold)
    return _batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold)


def _batched_nms_coordinate_trick(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def _batched_nms_per_category(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    keep_mask = torch.zeros_like(scores, dtype=torch.bool)
    for category in torch.unique(idxs):
        members = torch.where(idxs == category)[0]
        kept = nms(boxes[members], scores[members], iou_threshold)
        keep_mask[members[kept]] = True
    keep = torch.where(keep_mask)[0]
    return keep[scores[keep].sort(descending=True)[1]]


class NMS(nn.Module):
    """Module form of :func:`nms` / :func:`batched_nms` with a fixed IoU threshold.

    Args:
        iou_threshold: IoU above which the lower-scored box is discarded.
    """

    def __init__(self, iou_threshold: float) -> None:
        super().__init__()
        self.iou_threshold = float(iou_threshold)

    def forward(self, boxes: Tensor, scores: Tensor, idxs: Optional[Tensor] = None) -> Tensor:
        """Returns the int64 [K] kept indices; ``idxs`` [N] (optional) keeps categories apart."""
        if idxs is None:
            return nms(boxes, scores, self.iou_threshold)
        return batched_nms(boxes, scores, idxs, self.iou_threshold)

    def extra_repr(self) -> str:
        return f"iou_threshold={self.iou_threshold}"
