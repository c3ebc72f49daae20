"""Every operator refuses tensors on different devices, a ``meta`` tensor mixed with CPU ones included (such a call
dispatches to the fake kernel, which must raise rather than return an uninitialised CPU tensor)."""

from __future__ import annotations

from typing import Callable, Dict, List

import pytest
import torch

import pysalient.ops  # noqa: F401  (loads the native library and the fake kernels)

native = torch.ops.pysalient
FEATURES = torch.randn(1, 4, 8, 8)
ROIS = torch.tensor([[0.0, 1.0, 1.0, 5.0, 5.0]])
BOXES = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0]])


def meta(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to("meta")


# op -> (call with one argument on the meta device); every other tensor is on the CPU. resize_image,
# upsample_masks and linear_sum_assignment take a single tensor.
CALLS: Dict[str, Callable[[], object]] = {
    "roi_masking": lambda: native.roi_masking(FEATURES, meta(ROIS), 0.125, 1.0 / 3.0, 2),
    "_roi_masking_backward": lambda: native._roi_masking_backward(meta(FEATURES), ROIS, 0.125, 1.0 / 3.0, 2, 1),
    "assemble_instances": lambda: native.assemble_instances(
        torch.randn(1, 9, 8, 8), meta(torch.zeros(1, 3, dtype=torch.int64)), 3, 3
    ),
    "multilevel_roi_align": lambda: native.multilevel_roi_align([FEATURES], meta(ROIS), [0.5], [2], 2, True),
    "nms": lambda: native.nms(BOXES, meta(torch.rand(2)), 0.5),
    "paste_masks": lambda: native.paste_masks(torch.rand(1, 4, 4), meta(BOXES[:1]), 8, 8, 0.5),
    "resize_masks_in_boxes": lambda: native.resize_masks_in_boxes(
        torch.rand(1, 4, 4), meta(BOXES[:1]), [8, 8], [8, 8], [8, 8], 0.5
    ),
    "dice_cost": lambda: native.dice_cost(torch.randn(2, 16), meta(torch.rand(3, 16))),
}


@pytest.mark.parametrize("op", sorted(CALLS))
def test_mixed_devices_raise_naming_the_devices(op: str) -> None:
    with pytest.raises(RuntimeError, match="meta|device"):
        CALLS[op]()


def test_all_meta_arguments_still_give_meta_outputs() -> None:
    out: List[torch.Tensor] = [native.roi_masking(meta(FEATURES), meta(ROIS), 0.125, 1.0 / 3.0, 2)]
    out.append(native.resize_masks_in_boxes(meta(torch.rand(1, 4, 4)), meta(BOXES[:1]), [8, 8], [8, 8], [8, 8], 0.5))
    assert [tensor.device.type for tensor in out] == ["meta", "meta"]
    assert out[0].shape == (1, 4, 8, 8) and out[1].shape == (1, 8, 8)
