"""Pillow-identical uint8 bilinear image resize: ``resize_image`` and ``ResizeImage``.

The official pipelines of the model families resize test images with Pillow (detectron2's
``ResizeShortestEdge`` calls ``Image.resize(..., BILINEAR)``). Other bilinear resizers differ by one grey level
on a few percent of the pixels, which is enough to flip mask pixels and move scores beyond parity tolerances,
so this op reproduces Pillow bit for bit and can live inside exported graphs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def resize_image(image: Tensor, out_h: int, out_w: int) -> Tensor:
    """Resizes uint8 images exactly as Pillow's ``Image.resize((out_w, out_h), Image.BILINEAR)``.

    Separable: one pass per axis with a triangle filter stretched by the downscaling factor (antialiasing),
    22-bit fixed-point weights and uint8 rounding between the passes; a pass whose size does not change is
    skipped. The horizontal pass runs first unless the height shrinks by more than twice as many pixels as the
    width, as in Pillow >= 13.

    Args:
        image: uint8 [H, W, C] or [B, H, W, C], channels last (RGB, BGR, grey: any C >= 1).
        out_h: output height in pixels, at least 1.
        out_w: output width in pixels, at least 1.

    Returns:
        uint8 [out_h, out_w, C] or [B, out_h, out_w, C], matching the input's layout.
    """
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.resize_image(image, out_h, out_w)
    return torch.ops.pysalient.resize_image(image, out_h, out_w)


class ResizeImage(nn.Module):
    """Module form of :func:`resize_image` with a fixed output size.

    Args:
        height: output height in pixels.
        width: output width in pixels.
    """

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height = int(height)
        self.width = int(width)

    def forward(self, image: Tensor) -> Tensor:
        """Returns ``image`` (uint8 [H, W, C] or [B, H, W, C]) resized to [(B,) height, width, C]."""
        return resize_image(image, self.height, self.width)

    def extra_repr(self) -> str:
        return f"height={self.height}, width={self.width}"
