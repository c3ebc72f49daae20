"""Fake (meta) kernels of every ``torch.ops.pysalient`` operator, all in one place.

A fake kernel computes output shapes, dtypes and devices without touching data, which is what
``torch.compile``, ``torch.export`` and AOTInductor trace through. Sizes that depend on the data (how many
boxes NMS keeps) are unbacked SymInts. Imported only after the native library has registered the schemas.
Sections are ordered as the schemas in ``csrc/ops/registration.cpp``.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, List, Sequence, Tuple

import torch
from torch import Tensor


def _tensor_arguments(names: Sequence[str], values: Sequence[Any]) -> List[Tuple[str, Tensor]]:
    found: List[Tuple[str, Tensor]] = []
    for name, value in zip(names, values):
        if isinstance(value, Tensor):
            found.append((name, value))
        elif isinstance(value, (list, tuple)):
            found.extend((f"{name}[{index}]", item) for index, item in enumerate(value) if isinstance(item, Tensor))
    return found


def _register_fake(qualified_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``torch.library.register_fake`` plus one check every op shares: all tensor arguments on one device.

    Mixing a ``meta`` tensor with real ones dispatches to the fake kernel, which would otherwise return an
    uninitialised tensor on the other argument's device; the error names both arguments and devices.
    """
    op = qualified_name.split("::")[-1]

    def decorator(fake: Callable[..., Any]) -> Callable[..., Any]:
        names = list(inspect.signature(fake).parameters)

        @functools.wraps(fake)
        def checked(*args: Any, **kwargs: Any) -> Any:
            tensors = _tensor_arguments(names[: len(args)], args) + _tensor_arguments(
                list(kwargs), list(kwargs.values())
            )
            if tensors:
                first_name, first = tensors[0]
                for name, tensor in tensors[1:]:
                    torch._check(
                        tensor.device == first.device,
                        lambda name=name, tensor=tensor: (
                            f"{op}: all tensor arguments must be on one device, but {name} is on {tensor.device} "
                            f"and {first_name} on {first.device}"
                        ),
                    )
            return fake(*args, **kwargs)

        torch.library.register_fake(qualified_name)(checked)
        return fake

    return decorator


# ---------------------------------------------------------------------------------------------- resize_image
@_register_fake("pysalient::resize_image")
def _resize_image_fake(image: Tensor, out_h: int, out_w: int) -> Tensor:
    torch._check(
        image.dim() in (3, 4), lambda: f"resize_image: image must be [H, W, C] or [B, H, W, C], got {image.shape}"
    )
    torch._check(image.dtype == torch.uint8, lambda: f"resize_image: image must be uint8, got {image.dtype}")
    return image.new_empty((*image.shape[:-3], out_h, out_w, image.shape[-1]))


# ----------------------------------------------------------------------------------------------- roi_masking
def _roi_masking_check_rois(rois: Tensor, reference: Tensor, op: str) -> None:
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: f"{op}: rois must have shape [R, 5], got {rois.shape}")
    torch._check(rois.dtype == reference.dtype, lambda: f"{op}: rois must have dtype {reference.dtype}")


@_register_fake("pysalient::roi_masking")
def _roi_masking_fake(features: Tensor, rois: Tensor, spatial_scale: float, expand_ratio: float, mode: int) -> Tensor:
    torch._check(features.dim() == 4, lambda: f"roi_masking: features must be [B, C, H, W], got {features.shape}")
    _roi_masking_check_rois(rois, features, "roi_masking")
    torch._check(mode in (0, 1, 2), lambda: f"roi_masking: mode must be 0, 1 or 2, got {mode}")
    _, channels, height, width = features.shape
    return features.new_empty((rois.shape[0], channels, height, width))


@_register_fake("pysalient::_roi_masking_backward")
def _roi_masking_backward_fake(
    grad_output: Tensor, rois: Tensor, spatial_scale: float, expand_ratio: float, mode: int, batch_size: int
) -> Tensor:
    torch._check(grad_output.dim() == 4, lambda: "_roi_masking_backward: grad_output must be [R, C, H, W]")
    _roi_masking_check_rois(rois, grad_output, "_roi_masking_backward")
    torch._check(rois.shape[0] == grad_output.shape[0])
    _, channels, height, width = grad_output.shape
    return grad_output.new_empty((batch_size, channels, height, width))


