"""S4Net's test-time mask step in one op: ``resize_masks_in_boxes`` and ``ResizeMasksInBoxes``.

S4Net's segmentation branch predicts, for every detection, a foreground probability map on the stride-8 feature grid
of the padded network input (RoIMasking keeps the full map). The official test code resizes that map to the original
image size, keeps it only inside the detection's box and thresholds it. The native kernel does this in one pass per
output pixel inside the box, without any float map of the output size.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def resize_masks_in_boxes(
    probabilities: Tensor,
    boxes: Tensor,
    padded_hw: List[int],
    image_hw: List[int],
    output_hw: List[int],
    threshold: float = 0.5,
) -> Tensor:
    """Binary masks at the original image size from S4Net's per-detection probability maps, cut to their boxes.

    Pixel (y, x) of mask n is 1 iff it lies inside the box rectangle AND the bilinearly resampled probability is
    ``> threshold`` (strict). The box rectangle (the official ``int()`` cut of S4Net with its +1 end, written with
    floor) holds columns ``floor(x1) <= x < floor(x2) + 1`` and rows ``floor(y1) <= y < floor(y2) + 1``, clipped to
    ``[0, W) x [0, H)``. A box that is empty after clipping or inverted gives an all-zero mask; so does a box with
    any NaN coordinate; infinite coordinates clip to the image border. (``floor`` differs from ``int()`` only for a
    corner in (-1, 0), i.e. at the clipped left/top border: a box ending in (-1, 0) covers nothing here.)

    Resampling is one bilinear resize (align_corners=False) from the part of the map that covers the resized image
    to the output size: output row y samples the map at ``sy = (y + 0.5) * (hi / H) * (h / Hp) - 0.5``, clamped
    below at 0 (PyTorch's rule), between rows ``floor(sy)`` and ``min(floor(sy) + 1, h - 1)`` with weight
    ``sy - floor(sy)`` on the second; columns likewise with ``wi``, ``W``, ``w``, ``Wp``. The scale factors and
    positions are computed in float64, the weights and the interpolation in float32 for float16, bfloat16 and
    float32 maps (float64 for float64 maps), where the comparison with the threshold happens too. When
    ``image_hw == padded_hw`` this is ``F.interpolate(p[:, None], size=(H, W), mode="bilinear",
    align_corners=False)`` followed by the box cut and the threshold, up to float rounding at the threshold.
    Only pixels inside each clipped box are evaluated; everything else is written as 0.

    The op is not differentiable (integer output); inputs that require grad are accepted.

    Args:
        probabilities: [N, h, w] foreground probabilities (float16, bfloat16, float32 or float64) on a feature
            grid covering the padded network input of size ``padded_hw``, h, w >= 1.
        boxes: [N, 4] (x1, y1, x2, y2) in output pixels, any floating dtype (cast to float64 for the geometry),
            on the device of ``probabilities``.
        padded_hw: (Hp, Wp) of the padded network input, at least ``image_hw``.
        image_hw: (hi, wi) of the resized image, the top-left part of the padded input, at least 1x1.
        output_hw: (H, W) of the returned masks (the original image size), at least 1x1.
        threshold: probability above which a pixel inside its box is foreground, finite, in [0, 1).

    Returns:
        uint8 [N, H, W], 1 for foreground; N = 0 gives [0, H, W].

    Raises:
        ValueError: when a size list does not hold 2 entries (or, without the native library, on any argument the
            kernels reject). The native kernels raise RuntimeError naming the argument.
    """
    if len(padded_hw) != 2 or len(image_hw) != 2 or len(output_hw) != 2:
        raise ValueError(
            "resize_masks_in_boxes: padded_hw, image_hw and output_hw must each hold 2 sizes (height, width)"
        )
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.resize_masks_in_boxes(probabilities, boxes, padded_hw, image_hw, output_hw, threshold)
    return torch.ops.pysalient.resize_masks_in_boxes(probabilities, boxes, padded_hw, image_hw, output_hw, threshold)


class ResizeMasksInBoxes(nn.Module):
    """Module form of :func:`resize_masks_in_boxes` with a fixed threshold.

    Args:
        threshold: probability above which a pixel inside its box is foreground (0.5 in S4Net).
    """

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(
        self, probabilities: Tensor, boxes: Tensor, padded_hw: List[int], image_hw: List[int], output_hw: List[int]
    ) -> Tensor:
        """Returns uint8 masks [N, H, W] from probabilities [N, h, w] and boxes [N, 4] (x1, y1, x2, y2)."""
        return resize_masks_in_boxes(probabilities, boxes, padded_hw, image_hw, output_hw, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"
