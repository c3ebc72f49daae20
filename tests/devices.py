"""Device parametrisation shared by the test folders (``tests/ops``, ``tests/gpu``, the golden-parity tests).

A test that takes the ``device`` fixture runs once per device: ``cpu`` always, ``cuda`` when a GPU is visible and
the loaded op library has CUDA kernels; otherwise the CUDA case is skipped with the reason. Setting
``PYSALIENT_REQUIRE_CUDA=1`` (``make gpu-check`` does) turns those skips into failures, so a GPU run cannot pass by
silently testing nothing. A conftest makes the fixtures available with ``from tests.devices import cuda, device``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

import pytest
import torch

from pysalient import ops


def cuda_unavailable_reason() -> Optional[str]:
    """Why the CUDA kernels cannot be tested here, or None when they can."""
    if not torch.cuda.is_available():
        return "CUDA is not available (torch.cuda.is_available() is False)"
    if ops.has_native() and not torch._C._dispatch_has_kernel_for_dispatch_key("pysalient::nms", "CUDA"):
        return "the loaded pysalient op library was built without CUDA kernels"
    return None


def require_cuda() -> None:
    """Skips the calling test (or fails it under PYSALIENT_REQUIRE_CUDA=1) when CUDA cannot be tested."""
    reason = cuda_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("PYSALIENT_REQUIRE_CUDA", "0") not in ("", "0"):
        pytest.fail(f"PYSALIENT_REQUIRE_CUDA is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest) -> str:
    """The device a test runs on: "cpu", then "cuda" (skipped without a usable GPU)."""
    if request.param == "cuda":
        require_cuda()
    return request.param


@pytest.fixture
def cuda() -> str:
    """For CUDA-only tests (CPU/CUDA parity): "cuda", or the test is skipped like the CUDA case of ``device``."""
    require_cuda()
    return "cuda"


@contextlib.contextmanager
def tf32_disabled() -> Iterator[None]:
    """Full float32 matmuls and convolutions on CUDA while the block runs (TF32 rounding is far above the golden
    fixtures' tolerances); the previous flags are restored afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
