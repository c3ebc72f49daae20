"""Autograd formulas of the differentiable operators, each calling its native backward operator.

Only ``roi_masking``, ``assemble_instances`` and ``multilevel_roi_align`` are differentiable (with respect to
their feature inputs; never to boxes or windows). Imported only after the native library is loaded.
"""

from __future__ import annotations


# ----------------------------------------------------------------------------------------------- roi_masking
# (section owned by roi_masking)

# ---------------------------------------------------------------------------------------- assemble_instances
# (section owned by assemble_instances)

# -------------------------------------------------------------------------------------- multilevel_roi_align
# (section owned by multilevel_roi_align)
