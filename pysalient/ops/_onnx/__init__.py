"""ONNX lowerings of the ``torch.ops.pysalient`` operators used at inference, for ``torch.onnx.export``.

Each lowering writes the op with standard (default-domain, opset 18) ONNX operators only, so TensorRT's parser,
ONNX Runtime and other runtimes run the exported graphs without plugins. :func:`onnx_translations` is the table
``torch.onnx.export(custom_translation_table=...)`` takes; it needs the optional ``onnx`` and ``onnxscript``
packages (``pip install pysalient[onnx]``), imported only when called. Training-only ops (backward kernels,
``dice_cost``, ``linear_sum_assignment``) have no lowering.
"""

from __future__ import annotations

from typing import Any, Callable, Dict


def onnx_translations() -> Dict[Any, Callable[..., Any]]:
    """``{op overload: lowering}`` for every inference op plus the ATen ops lowered here (see ``aten.py``)."""
    import torch

    from pysalient.ops._onnx.aten import (
        adaptive_avg_pool2d_onnx,
        group_norm_onnx,
        sort_onnx,
        sort_stable_onnx,
        upsample_bilinear2d_aa_onnx,
    )
    from pysalient.ops._onnx.masks import paste_masks_onnx, resize_masks_in_boxes_onnx, upsample_masks_onnx
    from pysalient.ops._onnx.nms import nms_onnx
    from pysalient.ops._onnx.resize_image import resize_image_onnx
    from pysalient.ops._onnx.rois import assemble_instances_onnx, multilevel_roi_align_onnx, roi_masking_onnx

    ops = torch.ops.pysalient
    return {
        ops.resize_image.default: resize_image_onnx,
        ops.upsample_masks.default: upsample_masks_onnx,
        ops.resize_masks_in_boxes.default: resize_masks_in_boxes_onnx,
        ops.paste_masks.default: paste_masks_onnx,
        ops.nms.default: nms_onnx,
        ops.multilevel_roi_align.default: multilevel_roi_align_onnx,
        ops.roi_masking.default: roi_masking_onnx,
        ops.assemble_instances.default: assemble_instances_onnx,
        torch.ops.aten._adaptive_avg_pool2d.default: adaptive_avg_pool2d_onnx,
        torch.ops.aten.adaptive_avg_pool2d.default: adaptive_avg_pool2d_onnx,
        torch.ops.aten._upsample_bilinear2d_aa.vec: upsample_bilinear2d_aa_onnx,
        torch.ops.aten.group_norm.default: group_norm_onnx,
        torch.ops.aten.sort.default: sort_onnx,
        torch.ops.aten.sort.stable: sort_stable_onnx,
    }
