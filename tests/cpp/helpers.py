"""Helpers of the C++ tests: running programs, building CMake projects, the shared test settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import numpy as np
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


# The checkout's CMake build of the C++ package (operators + runtime, no Python module), kept between sessions so
# that it is rebuilt incrementally; build/ is ignored by git.
CHECKOUT_BUILD_DIR = REPO_ROOT / "build" / "cpp-tests"
RUNTIME_HEADERS = ("predictor.h", "metadata.h")


def _sources() -> List[Path]:
    suffixes = (".h", ".cpp", ".cu", ".cuh")
    return [path for path in (REPO_ROOT / "csrc").rglob("*") if path.is_file() and path.suffix in suffixes]


def installed_package_is_current(package: Path) -> bool:
    """Whether the installed C++ package (``package``: the first prefix of ``python -m pysalient.cmake``) was
    built from the checkout as it is: its headers equal ``csrc/runtime``'s and its libraries are newer than every
    C++ source. An editable install is not rebuilt when ``csrc`` changes, so tests of the runtime would otherwise
    silently test the old code."""
    for header in RUNTIME_HEADERS:
        installed = package / "include" / "pysalient" / header
        if not installed.is_file() or installed.read_bytes() != (REPO_ROOT / "csrc" / "runtime" / header).read_bytes():
            return False
    libraries = [package / "lib" / name for name in ("libpysalient_ops.so", "libpysalient_runtime.so")]
    if not all(library.is_file() for library in libraries):
        return False
    built = min(library.stat().st_mtime for library in libraries)
    return all(source.stat().st_mtime <= built for source in _sources())


def build_checkout_package(prefix: Path) -> Path:
    """Builds the checkout's C++ package (the repository's CMakeLists.txt without the Python module) in
    :data:`CHECKOUT_BUILD_DIR` and installs it under ``prefix``, next to a link to the running torch so that the
    libraries' ``$ORIGIN/../../torch/lib`` RPATH resolves as in site-packages. Returns ``prefix / "pysalient"``, the
    folder to put on ``CMAKE_PREFIX_PATH``."""
    configure: List[object] = [tool("cmake"), "-S", REPO_ROOT, "-B", CHECKOUT_BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release"]
    configure += ["-DPYSALIENT_BUILD_PYTHON_MODULE=OFF", f"-DPython_EXECUTABLE={sys.executable}"]
    if not (CHECKOUT_BUILD_DIR / "CMakeCache.txt").is_file() and (
        shutil.which("ninja") or (Path(sys.executable).parent / "ninja").is_file()
    ):
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={tool('ninja')}"]
    steps = [
        configure,
        [tool("cmake"), "--build", CHECKOUT_BUILD_DIR, "--parallel", "2"],
        [tool("cmake"), "--install", CHECKOUT_BUILD_DIR, "--prefix", prefix],
    ]
    for command in steps:
        result = run(command, timeout=3600)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    (prefix / "torch").symlink_to(Path(torch.__file__).resolve().parent, target_is_directory=True)
    return prefix / "pysalient"


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


def separating_conf(scores: Sequence[float]) -> float:
    """A threshold in the widest gap between consecutive scores (decreasing): it keeps some instances and drops
    the others, and score differences between C++, the exported graph in Python and eager (~1e-6) cannot move
    an instance across it."""
    assert len(scores) > 1, scores
    gaps = [scores[k - 1] - scores[k] for k in range(1, len(scores))]
    k = int(np.argmax(gaps)) + 1
    assert gaps[k - 1] > 1e-4, scores
    return (scores[k - 1] + scores[k]) / 2