# ---------------------------------------------------------------------------------------- assemble_instances
@_register_fake("pysalient::assemble_instances")
def _assemble_instances_fake(score_maps: Tensor, windows: Tensor, m: int, k: int) -> Tensor:
    torch._check(score_maps.dim() == 4, lambda: f"assemble_instances: score_maps must be 4-D, got {score_maps.shape}")
    torch._check(
        score_maps.shape[1] == k * k,
        lambda: f"assemble_instances: score_maps must have k*k = {k * k} channels for k = {k}",
    )
    torch._check(
        windows.dim() == 2 and windows.shape[1] == 3 and windows.dtype == torch.int64,
        lambda: f"assemble_instances: windows must be int64 [R, 3], got {windows.dtype} {windows.shape}",
    )
    torch._check(m >= 1, lambda: f"assemble_instances: m must be >= 1, got {m}")
    return score_maps.new_empty((windows.shape[0], m, m))


@_register_fake("pysalient::_assemble_instances_backward")
def _assemble_instances_backward_fake(
    grad_output: Tensor, windows: Tensor, m: int, k: int, batch_size: int, height: int, width: int
) -> Tensor:
    torch._check(grad_output.dim() == 3, lambda: "_assemble_instances_backward: grad_output must be [R, m, m]")
    torch._check(windows.dim() == 2 and windows.shape[1] == 3 and windows.shape[0] == grad_output.shape[0])
    return grad_output.new_empty((batch_size, k * k, height, width))


# -------------------------------------------------------------------------------------- multilevel_roi_align
def _multilevel_roi_align_pooled_sizes(output_sizes: Sequence[Any], levels: int) -> List[Tuple[Any, Any]]:
    torch._check(
        len(output_sizes) in (levels, 2 * levels),
        lambda: f"multilevel_roi_align: output_sizes must hold {levels} or {2 * levels} sizes, not {len(output_sizes)}",
    )
    if len(output_sizes) == levels:
        return [(size, size) for size in output_sizes]
    return [(output_sizes[2 * level], output_sizes[2 * level + 1]) for level in range(levels)]


@_register_fake("pysalient::multilevel_roi_align")
def _multilevel_roi_align_fake(
    features: List[Tensor],
    rois: Tensor,
    spatial_scales: List[float],
    output_sizes: List[Any],
    sampling_ratio: int,
    aligned: bool,
) -> List[Tensor]:
    levels = len(features)
    torch._check(levels > 0, lambda: "multilevel_roi_align: features must be a non-empty list")
    torch._check(
        rois.dim() == 2 and rois.shape[1] == 5, lambda: f"multilevel_roi_align: rois must be [R, 5], got {rois.shape}"
    )
    torch._check(len(spatial_scales) == levels, lambda: "multilevel_roi_align: one spatial scale per level")
    outputs = []
    for level, (out_h, out_w) in zip(features, _multilevel_roi_align_pooled_sizes(output_sizes, levels)):
        torch._check(level.dim() == 4, lambda: "multilevel_roi_align: every level must be [B, C, H, W]")
        torch._check(level.dtype == rois.dtype, lambda: "multilevel_roi_align: rois must have the dtype of features")
        outputs.append(level.new_empty((rois.shape[0], level.shape[1], out_h, out_w)))
    return outputs


@_register_fake("pysalient::_multilevel_roi_align_backward")
def _multilevel_roi_align_backward_fake(
    grad_outputs: List[Tensor],
    rois: Tensor,
    spatial_scales: List[float],
    output_sizes: List[Any],
    sampling_ratio: int,
    aligned: bool,
    batch_size: Any,
    heights: List[Any],
    widths: List[Any],
) -> List[Tensor]:
    levels = len(grad_outputs)
    torch._check(levels > 0, lambda: "_multilevel_roi_align_backward: grad_outputs must be a non-empty list")
    torch._check(len(heights) == levels and len(widths) == levels, lambda: "one height and width per level")
    _multilevel_roi_align_pooled_sizes(output_sizes, levels)
    return [
        grad.new_empty((batch_size, grad.shape[1], height, width))
        for grad, height, width in zip(grad_outputs, heights, widths)
    ]


