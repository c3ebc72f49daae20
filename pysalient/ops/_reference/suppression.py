"""Reference of ``nms``: greedy non-maximum suppression, one kept box at a time."""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, legacy: bool = False) -> Tensor:
    """Greedy NMS, one kept box at a time (see ``pysalient.ops.nms``).

    Args:
        boxes: [N, 4] (x1, y1, x2, y2).
        scores: [N].
        iou_threshold: a box whose IoU with a kept box is strictly greater (greater or equal with ``legacy``) is
            suppressed.
        legacy: maskrcnn-benchmark's convention: ``+1`` in widths, heights and intersections, and ``>=``.

    Returns:
        int64 [K] kept indices in decreasing score order.
    """
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.dtype in (torch.float16, torch.bfloat16):
        boxes = boxes.float()
    one = 1.0 if legacy else 0.0
    order = torch.sort(scores.to(boxes.dtype), stable=True, descending=True)[1]
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep: List[int] = []
    for position, index in enumerate(order.tolist()):
        if suppressed[index]:
            continue
        keep.append(index)
        rest = order[position + 1 :]
        width = (torch.minimum(x2[index], x2[rest]) - torch.maximum(x1[index], x1[rest]) + one).clamp(min=0)
        height = (torch.minimum(y2[index], y2[rest]) - torch.maximum(y1[index], y1[rest]) + one).clamp(min=0)
        inter = width * height
        iou = inter / (areas[index] + areas[rest] - inter)
        suppressed[rest[iou >= iou_threshold if legacy else iou > iou_threshold]] = True
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)
