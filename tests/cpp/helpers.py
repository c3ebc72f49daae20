"""Helpers of the C++ tests: running programs, building CMake projects, the shared test settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest
import torch

from tests.export.helpers import SHARED_IMGSZ, SHARED_MAX_DET

REPO_ROOT = Path(__file__).resolve().parents[2]
# Both formats are exported with the settings of the AOTInductor package shared with tests/export (conftest.py).
IMGSZ = SHARED_IMGSZ
MAX_DET = SHARED_MAX_DET
IMAGE_SIZES = ((75, 131), (97, 61), (64, 64), (33, 200))
FORMATS = {"torchscript": "model.ts", "aoti": "model.pt2"}


def run(command: Sequence[object], timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    """Runs ``command`` capturing text output; the child gets the test process's thread count so that its
    floating-point reductions are split the same way."""
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout, env=env, **kwargs
    )


def tool(name: str) -> str:
    """``name`` from the virtual environment (pip installs cmake and ninja there) or else from PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is needed to build the C++ programs (`make install` puts it in the venv)")
    return found


def build_cmake_project(source: Path, build_dir: Path, prefix_path: str, target: str) -> Path:
    """Configures and builds the CMake project ``source`` against ``prefix_path``; returns the ``target`` file."""
    configure: List[object] = [tool("cmake"), "-S", source, "-B", build_dir, f"-DCMAKE_PREFIX_PATH={prefix_path}"]
    configure += ["-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed"]
    if shutil.which("ninja") or (Path(sys.executable).parent / "ninja").is_file():
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={tool('ninja')}"]
    for command in (configure, [tool("cmake"), "--build", build_dir, "--parallel", "2"]):
        result = run(command)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return build_dir / target
