"""Test-session guards and fixtures shared by every test folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Refuses to run the suite silently on the references when the native library failed to load."""
    from pysalient import ops

    if not ops.has_native() and os.environ.get("PYSALIENT_DISABLE_NATIVE", "0") in ("", "0"):
        raise pytest.UsageError(f"pysalient native ops are not loaded: {ops.native_load_error()}")


@pytest.fixture(scope="session")
def shared_tiny_model():
    """``tests.export.helpers.shared_tiny_model()``, built once per session (a ``SalientModel``)."""
    from tests.export.helpers import shared_tiny_model

    return shared_tiny_model()


@pytest.fixture(scope="session")
def shared_aoti_package(
    shared_tiny_model, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Path:
    """``model.pt2``: ``shared_tiny_model`` compiled by AOTInductor for the CPU, once per test session.

    tests/export/test_aoti.py and tests/cpp both test this one package, so the suite pays for one compilation
    (minutes on a small CPU). Exported with ``imgsz=SHARED_IMGSZ``, ``max_det=SHARED_MAX_DET`` and the default
    input size range [2, 8192]; the name ``model.pt2`` appears in the C++ runtime's error messages.
    """
    from tests.export.helpers import SHARED_IMGSZ, SHARED_MAX_DET

    start = time.perf_counter()
    _announce(request, "\n[fixture] compiling the shared AOTInductor package (tests/export, tests/cpp): minutes")
    path = tmp_path_factory.mktemp("shared-aoti") / "model.pt2"
    exported = shared_tiny_model.export("aoti", path, imgsz=SHARED_IMGSZ, max_det=SHARED_MAX_DET, verbose=False)
    _announce(request, f"[fixture] AOTInductor package compiled in {time.perf_counter() - start:.0f} s")
    return Path(exported)


def _announce(request: pytest.FixtureRequest, line: str) -> None:
    """Prints ``line`` on the terminal even while pytest captures the output (as it does during fixture setup)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
