"""Native operators of pysalient (``torch.ops.pysalient.*``) with typed Python functions and modules.

Every op is registered with the PyTorch dispatcher by ``libpysalient_ops.so`` (C++ CPU kernels, CUDA kernels
when built with CUDA), so it works in eager mode, under ``torch.jit.script``, under ``torch.export`` /
AOTInductor and inside a C++ process. When the library cannot be loaded, the functions below run the
pure-PyTorch references of :mod:`pysalient.ops._reference` instead (``has_native()`` is then False).
"""

import torch.fx

from pysalient.ops._library import has_native, load_native, native_library_path, native_load_error

if load_native():
    from pysalient.ops import _autocast, _autograd, _fake  # noqa: F401  (registrations)

from pysalient.ops.assemble_instances import InstanceAssembler, assemble_instances
from pysalient.ops.dice_cost import DiceCost, dice_cost
from pysalient.ops.linear_sum_assignment import LinearSumAssignment, linear_sum_assignment
from pysalient.ops.nms import NMS, batched_nms, nms
from pysalient.ops.paste_masks import PasteMasks, paste_masks
from pysalient.ops.resize_image import ResizeImage, resize_image
from pysalient.ops.resize_masks_in_boxes import ResizeMasksInBoxes, resize_masks_in_boxes
from pysalient.ops.roi_align import MultiLevelRoIAlign, RoIAlign, multilevel_roi_align, roi_align
from pysalient.ops.roi_masking import RoIMasking, roi_masking
from pysalient.ops.upsample_masks import UpsampleMasks, upsample_masks

# torch.fx keeps calls to ops.roi_align as leaves (as torchvision's): the name is patched here, where callers
# reach it, as well as in its defining module (pysalient/ops/roi_align.py).
torch.fx.wrap("roi_align")

__all__ = [
    "DiceCost",
    "InstanceAssembler",
    "LinearSumAssignment",
    "MultiLevelRoIAlign",
    "NMS",
    "PasteMasks",
    "ResizeImage",
    "ResizeMasksInBoxes",
    "RoIAlign",
    "RoIMasking",
    "UpsampleMasks",
    "assemble_instances",
    "batched_nms",
    "dice_cost",
    "has_native",
    "linear_sum_assignment",
    "multilevel_roi_align",
    "native_library_path",
    "native_load_error",
    "nms",
    "paste_masks",
    "resize_image",
    "resize_masks_in_boxes",
    "roi_align",
    "roi_masking",
    "upsample_masks",
]