# ------------------------------------------------------------------------------------------------------- nms
@_register_fake("pysalient::nms")
def _nms_fake(boxes: Tensor, scores: Tensor, iou_threshold: float, legacy: bool = False) -> Tensor:
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 4, lambda: f"nms: boxes must be [N, 4], got {boxes.shape}")
    torch._check(scores.dim() == 1, lambda: f"nms: scores must be [N], got {scores.shape}")
    num_kept = torch.library.get_ctx().new_dynamic_size()
    torch._check(num_kept <= boxes.shape[0])
    return boxes.new_empty((num_kept,), dtype=torch.int64)


# ---------------------------------------------------------------------------------------------- paste_masks
@_register_fake("pysalient::paste_masks")
def _paste_masks_fake(
    masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float, legacy: bool = False, padding: int = 1
) -> Tensor:
    torch._check(masks.dim() == 3, lambda: f"paste_masks: masks must be [R, Mh, Mw], got {masks.shape}")
    torch._check(
        boxes.dim() == 2 and boxes.shape[1] == 4, lambda: f"paste_masks: boxes must be [R, 4], got {boxes.shape}"
    )
    torch._check(
        masks.shape[0] == boxes.shape[0],
        lambda: f"paste_masks: masks has {masks.shape[0]} RoIs but boxes has {boxes.shape[0]} rows",
    )
    torch._check(padding >= 0, lambda: f"paste_masks: padding must be non-negative, got {padding}")
    if legacy:
        torch._check(
            masks.shape[1] == masks.shape[2],
            lambda: f"paste_masks: legacy (Masker) pasting needs square masks [R, M, M], got {masks.shape}",
        )
        torch._check(
            0.0 <= threshold <= 1.0,
            lambda: f"paste_masks: threshold must be in [0, 1] with legacy=True, got {threshold}",
        )
    else:
        torch._check(0.0 < threshold <= 1.0, lambda: f"paste_masks: threshold must be in (0, 1], got {threshold}")
    return masks.new_empty((masks.shape[0], height, width), dtype=torch.uint8)


# ------------------------------------------------------------------------------------------- upsample_masks
@_register_fake("pysalient::upsample_masks")
def _upsample_masks_fake(
    mask_logits: Tensor, padded_hw: List[int], image_hw: List[int], output_hw: List[int], threshold: float
) -> Tuple[Tensor, Tensor, Tensor]:
    torch._check(
        mask_logits.dim() == 3, lambda: f"upsample_masks: mask_logits must be [N, h, w], got {mask_logits.shape}"
    )
    torch._check(
        mask_logits.dtype.is_floating_point,
        lambda: f"upsample_masks: mask_logits must be floating point, got {mask_logits.dtype}",
    )
    torch._check(
        len(padded_hw) == 2 and len(image_hw) == 2 and len(output_hw) == 2,
        lambda: "upsample_masks: padded_hw, image_hw and output_hw must each hold 2 sizes",
    )
    num_masks = mask_logits.shape[0]
    # Boxes and maskness are float32 for every reduced or single precision input, float64 for float64 ones.
    out_dtype = torch.float64 if mask_logits.dtype == torch.float64 else torch.float32
    return (
        mask_logits.new_empty((num_masks, output_hw[0], output_hw[1]), dtype=torch.uint8),
        mask_logits.new_empty((num_masks, 4), dtype=out_dtype),
        mask_logits.new_empty((num_masks,), dtype=out_dtype),
    )


