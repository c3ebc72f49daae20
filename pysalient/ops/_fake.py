"""Fake (meta) kernels of every ``torch.ops.pysalient`` operator, all in one place.

A fake kernel computes output shapes, dtypes and devices without touching data, which is what
``torch.compile``, ``torch.export`` and AOTInductor trace through. Sizes that depend on the data (how many
boxes NMS keeps) are unbacked SymInts. Imported only after the native library has registered the schemas.
Sections are ordered as the schemas in ``csrc/ops/registration.cpp``.
"""

from __future__ import annotations

import math  # noqa: F401  (shared file: sections may need it; unused ones are pruned when all sections exist)
from typing import Any, List, Optional, Sequence, Tuple  # noqa: F401

import torch
import torch.nn.functional as F  # noqa: F401
from torch import Tensor

# ---------------------------------------------------------------------------------------------- resize_image
# (section owned by resize_image)

# ----------------------------------------------------------------------------------------------- roi_masking
# (section owned by roi_masking)

# ---------------------------------------------------------------------------------------- assemble_instances
# (section owned by assemble_instances)

# -------------------------------------------------------------------------------------- multilevel_roi_align
# (section owned by multilevel_roi_align)


# ------------------------------------------------------------------------------------------------------- nms
@torch.library.register_fake("pysalient::nms")
def _nms_fake(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 4, lambda: f"nms: boxes must be [N, 4], got {boxes.shape}")
    torch._check(scores.dim() == 1, lambda: f"nms: scores must be [N], got {scores.shape}")
    num_kept = torch.library.get_ctx().new_dynamic_size()
    torch._check(num_kept <= boxes.shape[0])
    return boxes.new_empty((num_kept,), dtype=torch.int64)


# ---------------------------------------------------------------------------------------------- paste_masks
# (section owned by paste_masks)

# ------------------------------------------------------------------------------------------- upsample_masks
# (section owned by upsample_masks)

# ------------------------------------------------------------------------------------------------ dice_cost
# (section owned by dice_cost)

# ---------------------------------------------------------------------------------- linear_sum_assignment
# (section owned by linear_sum_assignment)
