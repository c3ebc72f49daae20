"""ONNX lowering of ``resize_image``: Pillow's uint8 bilinear resize as Gather / Mul / ReduceSum, bit for bit.

The taps and 22-bit fixed-point weights are computed inside the graph from the (dynamic) input and output sizes
in float64 exactly as :mod:`pysalient.ops._reference.pillow_resize` does; each pass accumulates in int32 (weights
below 2^22 times pixels below 2^8 cannot overflow), rounds with ``+ 2^21``, divides by ``2^22`` and clips to
uint8. Pillow's pass order depends on the sizes (vertical first when the height shrinks by more than twice as many
pixels as the width), so both orders are computed and the right one is selected.
"""

from __future__ import annotations

from typing import Any, Tuple

from onnxscript import opset18 as op

from pysalient.ops._onnx._common import (
    DOUBLE,
    INT32,
    INT64,
    UINT8,
    arange,
    const_f64,
    const_i64,
    const_ints,
    dim,
    scalar_i64,
)


def pillow_taps(n_in: Any, n_out: Any) -> Tuple[Any, Any]:
    """Input indices (int64) and fixed-point weights (int32), both [n_out, taps], of Pillow's bilinear filter."""
    size_in = op.Cast(n_in, to=DOUBLE)
    scale = op.Div(size_in, op.Cast(n_out, to=DOUBLE))
    stretch = op.Max(scale, const_f64(1.0))
    inverse_stretch = op.Div(const_f64(1.0), stretch)
    max_taps = op.Add(op.Mul(op.Cast(op.Ceil(stretch), to=INT64), const_i64(2)), const_i64(1))
    center = op.Mul(op.Add(arange(n_out, DOUBLE), const_f64(0.5)), scale)
    # Pillow truncates toward zero, then clamps into [0, n_in): floor and truncation agree after the clamp.
    first = op.Max(op.Floor(op.Add(op.Sub(center, stretch), const_f64(0.5))), const_f64(0.0))
    end = op.Min(op.Floor(op.Add(op.Add(center, stretch), const_f64(0.5))), size_in)
    center = op.Unsqueeze(center, const_ints([1]))
    index = op.Add(op.Unsqueeze(first, const_ints([1])), op.Unsqueeze(arange(max_taps, DOUBLE), const_ints([0])))
    distance = op.Mul(op.Add(op.Sub(index, center), const_f64(0.5)), inverse_stretch)
    weight = op.Max(op.Sub(const_f64(1.0), op.Abs(distance)), const_f64(0.0))
    weight = op.Where(op.Less(index, op.Unsqueeze(end, const_ints([1]))), weight, const_f64(0.0))
    total = op.ReduceSum(weight, const_ints([1]), keepdims=1)
    weight = op.Where(op.Equal(total, const_f64(0.0)), weight, op.Div(weight, total))
    fixed = op.Cast(op.Floor(op.Add(op.Mul(weight, const_f64(float(1 << 22))), const_f64(0.5))), to=INT32)
    last = op.Sub(size_in, const_f64(1.0))
    return op.Cast(op.Min(index, last), to=INT64), fixed


def _resample_axis(samples: Any, axis: int, n_out: Any) -> Any:
    """One Pillow pass over int32 [..., H, W, C] ``samples`` along ``axis`` (-3 rows, -2 columns), int32 out."""
    index, fixed = pillow_taps(dim(samples, axis), n_out)
    gathered = op.Gather(samples, index, axis=axis)  # axis -> [n_out, taps]
    if axis == -2:  # [..., H, n_out, taps, C]
        weights = op.Unsqueeze(fixed, const_ints([-1]))
        reduce_axis = -2
    else:  # [..., n_out, taps, W, C]
        weights = op.Unsqueeze(fixed, const_ints([-1, -2]))
        reduce_axis = -3
    accumulated = op.ReduceSum(op.Mul(gathered, weights), const_ints([reduce_axis]), keepdims=0)
    rounded = op.Div(op.Add(accumulated, _i32(1 << 21)), _i32(1 << 22))
    return op.Clip(rounded, _i32(0), _i32(255))


def _i32(value: int) -> Any:
    return op.Cast(const_i64(value), to=INT32)


def resize_image_onnx(image: Any, out_h: Any, out_w: Any) -> Any:
    """``pysalient::resize_image(image uint8 [(B,) H, W, C], out_h, out_w) -> uint8 [(B,) out_h, out_w, C]``."""
    out_h, out_w = scalar_i64(out_h), scalar_i64(out_w)
    samples = op.Cast(image, to=INT32)
    horizontal_first = _resample_axis(_resample_axis(samples, -2, out_w), -3, out_h)
    vertical_first = _resample_axis(_resample_axis(samples, -3, out_h), -2, out_w)
    height, width = dim(image, -3), dim(image, -2)
    shrinks_more = op.Greater(op.Sub(height, out_h), op.Mul(const_i64(2), op.Sub(width, out_w)))
    vertical = op.And(op.Less(out_h, height), shrinks_more)
    return op.Cast(op.Where(vertical, vertical_first, horizontal_first), to=UINT8)
