"""Autograd formulas of the differentiable operators, each calling its native backward operator.

Only ``roi_masking``, ``assemble_instances`` and ``multilevel_roi_align`` are differentiable (with respect to
their feature inputs; never to boxes or windows). Imported only after the native library is loaded.
"""

from __future__ import annotations

import math  # noqa: F401  (shared file: sections may need it; unused ones are pruned when all sections exist)
from typing import Any, List, Optional, Sequence, Tuple  # noqa: F401

import torch
import torch.nn.functional as F  # noqa: F401
from torch import Tensor

# ----------------------------------------------------------------------------------------------- roi_masking
# (section owned by roi_masking)

# ---------------------------------------------------------------------------------------- assemble_instances
# (section owned by assemble_instances)

# -------------------------------------------------------------------------------------- multilevel_roi_align
# (section owned by multilevel_roi_align)
