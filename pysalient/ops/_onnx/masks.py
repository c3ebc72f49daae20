"""ONNX lowerings of the mask post-processing ops: ``upsample_masks``, ``resize_masks_in_boxes``, ``paste_masks``.

Each follows its reference in :mod:`pysalient.ops._reference` step by step with standard operators (Resize with
half-pixel coordinates for ``F.interpolate(..., align_corners=False)``, Gather / MatMul for the box-local bilinear
sampling); floating-point results agree with the native kernels to rounding, which can flip a pixel whose value
lies within ~1e-7 of the mask threshold.
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

from onnxscript import opset18 as op

from pysalient.ops._onnx._common import (
    BOOL,
    DOUBLE,
    FLOAT,
    INT32,
    INT64,
    UINT8,
    arange,
    const_f32,
    const_f64,
    const_i64,
    const_ints,
    dim,
    scalar_i64,
    vector_i64,
)


def _compute_dtype(value: Any) -> int:
    """float64 for float64 values, float32 otherwise (fp16 / bf16 maps are computed in float32)."""
    return DOUBLE if value.dtype is not None and int(value.dtype) == DOUBLE else FLOAT


def _bilinear_resize(maps: Any, size_hw: Sequence[Any]) -> Any:
    """``F.interpolate(maps [N, 1, h, w], size, mode="bilinear", align_corners=False)``."""
    sizes = op.Concat(op.Shape(maps, start=0, end=2), vector_i64(size_hw), axis=0)
    return op.Resize(maps, None, None, sizes, mode="linear", coordinate_transformation_mode="half_pixel")


def mask_boxes(foreground_rows: Any, foreground_cols: Any, dtype: int) -> Any:
    """Tight boxes (x_min, y_min, x_max + 1, y_max + 1) from bool [N, H] rows and [N, W] columns; 0 when empty."""
    height, width = dim(foreground_rows, 1), dim(foreground_cols, 1)
    ys, xs = arange(height, INT64), arange(width, INT64)
    minus_one = const_i64(-1)
    y_min = op.ReduceMin(op.Where(foreground_rows, ys, height), const_ints([1]), keepdims=0)
    y_max = op.Add(op.ReduceMax(op.Where(foreground_rows, ys, minus_one), const_ints([1]), keepdims=0), const_i64(1))
    x_min = op.ReduceMin(op.Where(foreground_cols, xs, width), const_ints([1]), keepdims=0)
    x_max = op.Add(op.ReduceMax(op.Where(foreground_cols, xs, minus_one), const_ints([1]), keepdims=0), const_i64(1))
    boxes = op.Concat(*[op.Unsqueeze(c, const_ints([1])) for c in (x_min, y_min, x_max, y_max)], axis=1)
    nonempty = op.Cast(op.ReduceMax(op.Cast(foreground_rows, to=INT32), const_ints([1]), keepdims=1), to=BOOL)
    return op.Cast(op.Where(nonempty, boxes, const_i64(0)), to=dtype)


def upsample_masks_onnx(
    mask_logits: Any, padded_hw: Sequence[Any], image_hw: Sequence[Any], output_hw: Sequence[Any], threshold: float
) -> Tuple[Any, Any, Any]:
    """``pysalient::upsample_masks``: masks uint8 [N, H, W], boxes [N, 4] and maskness [N] (float32 / float64)."""
    dtype = _compute_dtype(mask_logits)
    logits = op.Cast(mask_logits, to=dtype)
    probabilities = op.Sigmoid(logits)
    padded = _bilinear_resize(op.Unsqueeze(probabilities, const_ints([1])), padded_hw)
    ends = op.Concat(vector_i64(image_hw), axis=0)
    cropped = op.Slice(padded, vector_i64([0, 0]), ends, const_ints([2, 3]))
    resized = op.Squeeze(_bilinear_resize(cropped, output_hw), const_ints([1]))
    cut = op.CastLike(const_f64(threshold), resized)
    masks = op.Cast(op.Greater(resized, cut), to=UINT8)
    # A row (column) holds foreground exactly when its largest probability is above the threshold.
    rows = op.Greater(op.ReduceMax(resized, const_ints([2]), keepdims=0), cut)
    cols = op.Greater(op.ReduceMax(resized, const_ints([1]), keepdims=0), cut)
    above = op.Cast(op.Greater(probabilities, op.CastLike(const_f64(threshold), probabilities)), to=dtype)
    kept = op.ReduceSum(op.Mul(probabilities, above), const_ints([1, 2]), keepdims=0)
    count = op.Add(op.ReduceSum(above, const_ints([1, 2]), keepdims=0), op.CastLike(const_f64(1e-6), above))
    return masks, mask_boxes(rows, cols, dtype), op.Div(kept, count)


def _box_columns(boxes: Any, start: int, end: int) -> Any:
    return op.Slice(boxes, const_ints([start]), const_ints([end]), const_ints([1]))


def _axis_taps(n_map: Any, n_padded: Any, n_image: Any, n_out: Any, dtype: int) -> Tuple[Any, Any, Any, Any]:
    """Bilinear taps of ``resize_masks_in_boxes`` along one axis (see ``_reference.box_mask_resize``)."""
    scale = op.Mul(
        op.Div(op.Cast(n_image, to=DOUBLE), op.Cast(n_out, to=DOUBLE)),
        op.Div(op.Cast(n_map, to=DOUBLE), op.Cast(n_padded, to=DOUBLE)),
    )
    source = op.Max(op.Sub(op.Mul(op.Add(arange(n_out, DOUBLE), const_f64(0.5)), scale), const_f64(0.5)), const_f64(0))
    lower = op.Min(op.Floor(source), op.Cast(op.Sub(n_map, const_i64(1)), to=DOUBLE))
    upper_weight = op.Cast(op.Sub(source, lower), to=dtype)
    lower_index = op.Cast(lower, to=INT64)
    upper_index = op.Min(op.Add(lower_index, const_i64(1)), op.Sub(n_map, const_i64(1)))
    return lower_index, upper_index, op.Sub(op.CastLike(const_f64(1.0), upper_weight), upper_weight), upper_weight


def box_rectangles(boxes: Any, height: Any, width: Any) -> Any:
    """bool [N, H, W]: ``floor(x1) <= x < floor(x2) + 1`` and likewise rows (NaN boxes select nothing)."""
    corners = op.Floor(op.Cast(boxes, to=DOUBLE))
    rows, cols = arange(height, DOUBLE), arange(width, DOUBLE)
    one = const_f64(1.0)
    in_rows = op.And(
        op.GreaterOrEqual(rows, _box_columns(corners, 1, 2)), op.Less(rows, op.Add(_box_columns(corners, 3, 4), one))
    )
    in_cols = op.And(
        op.GreaterOrEqual(cols, _box_columns(corners, 0, 1)), op.Less(cols, op.Add(_box_columns(corners, 2, 3), one))
    )
    return op.And(op.Unsqueeze(in_rows, const_ints([2])), op.Unsqueeze(in_cols, const_ints([1])))


def resize_masks_in_boxes_onnx(
    probabilities: Any,
    boxes: Any,
    padded_hw: Sequence[Any],
    image_hw: Sequence[Any],
    output_hw: Sequence[Any],
    threshold: float,
) -> Any:
    """``pysalient::resize_masks_in_boxes`` -> uint8 [N, H, W], the reference's operations in its order."""
    dtype = _compute_dtype(probabilities)
    maps = op.Cast(probabilities, to=dtype)
    out_h, out_w = scalar_i64(output_hw[0]), scalar_i64(output_hw[1])
    y0, y1, wy0, wy1 = _axis_taps(dim(maps, 1), scalar_i64(padded_hw[0]), scalar_i64(image_hw[0]), out_h, dtype)
    x0, x1, wx0, wx1 = _axis_taps(dim(maps, 2), scalar_i64(padded_hw[1]), scalar_i64(image_hw[1]), out_w, dtype)
    top, bottom = op.Gather(maps, y0, axis=1), op.Gather(maps, y1, axis=1)  # [N, H, w]
    wx0, wx1 = op.Unsqueeze(wx0, const_ints([0, 1])), op.Unsqueeze(wx1, const_ints([0, 1]))
    upper = op.Add(op.Mul(wx0, op.Gather(top, x0, axis=2)), op.Mul(wx1, op.Gather(top, x1, axis=2)))
    lower = op.Add(op.Mul(wx0, op.Gather(bottom, x0, axis=2)), op.Mul(wx1, op.Gather(bottom, x1, axis=2)))
    samples = op.Add(
        op.Mul(op.Unsqueeze(wy0, const_ints([0, 2])), upper), op.Mul(op.Unsqueeze(wy1, const_ints([0, 2])), lower)
    )
    foreground = op.And(
        op.Greater(samples, op.CastLike(const_f64(threshold), samples)), box_rectangles(boxes, out_h, out_w)
    )
    return op.Cast(foreground, to=UINT8)


