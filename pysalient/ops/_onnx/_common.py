"""Small helpers the ONNX lowerings share: constants, sizes that are Python ints or traced int64 scalars.

A lowering is called by ``torch.onnx.export`` with the op's arguments: tensors arrive as traced ONNX values,
constant arguments as Python values and symbolic sizes (``SymInt``) as traced 0-d int64 values. Every helper here
takes either form.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from onnx import TensorProto, numpy_helper
from onnxscript import opset18 as op

DOUBLE = TensorProto.DOUBLE
FLOAT = TensorProto.FLOAT
INT32 = TensorProto.INT32
INT64 = TensorProto.INT64
UINT8 = TensorProto.UINT8
BOOL = TensorProto.BOOL


def const_i64(value: int) -> Any:
    """A 0-d int64 constant."""
    return op.Constant(value_int=int(value))


def const_f64(value: float) -> Any:
    """A 0-d float64 constant."""
    return op.Constant(value=_array(value, "float64"))


def const_f32(value: float) -> Any:
    """A 0-d float32 constant."""
    return op.Constant(value_float=float(value))


def const_ints(values: Sequence[int]) -> Any:
    """A 1-d int64 constant."""
    return op.Constant(value=_array([int(value) for value in values], "int64"))


def scalar_i64(size: Any) -> Any:
    """A size (Python int or traced int64 value of any rank with one element) as a 0-d int64 value."""
    if isinstance(size, int):
        return const_i64(size)
    return op.Reshape(op.Cast(size, to=INT64), const_ints([]))


def vector_i64(sizes: Sequence[Any]) -> Any:
    """Sizes (Python ints or traced int64 scalars) as one 1-d int64 value."""
    return op.Concat(*[op.Reshape(scalar_i64(size), const_ints([1])) for size in sizes], axis=0)


def dim(value: Any, axis: int) -> Any:
    """The 0-d int64 size of ``value`` along ``axis``."""
    shape = op.Shape(value, start=axis) if axis == -1 else op.Shape(value, start=axis, end=axis + 1)
    return op.Reshape(shape, const_ints([]))


def arange(count: Any, dtype: int) -> Any:
    """``[0, 1, ..., count - 1]`` as a 1-d tensor of ``dtype`` (``count``: int or traced int64)."""
    return op.Cast(op.Range(const_i64(0), scalar_i64(count), const_i64(1)), to=dtype)


def _array(values: Any, dtype: str) -> Any:
    return numpy_helper.from_array(np.array(values, dtype=dtype))
