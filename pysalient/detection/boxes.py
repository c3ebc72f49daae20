"""Box arithmetic in pure PyTorch (scriptable, exportable): areas, pairwise IoU, clipping.

Boxes are (x1, y1, x2, y2). ``legacy=True`` is the Detectron / maskrcnn-benchmark pixel convention, in which a
box covers the pixels x1..x2 inclusive: widths and heights get ``+1`` and clipping keeps coordinates inside
``[0, size - 1]``; the default is detectron2's / torchvision's continuous convention (no ``+1``, clip to
``[0, size]``).
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor


def box_area(boxes: Tensor, legacy: bool = False) -> Tensor:
    """Areas of boxes [N, 4] -> [N]: ``(x2 - x1) * (y2 - y1)``, with ``+1`` on each side when ``legacy``.

    Degenerate boxes are not clamped (an inverted box has a negative or zero area, as in both references).
    """
    offset = 1.0 if legacy else 0.0
    return (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)


def box_iou(boxes1: Tensor, boxes2: Tensor, legacy: bool = False) -> Tensor:
    """Pairwise intersection over union.

    Args:
        boxes1: [N, 4].
        boxes2: [M, 4].
        legacy: ``+1`` pixel convention in intersections and areas (maskrcnn-benchmark's NMS and matcher).

    Returns:
        [N, M] IoU; pairs whose union is 0 give 0.
    """
    offset = 1.0 if legacy else 0.0
    area1 = box_area(boxes1, legacy)
    area2 = box_area(boxes2, legacy)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    size = (bottom_right - top_left + offset).clamp(min=0)
    intersection = size[..., 0] * size[..., 1]
    union = area1[:, None] + area2[None, :] - intersection
    return torch.where(
        union > 0, intersection / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union)
    )


def clip_boxes(boxes: Tensor, image_hw: List[int], legacy: bool = False) -> Tensor:
    """Clamps x into ``[0, w]`` and y into ``[0, h]`` (``legacy``: ``[0, w - 1]`` and ``[0, h - 1]``).

    Args:
        boxes: [N, 4] (x1, y1, x2, y2).
        image_hw: ``[h, w]`` of the image.
        legacy: maskrcnn-benchmark's ``clip_to_image`` (``TO_REMOVE = 1``).

    Returns:
        A clipped copy [N, 4]; nothing is removed.
    """
    offset = 1 if legacy else 0
    # Integer bounds (exact in float32 up to 2**24): under torch.export a symbolic size stays symbolic, where
    # float(size) would specialise the graph to the example's size.
    x_max = image_hw[1] - offset
    y_max = image_hw[0] - offset
    x1 = boxes[:, 0].clamp(min=0, max=x_max)
    y1 = boxes[:, 1].clamp(min=0, max=y_max)
    x2 = boxes[:, 2].clamp(min=0, max=x_max)
    y2 = boxes[:, 3].clamp(min=0, max=y_max)
    return torch.stack([x1, y1, x2, y2], dim=1)


def _size_tensor(size: int, device: torch.device) -> Tensor:
    """``size`` as a float64 tensor [1]: a symbolic size stays symbolic under ``torch.export`` (``float(size)``
    would specialise the graph to the example's size)."""
    return torch.full([1], size, dtype=torch.float64, device=device)


def scale_boxes(boxes: Tensor, image_hw: List[int], output_hw: List[int]) -> Tensor:
    """Boxes [K, 4] from the resized frame ``image_hw`` to ``output_hw``: x times float32(W / w), y times
    float32(H / h), in float32 (maskrcnn-benchmark's ``BoxList.resize`` and S4Net's test path: Python float
    ratios, applied to float32 boxes).

    The ratios are float64 divisions rounded to float32, bit for bit the Python ``float(W) / float(w)``, computed
    on tensors so that exported graphs keep H, W, h and w symbolic.
    """
    device = boxes.device
    ratio_w = (_size_tensor(output_hw[1], device) / _size_tensor(image_hw[1], device)).to(torch.float32)
    ratio_h = (_size_tensor(output_hw[0], device) / _size_tensor(image_hw[0], device)).to(torch.float32)
    ratios = torch.cat([ratio_w, ratio_h, ratio_w, ratio_h])
    return boxes.to(torch.float32) * ratios
