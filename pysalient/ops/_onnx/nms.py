"""ONNX lowering of ``nms`` on ``NonMaxSuppression``.

ONNX Runtime's ``NonMaxSuppression`` is greedy NMS in decreasing score order that
suppresses a box whose IoU with a kept one is strictly greater than the threshold: torchvision's semantics. The
legacy (maskrcnn-benchmark) variant adds 1 to widths, heights and intersections, which is NMS on boxes whose
x2 and y2 are shifted by +1, and suppresses at IoU >= t, which for float32 IoUs is IoU > the float below t.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnxscript import opset18 as op

from pysalient.ops._onnx._common import FLOAT, const_f32, const_i64, const_ints


def nms_onnx(boxes: Any, scores: Any, iou_threshold: float, legacy: bool = False) -> Any:
    """``pysalient::nms(boxes [N, 4], scores [N], iou_threshold, legacy) -> int64 [K]`` kept indices by score.

    The boxes are first put in the native kernel's order (a stable sort by decreasing score: ``TopK`` breaks ties by
    index) and ``NonMaxSuppression`` is given their ranks as scores, so that equal scores are visited in index order
    exactly as by the native kernel whatever order the runtime's own queue would pick among them.
    """
    count = op.Shape(boxes, start=0, end=1)
    _, order = op.TopK(op.Cast(scores, to=FLOAT), count, axis=0, largest=1, sorted=1)
    corners = op.Gather(op.Cast(boxes, to=FLOAT), order, axis=0)
    threshold = np.float32(iou_threshold)
    if legacy:
        corners = op.Add(corners, op.Constant(value_floats=[0.0, 0.0, 1.0, 1.0]))
        threshold = np.nextafter(threshold, np.float32(-np.inf))
    ranks = op.Cast(
        op.Sub(
            op.Reshape(count, const_ints([])), op.Range(const_i64(0), op.Reshape(count, const_ints([])), const_i64(1))
        ),
        to=FLOAT,
    )
    batched_boxes = op.Unsqueeze(corners, const_ints([0]))  # [1, N, 4]
    batched_ranks = op.Unsqueeze(ranks, const_ints([0, 1]))  # [1, 1, N]: N, N - 1, ..., 1 (exact in float32)
    selected = op.NonMaxSuppression(
        batched_boxes, batched_ranks, count, op.Reshape(const_f32(float(threshold)), const_ints([1]))
    )  # [K, 3] (batch, class, position in the sorted order)
    positions = op.Reshape(op.Slice(selected, const_ints([2]), const_ints([3]), const_ints([1])), const_ints([-1]))
    return op.Gather(order, positions, axis=0)
