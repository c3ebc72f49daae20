"""Loading of the native library, build information and the pure-PyTorch fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

import pysalient
from pysalient import ops

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO_ROOT,
        timeout=300,
    )


def test_native_library_is_loaded_once_with_every_schema() -> None:
    assert ops.has_native()
    assert ops.native_library_path() is not None and ops.native_load_error() is None
    assert ops.load_native() is True  # idempotent: a second call does not load again
    expected = {
        "resize_image",
        "roi_masking",
        "_roi_masking_backward",
        "assemble_instances",
        "_assemble_instances_backward",
        "multilevel_roi_align",
        "_multilevel_roi_align_backward",
        "nms",
        "paste_masks",
        "upsample_masks",
        "resize_masks_in_boxes",
        "dice_cost",
        "linear_sum_assignment",
    }
    registered = {name for name in expected if hasattr(torch.ops.pysalient, name)}
    assert registered == expected


def test_build_info_matches_the_running_installation() -> None:
    from pysalient import _C

    assert _C.__version__ == pysalient.__version__
    assert _C.torch_version == torch.__version__
    assert isinstance(_C.with_cuda, bool)
    if torch.version.cuda is None:  # CUDA kernels can only be built against a CUDA torch
        assert not _C.with_cuda and _C.cuda_archs == ""


def test_op_library_does_not_link_libpython() -> None:
    library = Path(ops.native_library_path())
    needed = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True).stdout
    assert "libtorch" in needed or "libc10" in needed
    assert "libpython" not in needed


def test_missing_library_falls_back_to_references_with_one_warning() -> None:
    result = run_python(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import pysalient
            from pysalient import ops
        messages = [str(w.message) for w in caught if "native operators unavailable" in str(w.message)]
        assert len(messages) == 1, messages
        assert "not found" in messages[0] and "/nonexistent/libpysalient_ops.so" in messages[0], messages[0]
        assert not ops.has_native()
        import torch
        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
        print(ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist())
        """,
        PYSALIENT_OPS_LIBRARY="/nonexistent/libpysalient_ops.so",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 2]"


def test_reference_fallback_matches_native_for_every_op(tmp_path: Path) -> None:
    from tests.ops.fallback_cases import run_all

    out = tmp_path / "fallback.pt"
    result = run_python(
        f"from tests.ops.fallback_cases import run_all; import torch; torch.save(run_all(), {str(out)!r})",
        PYSALIENT_DISABLE_NATIVE="1",
    )
    assert result.returncode == 0, result.stderr
    fallback = torch.load(out, weights_only=True)
    native = run_all()
    assert set(fallback) == set(native)
    for name in native:
        # Float results agree to rounding; integer results (indices, uint8 masks, resized pixels) exactly.
        torch.testing.assert_close(fallback[name], native[name], atol=1e-5, rtol=1e-5, msg=name)


def test_disable_switch_reports_its_reason() -> None:
    result = run_python(
        "from pysalient import ops; print(ops.has_native(), ops.native_load_error())",
        PYSALIENT_DISABLE_NATIVE="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False disabled by PYSALIENT_DISABLE_NATIVE"
    assert result.stderr.count("native operators unavailable") == 1
