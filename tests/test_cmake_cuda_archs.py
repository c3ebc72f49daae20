"""The CUDA architecture list reaches nvcc: ``PYSALIENT_CUDA_ARCHS`` (TORCH_CUDA_ARCH_LIST format) becomes CMake's
``CUDA_ARCHITECTURES`` (``cmake/PySalientCudaArchitectures.cmake``), the one source of architectures of the CUDA build
(torch's config sets CMAKE_CUDA_ARCHITECTURES OFF; its own -gencode flags are removed in PySalientTorch.cmake)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CMAKE_DIR = REPO_ROOT / "cmake"
DEFAULT_ARCHS = "7.5;8.0;8.6;8.7;8.9;9.0+PTX"  # cmake/PySalientCuda.cmake's default


def cmake_executable() -> str:
    found = shutil.which("cmake")
    if found is None:
        try:
            import cmake  # the PyPI package `make install` puts in the venv
        except ImportError:
            pytest.skip("cmake is not installed")
        found = str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    return found


def convert(arch_list: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "convert.cmake"
    script.write_text(
        f'include("{CMAKE_DIR.as_posix()}/PySalientCudaArchitectures.cmake")\n'
        f'pysalient_cmake_cuda_architectures("{arch_list}" result)\n'
        'message("${result}")\n'
    )
    return subprocess.run([cmake_executable(), "-P", str(script)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "arch_list, expected",
    [
        (DEFAULT_ARCHS, "75-real;80-real;86-real;87-real;89-real;90"),
        ("8.7", "87-real"),  # a Jetson Orin-only build
        ("9.0a 10.0+PTX", "90a-real;100"),
        ("7.5, 8.6+PTX", "75-real;86"),
    ],
)
def test_arch_list_becomes_cmake_cuda_architectures(arch_list: str, expected: str, tmp_path: Path) -> None:
    result = convert(arch_list, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == expected  # message() writes to stderr


@pytest.mark.parametrize("arch_list", ["sm_90", "9", "", "8.6+ptx"])
def test_unreadable_arch_lists_stop_the_configure(arch_list: str, tmp_path: Path) -> None:
    result = convert(arch_list, tmp_path)
    assert result.returncode != 0
    assert "pysalient:" in result.stderr and "CUDA architecture" in result.stderr


def generate_code_flags(build_dir: Path) -> List[str]:
    commands = subprocess.run(
        ["ninja", "-C", str(build_dir), "-t", "commands"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({part.strip('"') for part in commands.split() if part.startswith("--generate-code=")})


@pytest.mark.skipif(shutil.which("nvcc") is None or shutil.which("ninja") is None, reason="needs nvcc and ninja")
def test_nvcc_receives_machine_code_for_every_arch_and_ptx_for_the_last(tmp_path: Path) -> None:
    (tmp_path / "kernel.cu").write_text("__global__ void twice(float* x) { x[threadIdx.x] *= 2.f; }\n")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\n"
        "project(archs LANGUAGES CUDA)\n"
        f'list(APPEND CMAKE_MODULE_PATH "{CMAKE_DIR.as_posix()}")\n'
        "include(PySalientCudaArchitectures)\n"
        'pysalient_cmake_cuda_architectures("${ARCHS}" architectures)\n'
        "add_library(archs OBJECT kernel.cu)\n"
        'set_target_properties(archs PROPERTIES CUDA_ARCHITECTURES "${architectures}")\n'
    )
    build = tmp_path / "build"
    configure = subprocess.run(
        [cmake_executable(), "-S", str(tmp_path), "-B", str(build), "-G", "Ninja", f"-DARCHS={DEFAULT_ARCHS}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    assert generate_code_flags(build) == sorted(
        [f"--generate-code=arch=compute_{sm},code=[sm_{sm}]" for sm in (75, 80, 86, 87, 89)]
        + ["--generate-code=arch=compute_90,code=[compute_90,sm_90]"]
    )
