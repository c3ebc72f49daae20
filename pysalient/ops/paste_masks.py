"""Pasting RoI masks into the image: ``paste_masks`` and ``PasteMasks`` (detectron2 paste semantics).

Mask heads of box-based families (S4Net, RDPNet, InstanceFCN, SPRNet) predict a small probability map per box;
the image mask samples that map bilinearly at every pixel centre and thresholds it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def paste_masks(masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float = 0.5) -> Tensor:
    """Pastes RoI mask probabilities into a ``height`` x ``width`` image and thresholds them.

    Pixel (y, x) of RoI r takes the bilinear sample (align_corners=False, zero padding outside the mask) of
    ``masks[r]`` at ``u = (x + 0.5 - x1) / (x2 - x1) * Mw - 0.5``, ``v = (y + 0.5 - y1) / (y2 - y1) * Mh - 0.5``,
    which is detectron2's ``paste_masks_in_image`` (``grid_sample`` at the pixel centres), and is set when the
    sample is ``>= threshold``. With mask cells wider than a pixel and ``threshold < 0.5`` the bilinear tail
    reaches half a cell beyond the box, exactly as ``grid_sample`` over the whole image does. Boxes with zero,
    negative or non-finite extent paste nothing.

    Args:
        masks: [R, Mh, Mw] probabilities in [0, 1] (usually Mh = Mw = M); float16/bfloat16/float32/float64.
        boxes: [R, 4] (x1, y1, x2, y2) in image pixels, may extend beyond the image.
        height: image height in pixels.
        width: image width in pixels.
        threshold: sample value from which a pixel is foreground, in (0, 1].

    Returns:
        uint8 [R, height, width], 1 for foreground.
    """
    if not torch.jit.is_scripting():
        if not has_native():
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"paste_masks: threshold must be in (0, 1], got {threshold}")
            return _reference.paste_masks(masks, boxes, height, width, threshold)
    return torch.ops.pysalient.paste_masks(masks, boxes, height, width, threshold)


class PasteMasks(nn.Module):
    """Module form of :func:`paste_masks` with a fixed threshold.

    Args:
        threshold: sample value from which a pixel is foreground, in (0, 1].
    """

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(self, masks: Tensor, boxes: Tensor, height: int, width: int) -> Tensor:
        """Returns uint8 [R, height, width] from masks [R, Mh, Mw] and boxes [R, 4] (x1, y1, x2, y2)."""
        return paste_masks(masks, boxes, height, width, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"