# ------------------------------------------------------------------------------------ resize_masks_in_boxes
@_register_fake("pysalient::resize_masks_in_boxes")
def _resize_masks_in_boxes_fake(
    probabilities: Tensor,
    boxes: Tensor,
    padded_hw: List[int],
    image_hw: List[int],
    output_hw: List[int],
    threshold: float,
) -> Tensor:
    op = "resize_masks_in_boxes"
    torch._check(
        probabilities.dim() == 3 and probabilities.dtype.is_floating_point,
        lambda: (
            f"{op}: probabilities must be a floating [N, h, w] tensor, got {probabilities.dtype} {probabilities.shape}"
        ),
    )
    torch._check(
        boxes.dim() == 2 and boxes.shape[1] == 4 and boxes.dtype.is_floating_point,
        lambda: f"{op}: boxes must be a floating [N, 4] tensor (x1, y1, x2, y2), got {boxes.dtype} {boxes.shape}",
    )
    # A meta tensor mixed with a real one reaches this kernel (Meta outranks CPU and CUDA): refuse it here.
    torch._check(
        boxes.device == probabilities.device,
        lambda: f"{op}: boxes is on {boxes.device} but probabilities is on {probabilities.device}",
    )
    torch._check(
        boxes.shape[0] == probabilities.shape[0],
        lambda: f"{op}: probabilities has {probabilities.shape[0]} masks but boxes has {boxes.shape[0]} rows",
    )
    torch._check(
        len(padded_hw) == 2 and len(image_hw) == 2 and len(output_hw) == 2,
        lambda: f"{op}: padded_hw, image_hw and output_hw must each hold 2 sizes (height, width)",
    )
    torch._check(
        math.isfinite(threshold) and 0.0 <= threshold < 1.0,
        lambda: f"{op}: threshold must be a finite value in [0, 1), got {threshold}",
    )
    # Size checks on concrete sizes only: on symbolic ones they would guard (and constrain exported dims); the
    # kernels check them at run time.
    sizes = [probabilities.shape[1], probabilities.shape[2], *padded_hw, *image_hw, *output_hw]
    if all(isinstance(size, int) for size in sizes):
        torch._check(
            probabilities.shape[1] >= 1 and probabilities.shape[2] >= 1,
            lambda: f"{op}: probabilities must have a non-empty [h, w] map, got shape {probabilities.shape}",
        )
        torch._check(
            min(image_hw) >= 1 and min(output_hw) >= 1,
            lambda: f"{op}: image_hw and output_hw must be at least 1x1, got {image_hw} and {output_hw}",
        )
        torch._check(
            padded_hw[0] >= image_hw[0] and padded_hw[1] >= image_hw[1],
            lambda: f"{op}: padded_hw {padded_hw} must be at least image_hw {image_hw}",
        )
    return probabilities.new_empty((probabilities.shape[0], output_hw[0], output_hw[1]), dtype=torch.uint8)


# ------------------------------------------------------------------------------------------------ dice_cost
@_register_fake("pysalient::dice_cost")
def _dice_cost_fake(pred_logits: Tensor, targets: Tensor) -> Tensor:
    torch._check(pred_logits.dim() == 2, lambda: f"dice_cost: pred_logits must be [N, P], got {pred_logits.shape}")
    torch._check(targets.dim() == 2, lambda: f"dice_cost: targets must be [K, P], got {targets.shape}")
    torch._check(
        pred_logits.shape[1] == targets.shape[1],
        lambda: f"dice_cost: pred_logits has P={pred_logits.shape[1]} but targets has P={targets.shape[1]}",
    )
    dtype = torch.float64 if pred_logits.dtype == torch.float64 else torch.float32
    return pred_logits.new_empty((pred_logits.shape[0], targets.shape[0]), dtype=dtype)


# ---------------------------------------------------------------------------------- linear_sum_assignment
@_register_fake("pysalient::linear_sum_assignment")
def _linear_sum_assignment_fake(cost: Tensor, maximize: bool) -> Tuple[Tensor, Tensor]:
    torch._check(cost.dim() == 2, lambda: f"linear_sum_assignment: cost must be [N, K], got {cost.shape}")
    # The output length is min(N, K) whatever the values (an infeasible matrix raises instead of returning fewer
    # pairs), so it is a backed expression of the input sizes rather than the unbacked SymInt first planned for
    # this op: a backed size lets the compiler prove e.g. rows.shape[0] <= N without runtime asserts.
    num_pairs = torch.sym_min(cost.shape[0], cost.shape[1])
    return cost.new_empty((num_pairs,), dtype=torch.int64), cost.new_empty((num_pairs,), dtype=torch.int64)