def _interpolation_matrix(source: Any, first: Any, second: Any, size: Any, dtype: int) -> Any:
    """[R, n, size] rows ``(1 - l) e_first + l e_second`` with ``l = source - floor(source)``; indices off
    ``[0, size)`` select nothing (zero padding). ``source``, ``first``, ``second``: [R, n] (first, second int64)."""
    fraction = op.Cast(op.Sub(source, op.Floor(source)), to=dtype)
    cells = op.Unsqueeze(arange(size, INT64), const_ints([0, 1]))  # [1, 1, size]
    zero = op.CastLike(const_f64(0.0), fraction)
    one = op.CastLike(const_f64(1.0), fraction)
    on_first = op.Where(
        op.Equal(cells, op.Unsqueeze(first, const_ints([2]))),
        op.Unsqueeze(op.Sub(one, fraction), const_ints([2])),
        zero,
    )
    on_second = op.Where(
        op.Equal(cells, op.Unsqueeze(second, const_ints([2]))), op.Unsqueeze(fraction, const_ints([2])), zero
    )
    return op.Add(on_first, on_second)


def _grid_sample_matrix(start: Any, extent: Any, n_pixels: Any, n_cells: Any) -> Any:
    """float64 [R, n_pixels, n_cells]: bilinear weights of grid_sample at the pixel centres of boxes
    ``[start, start + extent)`` over a map of ``n_cells`` (align_corners=False, zeros outside)."""
    centers = op.Add(arange(n_pixels, DOUBLE), const_f64(0.5))
    grid = op.Sub(op.Div(op.Mul(const_f64(2.0), op.Sub(centers, start)), extent), const_f64(1.0))  # [R, n]
    cells = op.Cast(n_cells, to=DOUBLE)
    source = op.Div(op.Sub(op.Mul(op.Add(grid, const_f64(1.0)), cells), const_f64(1.0)), const_f64(2.0))
    first = op.Cast(op.Floor(source), to=INT64)
    return _interpolation_matrix(source, first, op.Add(first, const_i64(1)), n_cells, DOUBLE)


