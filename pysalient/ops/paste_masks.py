"""Pasting RoI masks into the image: ``paste_masks`` and ``PasteMasks`` (detectron2 paste semantics, or
maskrcnn-benchmark's ``Masker`` with ``legacy=True``).

Mask heads of box-based families (S4Net, RDPNet, InstanceFCN, SPRNet) predict a small probability map per box;
the image mask samples that map bilinearly at every pixel centre and thresholds it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def paste_masks(
    masks: Tensor,
    boxes: Tensor,
    height: int,
    width: int,
    threshold: float = 0.5,
    legacy: bool = False,
    padding: int = 1,
) -> Tensor:
    """Pastes RoI mask probabilities into a ``height`` x ``width`` image and thresholds them.

    ``legacy=False`` (detectron2): pixel (y, x) of RoI r takes the bilinear sample (align_corners=False, zero
    padding outside the mask) of ``masks[r]`` at ``u = (x + 0.5 - x1) / (x2 - x1) * Mw - 0.5``,
    ``v = (y + 0.5 - y1) / (y2 - y1) * Mh - 0.5``, which is detectron2's ``paste_masks_in_image`` (``grid_sample``
    at the pixel centres), and is set when the sample is ``>= threshold``. With mask cells wider than a pixel and
    ``threshold < 0.5`` the bilinear tail reaches half a cell beyond the box, exactly as ``grid_sample`` over the
    whole image does. Boxes with zero, negative or non-finite extent paste nothing.

    ``legacy=True`` (maskrcnn-benchmark's ``Masker(threshold, padding)``, RDPNet's official evaluation), in float32
    with the original operation order, bit for bit: the M x M map is zero-padded by ``padding`` cells; the box is
    enlarged about its centre by (M + 2 padding) / M (``half_w = (x2 - x1) * 0.5``, ``cx = (x2 + x1) * 0.5``,
    ``half_w *= scale``, ``x1' = cx - half_w``, ``x2' = cx + half_w``); the corners are truncated toward zero to
    integers (not floored); the padded map is resized to ``max(x2' - x1' + 1, 1)`` by ``max(y2' - y1' + 1, 1)``
    as ``F.interpolate(mode="bilinear", align_corners=False)`` computes it on the CPU (AVX2/AVX512 builds, whose
    FMAs the kernels reproduce explicitly), set where it is ``> threshold`` (strict) and written at columns
    ``x1'..x2'`` and rows ``y1'..y2'`` (inclusive), clipped to the image. A zero-size box still pastes one pixel;
    an inverted integer box or one with non-finite corners pastes nothing.

    Args:
        masks: [R, Mh, Mw] probabilities in [0, 1] (Mh = Mw with ``legacy``); float16/bfloat16/float32/float64.
        boxes: [R, 4] (x1, y1, x2, y2) in image pixels, may extend beyond the image (rounded to float32 with
            ``legacy``, as the Masker's boxes are).
        height: image height in pixels.
        width: image width in pixels.
        threshold: sample value from which a pixel is foreground, in (0, 1]; with ``legacy`` the value above
            which it is, in [0, 1].
        legacy: maskrcnn-benchmark's ``Masker`` instead of detectron2's pasting.
        padding: zero cells added around each mask before its box is enlarged (``legacy`` only; the Masker's
            default is 1), non-negative.

    Returns:
        uint8 [R, height, width], 1 for foreground.

    Raises:
        ValueError: when ``legacy`` is not a bool (or, without the native library, the threshold is out of range).
    """
    if not torch.jit.is_scripting():
        _check_legacy(legacy, "paste_masks")
        if not has_native():
            _check_threshold(threshold, legacy)
            return _reference.paste_masks(masks, boxes, height, width, threshold, legacy, padding)
    return torch.ops.pysalient.paste_masks(masks, boxes, height, width, threshold, legacy, padding)


def _check_legacy(legacy: bool, op: str) -> None:
    if not isinstance(legacy, bool):
        raise ValueError(f"{op}: legacy must be a bool, got {type(legacy).__name__} {legacy!r}")


def _check_threshold(threshold: float, legacy: bool) -> None:
    """The native kernels' threshold check, for the reference fallback."""
    low_ok = threshold >= 0.0 if legacy else threshold > 0.0
    if not (low_ok and threshold <= 1.0):
        interval = "[0, 1]" if legacy else "(0, 1]"
        raise ValueError(f"paste_masks: threshold must be in {interval}, got {threshold}")


class PasteMasks(nn.Module):
    """Module form of :func:`paste_masks` with a fixed threshold and convention.

    Args:
        threshold: sample value from which (above which, with ``legacy``) a pixel is foreground.
        legacy: maskrcnn-benchmark's ``Masker`` instead of detectron2's pasting.
        padding: zero cells added around each mask (``legacy`` only).
    """

    def __init__(self, threshold: float = 0.5, legacy: bool = False, padding: int = 1) -> None:
        super().__init__()
        _check_legacy(legacy, "PasteMasks")
        self.threshold = float(threshold)
        self.legacy = legacy
        self.padding = int(padding)

    def forward(self, masks: Tensor, boxes: Tensor, height: int, width: int) -> Tensor:
        """Returns uint8 [R, height, width] from masks [R, Mh, Mw] and boxes [R, 4] (x1, y1, x2, y2)."""
        return paste_masks(masks, boxes, height, width, self.threshold, self.legacy, self.padding)

    def extra_repr(self) -> str:
        if self.legacy:
            return f"threshold={self.threshold}, legacy=True, padding={self.padding}"
        return f"threshold={self.threshold}"
