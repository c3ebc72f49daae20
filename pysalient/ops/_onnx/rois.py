"""ONNX lowerings of the RoI ops: ``multilevel_roi_align`` (``RoiAlign``), ``roi_masking`` and
``assemble_instances`` (comparisons and Gather)."""

from __future__ import annotations

from typing import Any, List, Sequence

from onnxscript import opset18 as op

from pysalient.ops._onnx._common import BOOL, DOUBLE, INT64, arange, const_f64, const_i64, const_ints, dim, scalar_i64


def _columns(rois: Any, start: int, end: int) -> Any:
    return op.Slice(rois, const_ints([start]), const_ints([end]), const_ints([1]))


def multilevel_roi_align_onnx(
    features: Sequence[Any],
    rois: Any,
    spatial_scales: Sequence[float],
    output_sizes: Sequence[int],
    sampling_ratio: int,
    aligned: bool,
) -> List[Any]:
    """``pysalient::multilevel_roi_align``: torchvision RoIAlign of every level, one ONNX ``RoiAlign`` each.

    ``aligned=True`` is ONNX's ``half_pixel`` mode; ``aligned=False`` its ``output_half_pixel`` mode (RoIs of at
    least one cell), torchvision's legacy behaviour. ONNX's ``sampling_ratio=0`` is the adaptive ``ceil(extent /
    out)`` of a non-positive ratio.
    """
    levels = len(features)
    if len(output_sizes) == levels:
        pooled = [(int(size), int(size)) for size in output_sizes]
    else:
        pooled = [(int(output_sizes[2 * level]), int(output_sizes[2 * level + 1])) for level in range(levels)]
    batch_indices = op.Cast(op.Reshape(_columns(rois, 0, 1), const_ints([-1])), to=INT64)
    boxes = _columns(rois, 1, 5)
    mode = "half_pixel" if aligned else "output_half_pixel"
    outputs = []
    for level, scale, (out_h, out_w) in zip(features, spatial_scales, pooled):
        outputs.append(
            op.RoiAlign(
                level,
                op.CastLike(boxes, level),
                batch_indices,
                coordinate_transformation_mode=mode,
                mode="avg",
                output_height=out_h,
                output_width=out_w,
                sampling_ratio=max(int(sampling_ratio), 0),
                spatial_scale=float(scale),
            )
        )
    return outputs


def _nan_to_zero(values: Any) -> Any:
    return op.Where(op.IsNaN(values), op.CastLike(const_f64(0.0), values), values)


def roi_masking_onnx(features: Any, rois: Any, spatial_scale: float, expand_ratio: float, mode: int) -> Any:
    """``pysalient::roi_masking``: ``features[b_r] * mask_r`` with the masks of the reference in float64."""
    height, width = dim(features, 2), dim(features, 3)
    coords = op.Mul(op.Cast(_columns(rois, 1, 5), to=DOUBLE), const_f64(spatial_scale))  # [R, 4]
    limit = op.Cast(
        op.Concat(op.Reshape(width, const_ints([1])), op.Reshape(height, const_ints([1])), axis=0), to=DOUBLE
    )
    zero = const_f64(0.0)
    starts = op.Min(op.Max(_nan_to_zero(op.Floor(_columns(coords, 0, 2))), zero), limit)
    ends = op.Min(op.Max(_nan_to_zero(op.Add(op.Floor(_columns(coords, 2, 4)), const_f64(1.0))), zero), limit)
    nonempty = op.Cast(op.ReduceMin(op.Cast(op.Greater(ends, starts), to=INT64), const_ints([1]), keepdims=0), to=BOOL)
    cols, rows = arange(width, DOUBLE), arange(height, DOUBLE)

    def inside(begin: Any, end: Any) -> Any:
        in_cols = op.And(op.GreaterOrEqual(cols, _columns(begin, 0, 1)), op.Less(cols, _columns(end, 0, 1)))
        in_rows = op.And(op.GreaterOrEqual(rows, _columns(begin, 1, 2)), op.Less(rows, _columns(end, 1, 2)))
        grid = op.And(op.Unsqueeze(in_rows, const_ints([2])), op.Unsqueeze(in_cols, const_ints([1])))
        return op.Cast(op.And(grid, op.Unsqueeze(nonempty, const_ints([1, 2]))), to=DOUBLE)

    box = inside(starts, ends)
    if mode == 0:
        masks = box
    else:
        ring = op.Min(op.Floor(op.Mul(op.Max(op.Sub(ends, starts), zero), const_f64(expand_ratio))), limit)
        expanded = inside(op.Max(op.Sub(starts, ring), zero), op.Min(op.Add(ends, ring), limit))
        masks = expanded if mode == 1 else op.Sub(op.Mul(const_f64(2.0), box), expanded)
    batch_indices = op.Cast(op.Reshape(_columns(rois, 0, 1), const_ints([-1])), to=INT64)
    selected = op.Gather(features, batch_indices, axis=0)
    return op.Mul(selected, op.Unsqueeze(op.CastLike(masks, features), const_ints([1])))


def assemble_instances_onnx(score_maps: Any, windows: Any, m: Any, k: int) -> Any:
    """``pysalient::assemble_instances(score_maps [B, k*k, H, W], windows int64 [R, 3], m, k) -> [R, m, m]``."""
    size = scalar_i64(m)
    height, width = dim(score_maps, 2), dim(score_maps, 3)
    cells = arange(size, INT64)
    sub_window = op.Div(op.Mul(cells, const_i64(k)), size)
    channel = op.Add(
        op.Mul(op.Unsqueeze(sub_window, const_ints([1])), const_i64(k)), op.Unsqueeze(sub_window, const_ints([0]))
    )
    low = op.Neg(size)
    ys = op.Add(op.Min(op.Max(_columns(windows, 1, 2), low), height), cells)  # [R, m]
    xs = op.Add(op.Min(op.Max(_columns(windows, 2, 3), low), width), cells)
    zero, one = const_i64(0), const_i64(1)
    row_on = op.And(op.GreaterOrEqual(ys, zero), op.Less(ys, height))
    col_on = op.And(op.GreaterOrEqual(xs, zero), op.Less(xs, width))
    on_map = op.And(op.Unsqueeze(row_on, const_ints([2])), op.Unsqueeze(col_on, const_ints([1])))
    rows = op.Unsqueeze(op.Min(op.Max(ys, zero), op.Sub(height, one)), const_ints([2]))  # [R, m, 1]
    cols = op.Unsqueeze(op.Min(op.Max(xs, zero), op.Sub(width, one)), const_ints([1]))  # [R, 1, m]
    batch = op.Unsqueeze(_columns(windows, 0, 1), const_ints([2]))  # [R, 1, 1]
    channels = dim(score_maps, 1)
    flat_channel = op.Add(op.Mul(batch, channels), op.Unsqueeze(channel, const_ints([0])))  # [R, m, m]
    flat = op.Add(op.Mul(op.Add(op.Mul(flat_channel, height), rows), width), cols)
    values = op.Gather(op.Reshape(score_maps, const_ints([-1])), flat, axis=0)
    return op.Where(on_map, values, op.CastLike(const_f64(0.0), values))
