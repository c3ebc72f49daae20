"""SparseInst mask post-processing in one op: ``upsample_masks`` and ``UpsampleMasks``.

The official SparseInst inference turns decoder mask logits into image masks with sigmoid, a bilinear resize to
the padded input size, a crop to the resized image, a second bilinear resize to the original image size and a
threshold, and rescores each instance with its "maskness". The native kernel fuses all of it without building
the padded-size or output-size float maps.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def upsample_masks(
    mask_logits: Tensor, padded_hw: List[int], image_hw: List[int], output_hw: List[int], threshold: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """Binary masks, boxes and maskness of SparseInst mask logits at the original image size.

    Probabilities ``sigmoid(mask_logits)`` are resized bilinearly (align_corners=False) to ``padded_hw``,
    cropped to the top-left ``image_hw`` (the resized image inside the zero padding), resized bilinearly to
    ``output_hw`` and compared with ``threshold`` (strictly greater, in float32 for float16/bfloat16/float32
    logits). Maskness is the official mask rescoring factor,
    ``sum(p * (p > threshold)) / (sum(p > threshold) + 1e-6)`` over the [h, w] decoder-resolution map.

    Args:
        mask_logits: [N, h, w] mask logits over the padded input (float16, bfloat16, float32 or float64).
        padded_hw: (height, width) of the padded network input, at least ``image_hw``.
        image_hw: (height, width) of the resized image inside the padded input, at least 1x1.
        output_hw: (height, width) of the returned masks (the original image size), at least 1x1.
        threshold: probability above which a pixel is foreground (SparseInst uses 0.45).

    Returns:
        masks: uint8 [N, Ho, Wo], 1 for foreground.
        boxes: [N, 4] (x_min, y_min, x_max + 1, y_max + 1) tight box of each mask in output pixels (detectron2
            ``BitMasks`` convention), zeros for an empty mask; float64 for float64 logits, else float32.
        maskness: [N] mask rescoring factor, same dtype as ``boxes``.
    """
    if len(padded_hw) != 2 or len(image_hw) != 2 or len(output_hw) != 2:
        raise ValueError("upsample_masks: padded_hw, image_hw and output_hw must each hold 2 sizes (height, width)")
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.upsample_masks(mask_logits, padded_hw, image_hw, output_hw, threshold)
    return torch.ops.pysalient.upsample_masks(mask_logits, padded_hw, image_hw, output_hw, threshold)


class UpsampleMasks(nn.Module):
    """Module form of :func:`upsample_masks` with a fixed threshold.

    Args:
        threshold: probability above which a pixel is foreground (0.45 in SparseInst).
    """

    def __init__(self, threshold: float = 0.45) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(
        self, mask_logits: Tensor, padded_hw: List[int], image_hw: List[int], output_hw: List[int]
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Returns (uint8 masks [N, Ho, Wo], boxes [N, 4], maskness [N]) of mask logits [N, h, w]."""
        return upsample_masks(mask_logits, padded_hw, image_hw, output_hw, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"