def _paste_grid_sample(masks: Any, boxes: Any, height: Any, width: Any, threshold: float) -> Any:
    corners = op.Cast(boxes, to=DOUBLE)
    x1, y1, x2, y2 = (_box_columns(corners, index, index + 1) for index in range(4))  # [R, 1] each
    finite = op.Not(op.Or(op.IsNaN(corners), op.IsInf(corners)))
    valid = op.And(
        op.Cast(op.ReduceMin(op.Cast(finite, to=INT64), const_ints([1]), keepdims=1), to=BOOL),
        op.And(op.Greater(x2, x1), op.Greater(y2, y1)),
    )  # [R, 1]
    zero, one = const_f64(0.0), const_f64(1.0)
    x1, y1 = op.Where(valid, x1, zero), op.Where(valid, y1, zero)
    box_w, box_h = op.Where(valid, op.Sub(x2, x1), one), op.Where(valid, op.Sub(y2, y1), one)
    maps = op.Cast(masks, to=DOUBLE)
    rows = _grid_sample_matrix(y1, box_h, height, dim(maps, 1))  # [R, H, Mh]
    cols = _grid_sample_matrix(x1, box_w, width, dim(maps, 2))  # [R, W, Mw]
    samples = op.MatMul(rows, op.MatMul(maps, op.Transpose(cols, perm=[0, 2, 1])))  # [R, H, W]
    foreground = op.And(op.GreaterOrEqual(samples, const_f64(threshold)), op.Unsqueeze(valid, const_ints([2])))
    return op.Cast(foreground, to=UINT8)


