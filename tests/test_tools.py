"""The GPU tools keep working without a GPU: the compute-sanitizer driver (run on the CPU kernels, where it checks
itself) calls every native op, and the nvcc compile check reports a broken kernel file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DRIVER = REPO_ROOT / "tools" / "gpu_sanitize_driver.py"


def registered_ops() -> set:
    """Every operator name defined in csrc/ops/registration.cpp (backward ops included)."""
    source = (REPO_ROOT / "csrc" / "ops" / "registration.cpp").read_text()
    return set(re.findall(r'm\.def\(\s*"(\w+)\(', source))


def test_sanitize_driver_calls_every_registered_op_on_the_cpu() -> None:
    result = subprocess.run(
        [sys.executable, str(DRIVER), "--device", "cpu"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    called = [line[4:] for line in result.stdout.splitlines() if line.startswith("ok  ")]
    assert result.stdout.rstrip().endswith(f"{len(called)} calls on cpu")
    called_ops = {name.split()[0] for name in called}
    expected = registered_ops()
    assert len(expected) >= 12 and "_roi_masking_backward" in expected
    assert expected <= called_ops, f"never called: {sorted(expected - called_ops)}"
    # every floating dtype the CUDA kernels dispatch on is exercised for the ops the issue names
    for op in (
        "roi_masking",
        "multilevel_roi_align",
        "paste_masks",
        "upsample_masks",
        "resize_masks_in_boxes",
        "dice_cost",
    ):
        for dtype in ("float16", "bfloat16", "float32"):
            assert any(name.startswith(op + " ") and dtype in name for name in called), (op, dtype)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_sanitize_driver_refuses_without_cuda() -> None:
    result = subprocess.run([sys.executable, str(DRIVER)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "CUDA is not available" in result.stderr


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")
def test_cuda_check_reports_a_kernel_that_does_not_compile(tmp_path: Path) -> None:
    broken = tmp_path / "broken_cuda.cu"
    broken.write_text(
        '#include "ops/cuda_utils.cuh"\n'
        "__global__ void broken_kernel(float* out) { out[pysalient::cuda::grid_start()] = undeclared_value; }\n"
    )
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "cuda_check.py"), str(broken)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "broken_cuda.cu" in output and "undeclared_value" in output
