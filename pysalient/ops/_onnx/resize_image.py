"""ONNX lowering of ``resize_image``: Pillow's uint8 bilinear resize as Gather / MatMul, bit for bit.

The taps and 22-bit fixed-point weights are computed inside the graph from the (dynamic) input and output sizes
in float64 exactly as :mod:`pysalient.ops._reference.pillow_resize` does; each pass gathers the taps of every
output line and sums them with one int32 MatMul (weights below 2^22 times pixels below 2^8 cannot overflow), rounds
with ``+ 2^21``, divides by ``2^22`` and clips to uint8. Pillow's pass order depends on the sizes (vertical first
when the height shrinks by more than twice as many pixels as the width), so both orders are computed and the right
one is selected.
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


def _resample_axis(pixels: Any, axis: int, n_out: Any) -> Any:
    """One Pillow pass over uint8 [H, W, C] ``pixels`` along ``axis`` (0 rows, 1 columns), uint8 out.

    The resampled axis is moved first (a uint8 transpose) and the rest flattened, so that each output line is one
    small batched MatMul ``[1, taps] @ [taps, rest]`` of exact int32 products and sums.
    """
    index, fixed = pillow_taps(dim(pixels, axis), n_out)
    lines = pixels if axis == 0 else op.Transpose(pixels, perm=[1, 0, 2])  # [n_in, other, C]
    other = op.Shape(lines, start=1)
    flat = op.Reshape(lines, op.Concat(op.Shape(lines, start=0, end=1), const_ints([-1]), axis=0))  # [n_in, rest]
    gathered = op.Gather(op.Cast(flat, to=INT32), index, axis=0)  # [n_out, taps, rest]
    accumulated = op.MatMul(op.Unsqueeze(fixed, const_ints([1])), gathered)  # [n_out, 1, rest]
    rounded = op.Div(op.Add(accumulated, _i32(1 << 21)), _i32(1 << 22))
    clipped = op.Cast(op.Clip(rounded, _i32(0), _i32(255)), to=UINT8)
    resized = op.Reshape(clipped, op.Concat(op.Reshape(scalar_i64(n_out), const_ints([1])), other, axis=0))
    return resized if axis == 0 else op.Transpose(resized, perm=[1, 0, 2])


def _i32(value: int) -> Any:
    return op.Cast(const_i64(value), to=INT32)


def resize_image_onnx(image: Any, out_h: Any, out_w: Any) -> Any:
    """``pysalient::resize_image(image uint8 [(B,) H, W, C], out_h, out_w) -> uint8 [(B,) out_h, out_w, C]``."""
    out_h, out_w = scalar_i64(out_h), scalar_i64(out_w)
    if image.shape is not None and len(image.shape) == 4:  # [B, H, W, C]: the batch goes with the channels
        batched = op.Transpose(image, perm=[1, 2, 0, 3])
        merged = op.Reshape(batched, op.Concat(op.Shape(batched, start=0, end=2), const_ints([-1]), axis=0))
        resized = _resize_hwc(merged, out_h, out_w)  # [out_h, out_w, B * C]
        size = op.Concat(
            op.Shape(resized, start=0, end=2), op.Shape(image, start=0, end=1), op.Shape(image, start=3), axis=0
        )
        return op.Transpose(op.Reshape(resized, size), perm=[2, 0, 1, 3])
    return _resize_hwc(image, out_h, out_w)


def _resize_hwc(image: Any, out_h: Any, out_w: Any) -> Any:
    """Pillow's resize of uint8 [H, W, C] to [out_h, out_w, C] (sizes: 0-d int64 values)."""
    horizontal_first = _resample_axis(_resample_axis(image, 1, out_w), 0, out_h)
    vertical_first = _resample_axis(_resample_axis(image, 0, out_h), 1, out_w)
    height, width = dim(image, -3), dim(image, -2)
    shrinks_more = op.Greater(op.Sub(height, out_h), op.Mul(const_i64(2), op.Sub(width, out_w)))
    vertical = op.And(op.Less(out_h, height), shrinks_more)
    return op.Where(vertical, vertical_first, horizontal_first)