def _masker_matrix(origin: Any, span: Any, n_pixels: Any, n_cells: Any) -> Any:
    """float32 [R, n_pixels, n_cells]: F.interpolate (bilinear, align_corners=False) of n_cells to the integer
    extent ``max(span, 1)`` placed at integer ``origin`` (int64 [R, 1] each); pixels outside ``[origin, origin +
    span)`` get no weight (a box whose corners cross, ``span <= 0``, pastes nothing, as the Masker's empty slice)."""
    extent = op.Max(span, const_i64(1))
    local = op.Sub(op.Unsqueeze(arange(n_pixels, INT64), const_ints([0])), origin)  # [R, n]
    inside = op.And(op.GreaterOrEqual(local, const_i64(0)), op.Less(local, span))
    scale = op.Div(op.Cast(n_cells, to=FLOAT), op.Cast(extent, to=FLOAT))
    source = op.Max(
        op.Sub(op.Mul(scale, op.Add(op.Cast(local, to=FLOAT), const_f32(0.5))), const_f32(0.5)), const_f32(0.0)
    )
    first = op.Where(inside, op.Cast(source, to=INT64), const_i64(-1))
    last = op.Sub(op.Cast(n_cells, to=INT64), const_i64(1))
    second = op.Where(inside, op.Min(op.Add(first, const_i64(1)), last), const_i64(-1))
    return _interpolation_matrix(source, first, second, n_cells, FLOAT)


def _paste_masker(masks: Any, boxes: Any, height: Any, width: Any, threshold: float, padding: int) -> Any:
    maps = op.Cast(masks, to=FLOAT)
    pads = const_ints([0, padding, padding, 0, padding, padding])
    padded = op.Pad(maps, pads)  # [R, S, S]
    size = dim(maps, 2)
    cells = op.Add(size, const_i64(2 * padding))
    scale = op.Div(op.Cast(cells, to=FLOAT), op.Cast(size, to=FLOAT))
    corners = op.Cast(boxes, to=FLOAT)
    x1, y1, x2, y2 = (_box_columns(corners, index, index + 1) for index in range(4))
    half = const_f32(0.5)
    half_w, half_h = op.Mul(op.Mul(op.Sub(x2, x1), half), scale), op.Mul(op.Mul(op.Sub(y2, y1), half), scale)
    center_x, center_y = op.Mul(op.Add(x2, x1), half), op.Mul(op.Add(y2, y1), half)
    left = op.Cast(op.Cast(op.Sub(center_x, half_w), to=INT32), to=INT64)
    right = op.Cast(op.Cast(op.Add(center_x, half_w), to=INT32), to=INT64)
    top = op.Cast(op.Cast(op.Sub(center_y, half_h), to=INT32), to=INT64)
    bottom = op.Cast(op.Cast(op.Add(center_y, half_h), to=INT32), to=INT64)
    one = const_i64(1)
    rows = _masker_matrix(top, op.Add(op.Sub(bottom, top), one), height, cells)  # [R, H, S]
    cols = _masker_matrix(left, op.Add(op.Sub(right, left), one), width, cells)  # [R, W, S]
    resized = op.MatMul(rows, op.MatMul(padded, op.Transpose(cols, perm=[0, 2, 1])))
    return op.Cast(op.Greater(resized, const_f32(threshold)), to=UINT8)


def paste_masks_onnx(
    masks: Any, boxes: Any, height: Any, width: Any, threshold: float, legacy: bool = False, padding: int = 1
) -> Any:
    """``pysalient::paste_masks(masks [R, Mh, Mw], boxes [R, 4], H, W, ...) -> uint8 [R, H, W]``.

    The bilinear sampling is written as two MatMuls with [R, H, Mh] and [R, Mw, W] interpolation matrices (two
    non-zero weights per row), so its cost is that of the output plus small products.
    """
    height, width = scalar_i64(height), scalar_i64(width)
    if legacy:
        return _paste_masker(masks, boxes, height, width, threshold, int(padding))
    return _paste_grid_sample(masks, boxes, height, width, threshold)
