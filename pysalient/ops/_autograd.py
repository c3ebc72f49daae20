"""Autograd formulas of the differentiable operators, each calling its native backward operator.

Only ``roi_masking``, ``assemble_instances`` and ``multilevel_roi_align`` are differentiable (with respect to
their feature inputs; never to boxes or windows). Imported only after the native library is loaded.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

# ----------------------------------------------------------------------------------------------- roi_masking
# Gradients reach the features only: the masks are piecewise constant in the box coordinates.


def _roi_masking_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
    features, rois, spatial_scale, expand_ratio, mode = inputs
    ctx.save_for_backward(rois)
    ctx.masking_args = (spatial_scale, expand_ratio, mode)
    ctx.batch_size = features.shape[0]


def _roi_masking_backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], None, None, None, None]:
    (rois,) = ctx.saved_tensors
    grad_features = None
    if ctx.needs_input_grad[0]:
        grad_features = torch.ops.pysalient._roi_masking_backward(grad_output, rois, *ctx.masking_args, ctx.batch_size)
    return grad_features, None, None, None, None


torch.library.register_autograd(
    "pysalient::roi_masking", _roi_masking_backward, setup_context=_roi_masking_setup_context
)


def _roi_masking_backward_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
    _, rois, spatial_scale, expand_ratio, mode, _ = inputs
    ctx.save_for_backward(rois)
    ctx.masking_args = (spatial_scale, expand_ratio, mode)


def _roi_masking_double_backward(ctx: Any, grad: Tensor) -> Tuple[Optional[Tensor], None, None, None, None, None]:
    # The backward is linear in grad_output and its adjoint is the forward op itself.
    (rois,) = ctx.saved_tensors
    grad_grad_output = None
    if ctx.needs_input_grad[0]:
        grad_grad_output = torch.ops.pysalient.roi_masking(grad, rois, *ctx.masking_args)
    return grad_grad_output, None, None, None, None, None


torch.library.register_autograd(
    "pysalient::_roi_masking_backward",
    _roi_masking_double_backward,
    setup_context=_roi_masking_backward_setup_context,
)


# ---------------------------------------------------------------------------------------- assemble_instances
def _assemble_instances_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
    score_maps, windows, m, k = inputs
    ctx.save_for_backward(windows)
    ctx.m, ctx.k = m, k
    ctx.map_shape = (score_maps.shape[0], score_maps.shape[2], score_maps.shape[3])


def _assemble_instances_backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], None, None, None]:
    (windows,) = ctx.saved_tensors
    grad_score_maps = None
    if ctx.needs_input_grad[0]:
        batch_size, height, width = ctx.map_shape
        grad_score_maps = torch.ops.pysalient._assemble_instances_backward(
            grad_output, windows, ctx.m, ctx.k, batch_size, height, width
        )
    return grad_score_maps, None, None, None


torch.library.register_autograd(
    "pysalient::assemble_instances", _assemble_instances_backward, setup_context=_assemble_instances_setup_context
)


def _assemble_instances_backward_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
    _, windows, m, k, _, _, _ = inputs
    ctx.save_for_backward(windows)
    ctx.m, ctx.k = m, k


def _assemble_instances_double_backward(
    ctx: Any, grad: Tensor
) -> Tuple[Optional[Tensor], None, None, None, None, None, None]:
    # The scatter-add backward is linear in grad_output; its adjoint is the gathering forward op.
    (windows,) = ctx.saved_tensors
    grad_grad_output = None
    if ctx.needs_input_grad[0]:
        grad_grad_output = torch.ops.pysalient.assemble_instances(grad, windows, ctx.m, ctx.k)
    return grad_grad_output, None, None, None, None, None, None


torch.library.register_autograd(
    "pysalient::_assemble_instances_backward",
    _assemble_instances_double_backward,
    setup_context=_assemble_instances_backward_setup_context,
)


# -------------------------------------------------------------------------------------- multilevel_roi_align
# The op returns Tensor[]: register_autograd hands the backward one gradient per level as a list (zeros for
# levels that took no part in the loss) and expects a list back for the Tensor[] input.
def _multilevel_roi_align_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
    features, rois, spatial_scales, output_sizes, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.arguments = (list(spatial_scales), list(output_sizes), sampling_ratio, aligned)
    ctx.batch_size = features[0].shape[0]
    ctx.heights = [level.shape[2] for level in features]
    ctx.widths = [level.shape[3] for level in features]


def _multilevel_roi_align_backward(ctx: Any, grad_outputs: List[Tensor]) -> Tuple[Any, ...]:
    (rois,) = ctx.saved_tensors
    grad_features = torch.ops.pysalient._multilevel_roi_align_backward(
        list(grad_outputs), rois, *ctx.arguments, ctx.batch_size, ctx.heights, ctx.widths
    )
    return list(grad_features), None, None, None, None, None


torch.library.register_autograd(
    "pysalient::multilevel_roi_align",
    _multilevel_roi_align_backward,
    setup_context=_multilevel_roi_align_setup_context,
)


# The backward is linear in grad_outputs and its adjoint is the forward itself, which makes double backward exact.
def _multilevel_roi_align_backward_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
    _, rois, spatial_scales, output_sizes, sampling_ratio, aligned = inputs[:6]
    ctx.save_for_backward(rois)
    ctx.arguments = (list(spatial_scales), list(output_sizes), sampling_ratio, aligned)


def _multilevel_roi_align_double_backward(ctx: Any, grad_grad_features: List[Tensor]) -> Tuple[Any, ...]:
    (rois,) = ctx.saved_tensors
    grad_grad_outputs = torch.ops.pysalient.multilevel_roi_align(list(grad_grad_features), rois, *ctx.arguments)
    return (list(grad_grad_outputs),) + (None,) * 8


torch.library.register_autograd(
    "pysalient::_multilevel_roi_align_backward",
    _multilevel_roi_align_double_backward,
    setup_context=_multilevel_roi_align_backward_setup_context,
)
