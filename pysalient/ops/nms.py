"""Non-maximum suppression: ``nms`` and ``batched_nms`` with torchvision's exact arguments and results, plus the
legacy convention of maskrcnn-benchmark (the official code of RDPNet and of FCOS-based families)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, legacy: bool = False) -> Tensor:
    """Greedy non-maximum suppression.

    Boxes are visited in decreasing score order (stable for ties); a box is dropped when an already kept box
    suppresses it:

    - ``legacy=False`` (torchvision): IoU without ``+1``, suppression when IoU ``> iou_threshold``;
    - ``legacy=True`` (maskrcnn-benchmark): widths, heights and intersections with ``+1``
      (``(x2 - x1 + 1) * (y2 - y1 + 1)``), suppression when IoU ``>= iou_threshold``.

    The kept indices are sorted by decreasing score in both conventions. maskrcnn-benchmark returns them in
    ascending original index order (detections keep their pre-NMS order); ``nms(...).sort().values`` gives that
    order. Under ``torch.autocast`` boxes and scores are compared in float32 (float64 stays float64).

    Garbage is tolerated as torchvision tolerates it, not rejected (checking values would cost a device
    synchronisation on CUDA): a NaN score sorts first (``torch.sort`` puts NaN above every number) and suppresses
    like any other box; a box with a NaN coordinate has a NaN IoU with every box, so it is kept and suppresses
    nothing; an inverted box (``x2 < x1`` or ``y2 < y1``) gets a negative area and a meaningless IoU, computed by
    the same formula.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2) with ``0 <= x1 < x2`` and ``0 <= y1 < y2`` expected (``<=`` with ``legacy``).
        scores: [N] score of each box.
        iou_threshold: IoU above which (from which, with ``legacy``) the lower-scored box is discarded.
        legacy: maskrcnn-benchmark's ``+1`` convention and ``>=`` test instead of torchvision's.

    Returns:
        keep: int64 [K] indices of the kept boxes, sorted by decreasing score.

    Raises:
        ValueError: when ``legacy`` is not a bool.
    """
    if not torch.jit.is_scripting():
        _check_legacy(legacy, "nms")
        if not has_native():
            return _reference.nms(boxes, scores, iou_threshold, legacy)
    return torch.ops.pysalient.nms(boxes, scores, iou_threshold, legacy)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, legacy: bool = False) -> Tensor:
    """NMS applied independently per category (torchvision semantics; ``legacy`` as in :func:`nms`).

    Boxes of different ``idxs`` never suppress each other. The coordinate-offset trick (one ``nms`` call on boxes
    shifted apart per category) runs whenever scripting, compiling or exporting, where it has no data-dependent
    Python branch, so the number of boxes may be an unbacked size (candidates selected by a score threshold). In
    eager mode large inputs (more than 1000 boxes on the CPU, 5000 on CUDA) run one ``nms`` per category instead,
    which avoids the precision loss of large offsets, exactly as torchvision does. The offsets separate categories
    for coordinates ``> -1`` (``>= 0`` with ``legacy``); shifted boxes can round differently, so a single-category
    input wanting bit-exact decisions should call :func:`nms` directly.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2).
        scores: [N] score of each box.
        idxs: [N] integer category (or image) of each box.
        iou_threshold: IoU above which (from which, with ``legacy``) the lower-scored box of the same category is
            discarded.
        legacy: maskrcnn-benchmark's ``+1`` convention and ``>=`` test instead of torchvision's.

    Returns:
        keep: int64 [K] indices of the kept boxes, sorted by decreasing score.

    Raises:
        ValueError: when ``legacy`` is not a bool.
        RuntimeError: when ``boxes``, ``scores`` and ``idxs`` do not hold the same number of boxes.
    """
    if not torch.jit.is_scripting():
        _check_legacy(legacy, "batched_nms")
        _check_same_count(boxes, scores, idxs)
        if not torch.compiler.is_compiling() and boxes.numel() > (4000 if boxes.device.type == "cpu" else 20000):
            return _batched_nms_per_category(boxes, scores, idxs, iou_threshold, legacy)
    return _batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold, legacy)


@torch.jit.unused
def _check_same_count(boxes: Tensor, scores: Tensor, idxs: Tensor) -> None:
    """boxes [N, 4], scores [N] and idxs [N] (a symbolic N under torch.export: checked with torch._check)."""
    torch._check(
        idxs.dim() == 1 and scores.dim() == 1 and idxs.shape[0] == scores.shape[0] == boxes.shape[0],
        lambda: (
            "batched_nms: boxes [N, 4], scores [N] and idxs [N] must describe the same N boxes, got "
            f"boxes {tuple(boxes.shape)}, scores {tuple(scores.shape)} and idxs {tuple(idxs.shape)}"
        ),
    )


def _batched_nms_coordinate_trick(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, legacy: bool
) -> Tensor:
    # torchvision branches on boxes.numel() == 0 because max() of an empty tensor raises; a -inf sentinel gives the
    # same maximum for non-empty inputs and no branch, so N may be an unbacked size. With legacy=True the +1 pixel
    # makes boxes that touch across categories overlap, hence one more unit of offset.
    sentinel = torch.full((1,), float("-inf"), dtype=boxes.dtype, device=boxes.device)
    max_coordinate = torch.cat([boxes.reshape(-1), sentinel]).max()
    step = max_coordinate + torch.tensor(2 if legacy else 1).to(boxes)
    offsets = idxs.to(boxes) * step
    return nms(boxes + offsets[:, None], scores, iou_threshold, legacy)


def _batched_nms_per_category(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, legacy: bool
) -> Tensor:
    keep_mask = torch.zeros_like(scores, dtype=torch.bool)
    for category in torch.unique(idxs):
        members = torch.where(idxs == category)[0]
        kept = nms(boxes[members], scores[members], iou_threshold, legacy)
        keep_mask[members[kept]] = True
    keep = torch.where(keep_mask)[0]
    return keep[scores[keep].sort(descending=True)[1]]


def _check_legacy(legacy: bool, op: str) -> None:
    if not isinstance(legacy, bool):
        raise ValueError(f"{op}: legacy must be a bool, got {type(legacy).__name__} {legacy!r}")


class NMS(nn.Module):
    """Module form of :func:`nms` / :func:`batched_nms` with a fixed IoU threshold and convention.

    Args:
        iou_threshold: IoU above which (from which, with ``legacy``) the lower-scored box is discarded.
        legacy: maskrcnn-benchmark's ``+1`` convention and ``>=`` test instead of torchvision's.
    """

    def __init__(self, iou_threshold: float, legacy: bool = False) -> None:
        super().__init__()
        _check_legacy(legacy, "NMS")
        self.iou_threshold = float(iou_threshold)
        self.legacy = legacy

    def forward(self, boxes: Tensor, scores: Tensor, idxs: Optional[Tensor] = None) -> Tensor:
        """Returns the int64 [K] kept indices; ``idxs`` [N] (optional) keeps categories apart."""
        if idxs is None:
            return nms(boxes, scores, self.iou_threshold, self.legacy)
        return batched_nms(boxes, scores, idxs, self.iou_threshold, self.legacy)

    def extra_repr(self) -> str:
        return f"iou_threshold={self.iou_threshold}, legacy={self.legacy}"
