"""Reference of ``upsample_masks`` (SparseInst mask post-processing) and its intermediate steps."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def upsample_masks(
    mask_logits: Tensor, padded_hw: Sequence[int], image_hw: Sequence[int], output_hw: Sequence[int], threshold: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """SparseInst mask post-processing, step by step as the official code does it (see ``pysalient.ops``).

    Args:
        mask_logits: [N, h, w] mask logits covering the padded input.
        padded_hw: (height, width) of the padded network input.
        image_hw: (height, width) of the resized image inside the padded input.
        output_hw: (height, width) of the masks to return (the original image size).
        threshold: probability above which a pixel is foreground (strict).

    Returns:
        masks: uint8 [N, Ho, Wo].
        boxes: [N, 4] (x_min, y_min, x_max + 1, y_max + 1) of each mask in output pixels, zeros when empty.
        maskness: [N] mean probability of the pixels above threshold at the input resolution.
    """
    logits = mask_logits.float() if mask_logits.dtype in (torch.float16, torch.bfloat16) else mask_logits
    probabilities = upsample_mask_probabilities(logits, padded_hw, image_hw, output_hw)
    decoder_probabilities = logits.sigmoid()
    above = (decoder_probabilities > threshold).to(decoder_probabilities.dtype)
    # Mask rescoring of the official code: the 1e-6 keeps an empty mask at maskness 0.
    maskness = (decoder_probabilities * above).sum((1, 2)) / (above.sum((1, 2)) + 1e-6)
    masks = probabilities > threshold
    return masks.to(torch.uint8), mask_boxes(masks).to(logits.dtype), maskness


def upsample_mask_probabilities(
    mask_logits: Tensor, padded_hw: Sequence[int], image_hw: Sequence[int], output_hw: Sequence[int]
) -> Tensor:
    """The probabilities ``upsample_masks`` thresholds: sigmoid, resize to padded, crop, resize to output.

    Args:
        mask_logits: [N, h, w] (float32 or float64).
        padded_hw: (height, width) of the padded network input.
        image_hw: (height, width) of the resized image inside the padded input.
        output_hw: (height, width) of the output.

    Returns:
        [N, Ho, Wo] probabilities.
    """
    if mask_logits.shape[0] == 0:
        return mask_logits.new_zeros((0, output_hw[0], output_hw[1]))
    padded = F.interpolate(
        mask_logits.sigmoid()[:, None], size=(padded_hw[0], padded_hw[1]), mode="bilinear", align_corners=False
    )
    cropped = padded[:, :, : image_hw[0], : image_hw[1]]
    return F.interpolate(cropped, size=(output_hw[0], output_hw[1]), mode="bilinear", align_corners=False)[:, 0]


def mask_boxes(masks: Tensor) -> Tensor:
    """Tight boxes of binary masks (detectron2 ``BitMasks.get_bounding_boxes``).

    Args:
        masks: bool [N, H, W] with H, W >= 1.

    Returns:
        int64 [N, 4] (x_min, y_min, x_max + 1, y_max + 1); all zeros for an empty mask.
    """
    rows, cols = masks.any(2), masks.any(1)
    y = torch.arange(masks.shape[1], device=masks.device)
    x = torch.arange(masks.shape[2], device=masks.device)
    y_min, y_max = torch.where(rows, y, masks.shape[1]).amin(1), torch.where(rows, y, -1).amax(1) + 1
    x_min, x_max = torch.where(cols, x, masks.shape[2]).amin(1), torch.where(cols, x, -1).amax(1) + 1
    boxes = torch.stack([x_min, y_min, x_max, y_max], dim=1)
    return torch.where(rows.any(1)[:, None], boxes, torch.zeros_like(boxes))
