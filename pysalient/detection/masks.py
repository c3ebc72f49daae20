"""Pasting box-relative mask probabilities into the image with maskrcnn-benchmark's ``Masker`` rule.

``Masker(threshold, padding)`` (maskrcnn-benchmark ``paste_mask_in_image``, used by RDPNet's COCO evaluation):

1. zero-pad the M x M map by ``padding`` cells on each side (M' = M + 2 padding);
2. enlarge the box about its centre by M' / M, in float32 and in this order: ``half_w = (x2 - x1) * 0.5``,
   ``cx = (x2 + x1) * 0.5``, ``half_w *= M' / M``, ``x1' = cx - half_w``, ``x2' = cx + half_w`` (same for y);
3. truncate the four coordinates to int32 toward zero (not floor);
4. resize the padded map bilinearly (align_corners=False) to ``w = max(x2' - x1' + 1, 1)`` by
   ``h = max(y2' - y1' + 1, 1)``, threshold it strictly and write it at columns x1'..x2', rows y1'..y2'
   (inclusive), clipped to the image.

This is implemented on :func:`pysalient.ops.paste_masks` (detectron2 semantics: bilinear samples at pixel centres
of a box): pasting the padded map into the integer box ``(x1', y1', x2' + 1, y2' + 1)`` samples it at
``u = (i + 0.5) * M' / w - 0.5`` for pixel column ``x1' + i``, the sample positions of the Masker's resize, and
the zero border makes the outside (where the resize clamps and the paste pads) zero in both. The strict ``> t``
becomes ``>= t'`` with ``t'`` halfway between ``t`` and the next float32. The sample arithmetic differs in the
last bits (float64 positions here, float32 in ``F.interpolate``), which can flip a pixel whose probability lies
within ~1e-7 of the threshold. An inverted integer box (``x2' < x1'``) pastes nothing, as in the Masker.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pysalient import ops


def strictly_above(threshold: float) -> float:
    """The float64 halfway between float32(threshold) and the next float32: ``>=`` it is ``> threshold`` for
    float32 values."""
    value = np.float32(threshold)
    return float((np.float64(value) + np.float64(np.nextafter(value, np.float32(np.inf)))) / 2)


def expand_boxes_legacy(boxes: Tensor, scale: float) -> Tensor:
    """Boxes [R, 4] enlarged about their centres by ``scale``, in float32 with the Masker's operation order."""
    boxes = boxes.to(torch.float32)
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5
    center_x = (boxes[:, 2] + boxes[:, 0]) * 0.5
    center_y = (boxes[:, 3] + boxes[:, 1]) * 0.5
    half_w = half_w * scale
    half_h = half_h * scale
    return torch.stack([center_x - half_w, center_y - half_h, center_x + half_w, center_y + half_h], dim=1)


def paste_masks_legacy(
    probabilities: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5, padding: int = 1
) -> Tensor:
    """maskrcnn-benchmark's ``Masker(threshold, padding)`` (see the module docstring).

    Args:
        probabilities: [R, M, M] mask probabilities in box coordinates.
        boxes: [R, 4] (x1, y1, x2, y2) in output-image pixels.
        height, width: size of the output image.
        threshold: a pixel is set when its resized probability is strictly above it.
        padding: zero cells added on each side before the box is enlarged by ``(M + 2 padding) / M``.

    Returns:
        uint8 [R, height, width].
    """
    return paste_masks_legacy_from(probabilities, boxes, height, width, strictly_above(threshold), padding)


def paste_masks_legacy_from(
    probabilities: Tensor, boxes: Tensor, height: int, width: int, paste_threshold: float, padding: int = 1
) -> Tensor:
    """:func:`paste_masks_legacy` with the ``>=`` threshold of ``ops.paste_masks`` already derived
    (:func:`strictly_above`), so that it scripts."""
    size = probabilities.shape[-1]
    padded = F.pad(probabilities.to(torch.float32), [padding, padding, padding, padding])
    scale = float(size + 2 * padding) / float(size)
    corners = expand_boxes_legacy(boxes, scale).to(torch.int32).to(torch.float32)
    # Columns x1'..x2' inclusive: a box [x1', x2' + 1); w = x2' - x1' + 1 < 1 (inverted) pastes nothing.
    paste_boxes = corners + torch.tensor([0.0, 0.0, 1.0, 1.0], device=corners.device)
    return ops.paste_masks(padded, paste_boxes, height, width, paste_threshold)
