"""Access to the golden fixtures of ``../shared/fixtures`` (override with ``PYSALIENT_FIXTURES``)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    """The folder holding the fixture files."""
    return Path(os.environ.get("PYSALIENT_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


@functools.lru_cache(maxsize=2)
def _load(path: str) -> Dict[str, Any]:
    return torch.load(path, weights_only=True)


def load_fixture(name: str) -> Dict[str, Any]:
    """Loads ``name`` (cached per session) or skips the test with the reason when it is absent."""
    path = fixtures_dir() / name
    if not path.is_file():
        pytest.skip(f"fixture {path} not found (set PYSALIENT_FIXTURES to the shared fixtures folder)")
    return _load(str(path))


def state_dict_with_prefix(state_dict: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """The entries under ``prefix`` with the prefix removed, cast from the stored float16 to float32."""
    return {
        key[len(prefix) :]: value.float() if value.is_floating_point() else value
        for key, value in state_dict.items()
        if key.startswith(prefix)
    }
