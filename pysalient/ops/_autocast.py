"""Autocast kernels of every ``torch.ops.pysalient`` operator (CPU and CUDA), so that AMP training works.

Under ``torch.autocast`` an op's floating-point tensor inputs are cast to one common dtype before the native
kernel runs with autocast disabled, as torchvision's autocast kernels do: float32, or float64 when any floating
input is float64 (autocast never lowers float64). Integer tensors (windows, ``uint8`` images) are left alone.
This is what lets e.g. ``roi_align`` take bfloat16 features with float32 boxes inside an autocast region, where
the kernels themselves require one dtype.

Floating outputs of the ops that return features (``roi_masking``, ``assemble_instances``,
``multilevel_roi_align`` and so ``roi_align``) are cast back to the dtype of their feature input, as torchvision's
``roi_align`` does; the other ops keep the dtypes they document for float32 inputs (``dice_cost``,
``upsample_masks``: float32; ``nms``, ``linear_sum_assignment``: int64; ``paste_masks``, ``resize_image``,
``resize_masks_in_boxes``: uint8).
The kernels are Python (``torch.library``), so they apply in Python processes, including to TorchScript modules
run from Python; a C++ process runs the ops with the dtypes it passes. Imported only after the native library is
loaded.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

_LIBRARY = torch.library.Library("pysalient", "IMPL")
_AUTOCAST_KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU) | torch._C.DispatchKeySet(
    torch._C.DispatchKey.AutocastCUDA
)

# op name -> whether its floating outputs go back to the dtype of its first floating input.
AUTOCAST_OPS = {
    "resize_image": False,
    "roi_masking": True,
    "_roi_masking_backward": False,
    "assemble_instances": True,
    "_assemble_instances_backward": False,
    "multilevel_roi_align": True,
    "_multilevel_roi_align_backward": False,
    "nms": False,
    "paste_masks": False,
    "upsample_masks": False,
    "resize_masks_in_boxes": False,
    "dice_cost": False,
    "linear_sum_assignment": False,
}


def _floating_tensors(value: Any) -> list:
    if isinstance(value, Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in _floating_tensors(item)]
    return []


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(item, dtype) for item in value)
    return value


def _make_kernel(op: Callable[..., Any], cast_back: bool) -> Callable[..., Any]:
    def kernel(keyset: Any, *args: Any, **kwargs: Any) -> Any:
        floating = _floating_tensors(args)
        dtype = torch.float64 if any(tensor.dtype == torch.float64 for tensor in floating) else torch.float32
        with torch._C._ExcludeDispatchKeyGuard(_AUTOCAST_KEYS):
            outputs = op(*_cast(args, dtype), **kwargs)
        if not cast_back or not floating:
            return outputs
        return _cast(outputs, floating[0].dtype)

    return kernel


def _register(name: str, cast_back: bool, lib: Optional[torch.library.Library] = None) -> None:
    op = getattr(torch.ops.pysalient, name).default
    kernel = _make_kernel(op, cast_back)
    for key in ("AutocastCPU", "AutocastCUDA"):
        (lib or _LIBRARY).impl(name, kernel, key, with_keyset=True)


for _name, _cast_back in AUTOCAST_OPS.items():
    _register(_name, _cast_back)
