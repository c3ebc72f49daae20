"""Test-session guards shared by every test folder."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Refuses to run the suite silently on the references when the native library failed to load."""
    from pysalient import ops

    if not ops.has_native() and os.environ.get("PYSALIENT_DISABLE_NATIVE", "0") in ("", "0"):
        raise pytest.UsageError(f"pysalient native ops are not loaded: {ops.native_load_error()}")
