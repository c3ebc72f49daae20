"""Absurd output sizes give a RuntimeError naming the allocation (never std::bad_alloc, a crash or a hang)."""

from __future__ import annotations

from typing import Callable, Dict

import pytest
import torch

from pysalient import ops

HUGE = 10**8  # 10^16 cells: beyond the 2^47-byte address space, so no overcommit setting lets it through
OVERFLOW = 2**40  # the element count overflows int64

MASKS = torch.rand(1, 8, 8)
BOXES = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
ROIS = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])
FEATURES = torch.rand(1, 2, 8, 8)

CASES: Dict[str, Callable[[int], object]] = {
    "roi_align": lambda size: ops.roi_align(FEATURES, ROIS, (size, size)),
    "multilevel_roi_align": lambda size: ops.multilevel_roi_align([FEATURES], ROIS, [1.0], [size]),
    "paste_masks": lambda size: ops.paste_masks(MASKS, BOXES, size, size),
    "resize_masks_in_boxes": lambda size: ops.resize_masks_in_boxes(MASKS, BOXES, [8, 8], [8, 8], [size, size]),
    "upsample_masks": lambda size: ops.upsample_masks(MASKS, [8, 8], [8, 8], [size, size], 0.5),
    "resize_image": lambda size: ops.resize_image(torch.zeros(10, 10, 3, dtype=torch.uint8), size, size),
}


@pytest.mark.parametrize("size", [HUGE, OVERFLOW], ids=["huge", "overflow"])
@pytest.mark.parametrize("op", sorted(CASES))
def test_absurd_output_size_is_a_clear_runtime_error(op: str, size: int) -> None:
    with pytest.raises(RuntimeError, match="allocate|overflow"):
        CASES[op](size)
