"""Box regression losses: smooth L1 (Fast R-CNN), IoU (UnitBox / FCOS) and generalised IoU (Rezatofighi et al.).

Boxes are (x1, y1, x2, y2); the IoU losses also take FCOS's (left, top, right, bottom) distances from one point,
which describe the same box relative to that point (pass them through ``ltrb_to_boxes`` of the caller or directly
as boxes around the origin: the IoU of two ltrb boxes of one point equals the IoU of the boxes they describe).
"""

from __future__ import annotations

import torch
from torch import Tensor


def smooth_l1_loss(input: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    """Element-wise smooth L1 (Huber) loss: ``0.5 x^2 / beta`` below ``beta``, ``|x| - 0.5 beta`` above.

    ``beta = 1 / sigma^2`` converts the ``sigma`` of Caffe / TF-slim code (S4Net's sigma 3 is beta 1/9); beta 0 is L1.

    Args:
        input: [...] predictions.
        target: [...] same shape.
        beta: transition point, >= 0.

    Returns:
        [...] losses, not reduced.
    """
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    difference = torch.abs(input - target)
    if beta == 0:
        return difference
    return torch.where(difference < beta, 0.5 * difference * difference / beta, difference - 0.5 * beta)


def _areas_and_intersection(boxes: Tensor, other: Tensor) -> tuple:
    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    area_other = (other[..., 2] - other[..., 0]).clamp(min=0) * (other[..., 3] - other[..., 1]).clamp(min=0)
    width = (torch.minimum(boxes[..., 2], other[..., 2]) - torch.maximum(boxes[..., 0], other[..., 0])).clamp(min=0)
    height = (torch.minimum(boxes[..., 3], other[..., 3]) - torch.maximum(boxes[..., 1], other[..., 1])).clamp(min=0)
    return area, area_other, width * height


def iou_loss(boxes: Tensor, targets: Tensor, mode: str = "log", eps: float = 1e-7, smooth: float = 0.0) -> Tensor:
    """IoU loss of matched box pairs: ``-log(IoU)`` (UnitBox, FCOS's "iou") or ``1 - IoU`` (``mode="linear"``).

    Args:
        boxes: [N, 4] predicted (x1, y1, x2, y2).
        targets: [N, 4] matched targets.
        mode: ``"log"`` or ``"linear"``.
        eps: keeps the log finite for disjoint boxes (unused when ``smooth`` > 0).
        smooth: when > 0, ``IoU = (I + smooth) / (U + smooth)`` (the FCOS conference code's
            ``-log((I + 1) / (U + 1))`` is ``smooth=1``).

    Returns:
        [N] losses.
    """
    area, area_target, intersection = _areas_and_intersection(boxes, targets)
    union = area + area_target - intersection
    if smooth > 0:
        iou = (intersection + smooth) / (union + smooth)
        eps = 0.0
    else:
        iou = intersection / (union + eps)
    if mode == "log":
        return -torch.log(iou + eps)
    if mode == "linear":
        return 1 - iou
    raise ValueError(f"iou_loss: mode must be 'log' or 'linear', got {mode!r}")


def giou_loss(boxes: Tensor, targets: Tensor, eps: float = 1e-7) -> Tensor:
    """Generalised IoU loss ``1 - GIoU`` of matched pairs (Rezatofighi et al., CVPR'19), torchvision's formula.

    Args:
        boxes: [N, 4] predicted (x1, y1, x2, y2).
        targets: [N, 4] matched targets.
        eps: guards the divisions of degenerate boxes.

    Returns:
        [N] losses in [0, 2].
    """
    area, area_target, intersection = _areas_and_intersection(boxes, targets)
    union = area + area_target - intersection
    iou = intersection / (union + eps)
    enclosing_w = torch.maximum(boxes[..., 2], targets[..., 2]) - torch.minimum(boxes[..., 0], targets[..., 0])
    enclosing_h = torch.maximum(boxes[..., 3], targets[..., 3]) - torch.minimum(boxes[..., 1], targets[..., 1])
    enclosing = enclosing_w.clamp(min=0) * enclosing_h.clamp(min=0)
    return 1 - (iou - (enclosing - union) / (enclosing + eps))
