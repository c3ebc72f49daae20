"""ONNX lowerings of the ATen ops the stock exporter cannot lower on image-dependent sizes.

``adaptive_avg_pool2d`` (SparseInst's pyramid pooling) has no ONNX operator; the stock exporter handles only global
pooling or maps whose size is a constant multiple of the output. Here each output cell is the mean of the input
cells ``[floor(i * n / o), ceil((i + 1) * n / o))`` along each axis, as in ATen, written as two MatMuls with
averaging matrices built from the dynamic sizes.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from onnxscript import opset18 as op

from pysalient.ops._onnx._common import DOUBLE, FLOAT, INT64, arange, const_i64, const_ints, dim, scalar_i64


def _averaging_matrix(n_in: Any, n_out: int, like: Any) -> Any:
    """[n_out, n_in] matrix whose row i averages input cells floor(i n / o) .. ceil((i + 1) n / o) - 1."""
    outputs = arange(n_out, INT64)
    starts = op.Div(op.Mul(outputs, n_in), const_i64(n_out))  # non-negative: integer division is the floor
    ends = op.Div(
        op.Sub(op.Add(op.Mul(op.Add(outputs, const_i64(1)), n_in), const_i64(n_out)), const_i64(1)), const_i64(n_out)
    )
    cells = op.Unsqueeze(arange(n_in, INT64), const_ints([0]))
    inside = op.And(
        op.GreaterOrEqual(cells, op.Unsqueeze(starts, const_ints([1]))),
        op.Less(cells, op.Unsqueeze(ends, const_ints([1]))),
    )
    counts = op.Cast(op.Unsqueeze(op.Sub(ends, starts), const_ints([1])), to=DOUBLE)
    weights = op.Where(inside, op.Div(op.CastLike(const_i64(1), counts), counts), op.CastLike(const_i64(0), counts))
    return op.CastLike(weights, like)


def adaptive_avg_pool2d_onnx(features: Any, output_size: Sequence[int]) -> Any:
    """``aten::_adaptive_avg_pool2d(features [..., H, W], (oh, ow)) -> [..., oh, ow]``."""
    out_h, out_w = (int(size) for size in output_size)
    rows = _averaging_matrix(dim(features, -2), out_h, features)  # [oh, H]
    cols = _averaging_matrix(dim(features, -1), out_w, features)  # [ow, W]
    pooled_w = op.MatMul(features, op.Transpose(cols, perm=[1, 0]))  # [..., H, ow]
    return op.MatMul(rows, pooled_w)  # [..., oh, ow]


def sort_onnx(values: Any, dim: int = -1, descending: bool = False, stable: Any = None) -> Tuple[Any, Any]:
    """``aten::sort(values, dim, descending)`` as a full-length ``TopK``: ONNX's TopK puts equal values in index
    order, which is the stable sort whatever ``stable`` asks for."""
    shape = op.Shape(values, start=-1) if dim == -1 else op.Shape(values, start=dim, end=dim + 1)
    count = op.Reshape(shape, const_ints([1]))
    return op.TopK(values, count, axis=dim, largest=1 if descending else 0, sorted=1)


def sort_stable_onnx(values: Any, *, stable: Any = None, dim: int = -1, descending: bool = False) -> Tuple[Any, Any]:
    """``aten::sort.stable``."""
    return sort_onnx(values, dim, descending)


def _antialias_matrix(n_in: Any, n_out: Any, scale: Any) -> Any:
    """float32 [n_out, n_in]: ATen's antialiased bilinear weights (triangle filter stretched by ``scale`` when it
    is >= 1, normalised per output sample) for output sample ``i`` centred at ``scale * (i + 0.5)``."""
    one, half = op.Constant(value_float=1.0), op.Constant(value_float=0.5)
    widening = op.GreaterOrEqual(scale, one)
    support = op.Where(widening, scale, one)
    inverse = op.Where(widening, op.Div(one, scale), one)
    center = op.Mul(scale, op.Add(op.Cast(arange(n_out, INT64), to=FLOAT), half))
    first = op.Max(op.Floor(op.Add(op.Sub(center, support), half)), op.Constant(value_float=0.0))
    end = op.Min(op.Floor(op.Add(op.Add(center, support), half)), op.Cast(n_in, to=FLOAT))
    cells = op.Unsqueeze(op.Cast(arange(n_in, INT64), to=FLOAT), const_ints([0]))  # [1, n_in]
    center, first, end = (op.Unsqueeze(value, const_ints([1])) for value in (center, first, end))
    distance = op.Abs(op.Mul(op.Add(op.Sub(cells, center), half), inverse))
    weights = op.Where(op.Less(distance, one), op.Sub(one, distance), op.Constant(value_float=0.0))
    inside = op.And(op.GreaterOrEqual(cells, first), op.Less(cells, end))
    weights = op.Where(inside, weights, op.Constant(value_float=0.0))
    total = op.ReduceSum(weights, const_ints([1]), keepdims=1)
    return op.Where(op.Equal(total, op.Constant(value_float=0.0)), weights, op.Div(weights, total))


def upsample_bilinear2d_aa_onnx(
    images: Any, output_size: Any, align_corners: bool, scale_factors: Optional[Sequence[float]]
) -> Any:
    """``aten::_upsample_bilinear2d_aa.vec``: ATen's antialiased bilinear resize (``F.interpolate(...,
    antialias=True)``), width pass then height pass, as MatMuls with the weight matrices of the dynamic sizes.

    ONNX Resize's own ``antialias`` mode places and normalises its filter differently (differences up to ~1e-3).
    """
    if align_corners:
        raise NotImplementedError("antialiased interpolation with align_corners=True has no ONNX lowering")
    height, width = dim(images, -2), dim(images, -1)
    if scale_factors is not None:
        factors = [float(factor) for factor in scale_factors]
        sizes = [
            op.Cast(op.Floor(op.Mul(op.Cast(size, to=DOUBLE), op.Constant(value=_f64(factor)))), to=INT64)
            for size, factor in zip((height, width), factors)
        ]
        scales = [op.Constant(value_float=float(1.0 / factor)) for factor in factors]
    else:
        sizes = [scalar_i64(size) for size in output_size]
        scales = [
            op.Div(op.Cast(size_in, to=FLOAT), op.Cast(size_out, to=FLOAT))
            for size_in, size_out in zip((height, width), sizes)
        ]
    rows = op.CastLike(_antialias_matrix(height, sizes[0], scales[0]), images)  # [oh, H]
    cols = op.CastLike(_antialias_matrix(width, sizes[1], scales[1]), images)  # [ow, W]
    return op.MatMul(rows, op.MatMul(images, op.Transpose(cols, perm=[1, 0])))


def _f64(value: float) -> Any:
    import numpy as np
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array(value, dtype=np.float64))


def group_norm_onnx(
    features: Any,
    num_groups: int,
    weight: Optional[Any] = None,
    bias: Optional[Any] = None,
    eps: float = 1e-5,
    cudnn_enabled: bool = True,
) -> Any:
    """``aten::group_norm`` with explicit group shapes: the stock lowering reshapes to ``[N, G, -1]``, which ONNX
    cannot resolve for an empty batch (RDPNet's mask head on an image without detections)."""
    shape = op.Shape(features)
    groups = const_ints([num_groups])
    rest = op.Div(op.ReduceProd(op.Shape(features, start=1), keepdims=1), groups)
    grouped = op.Reshape(features, op.Concat(op.Shape(features, start=0, end=1), groups, rest, axis=0))
    mean = op.ReduceMean(grouped, const_ints([2]), keepdims=1)
    centered = op.Sub(grouped, mean)
    variance = op.ReduceMean(op.Mul(centered, centered), const_ints([2]), keepdims=1)
    normalized = op.Div(centered, op.Sqrt(op.Add(variance, op.CastLike(op.Constant(value_float=float(eps)), variance))))
    output = op.Reshape(normalized, shape)
    trailing = op.Constant(value_ints=[1, 2])  # weight and bias [C] -> [C, 1, 1] for [N, C, H, W] maps
    if weight is not None:
        output = op.Mul(output, op.Unsqueeze(weight, trailing))
    if bias is not None:
        output = op.Add(output, op.Unsqueeze(bias, trailing))
    return output
