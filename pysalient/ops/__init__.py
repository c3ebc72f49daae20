"""Native operators of pysalient (``torch.ops.pysalient.*``) with typed Python functions and modules.

Every op is registered with the PyTorch dispatcher by ``libpysalient_ops.so`` (C++ CPU kernels, CUDA kernels
when built with CUDA), so it works in eager mode, under ``torch.jit.script``, under ``torch.export`` /
AOTInductor and inside a C++ process. When the library cannot be loaded, the functions below run the
pure-PyTorch references of :mod:`pysalient.ops._reference` instead (``has_native()`` is then False).
"""

from pysalient.ops._library import has_native, load_native, native_library_path, native_load_error

if load_native():
    from pysalient.ops import _autograd, _fake  # noqa: F401  (registrations)

from pysalient.ops.nms import NMS, batched_nms, nms

__all__ = [
    "NMS",
    "batched_nms",
    "has_native",
    "native_library_path",
    "native_load_error",
    "nms",
]
