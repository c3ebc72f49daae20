"""Compile-only check of the CUDA kernels: every ``csrc/ops/*/*_cuda.cu`` through ``nvcc -c``, nothing linked or run.

Works with a CPU-only torch: every torch wheel ships the c10/ATen CUDA headers except one generated file,
``c10/cuda/impl/cuda_cmake_macros.h``, which is written into a temporary shim include directory. The flags mirror
the real build (cmake/PySalientCuda.cmake and torch's own CMake flags): C++17, torch's C++ ABI, relaxed constexpr,
no FMA contraction, c10 half types without cuda_fp16 operators. One representative architecture (sm_80 unless
``--arch``) keeps the check fast; the real build compiles the full list, and arch-specific code paths (none so
far) would need a check per arch. Files compile in parallel (``--jobs``, 2 by default); the exit status is non-zero
when any file fails, with that file's compiler errors printed.

    python tools/cuda_check.py                      # every kernel, sm_80
    python tools/cuda_check.py --arch 87 csrc/ops/nms/nms_cuda.cu
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]

# Kept in sync with cmake/PySalientCuda.cmake (which explains each flag) and torch's public/cuda.cmake.
NVCC_FLAGS = [
    "-std=c++17",
    "--expt-relaxed-constexpr",
    "--expt-extended-lambda",
    "-fmad=false",
    "-Xcompiler=-ffp-contract=off",
    "-Xcompiler=-fPIC",
    "-Xcompiler=-Wno-c++20-extensions",
    "-diag-suppress=3306",
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
    "-O2",
]

SHIM_HEADER = "c10/cuda/impl/cuda_cmake_macros.h"
# What torch's CMake generates into that header for a shared-library build (the only configuration it ships).
SHIM_CONTENT = "#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n"


def find_sources(paths: Sequence[str]) -> List[Path]:
    """The .cu files named on the command line, or every csrc/ops/*/*_cuda.cu."""
    if paths:
        return [Path(p).resolve() for p in paths]
    return sorted((REPO_ROOT / "csrc" / "ops").glob("*/*_cuda.cu"))


def torch_flags() -> List[str]:
    """Include directories of the installed torch and its C++ ABI setting."""
    import torch
    from torch.utils.cpp_extension import include_paths

    flags = [f"-I{path}" for path in include_paths()]
    flags.append(f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
    return flags


def compile_one(nvcc: str, source: Path, flags: List[str], out_dir: Path) -> Tuple[Path, int, str, float]:
    """Compiles one file to an object in out_dir; returns (source, exit status, compiler output, seconds)."""
    start = time.perf_counter()
    target = out_dir / (source.stem + ".o")
    command = [nvcc, "-c", str(source), "-o", str(target), *flags]
    result = subprocess.run(command, capture_output=True, text=True)
    return source, result.returncode, (result.stdout + result.stderr).strip(), time.perf_counter() - start


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help=".cu files (default: every csrc/ops/*/*_cuda.cu)")
    parser.add_argument("--arch", default="80", help="compute capability without the dot (default: 80)")
    parser.add_argument("--jobs", type=int, default=2, help="files compiled at once (default: 2)")
    parser.add_argument("--nvcc", default=os.environ.get("NVCC") or shutil.which("nvcc"), help="nvcc to use")
    parser.add_argument("--verbose", action="store_true", help="also print the warnings of files that compile")
    args = parser.parse_args(argv)

    if not args.nvcc:
        print("cuda_check: nvcc not found (set NVCC or put it on PATH)", file=sys.stderr)
        return 2
    sources = find_sources(args.files)
    if not sources:
        print("cuda_check: no *_cuda.cu files found", file=sys.stderr)
        return 2
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        print(f"cuda_check: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2

    failures = 0
    with tempfile.TemporaryDirectory(prefix="pysalient-cuda-check-") as scratch:
        shim = Path(scratch) / "shim"
        (shim / SHIM_HEADER).parent.mkdir(parents=True)
        (shim / SHIM_HEADER).write_text(SHIM_CONTENT)
        flags = [
            *NVCC_FLAGS,
            f"-gencode=arch=compute_{args.arch},code=sm_{args.arch}",
            f"-I{REPO_ROOT / 'csrc'}",
            # After torch's own directories: a torch that does ship the header wins over the shim.
            *torch_flags(),
            f"-I{shim}",
        ]
        print(f"cuda_check: {len(sources)} file(s), sm_{args.arch}, {args.jobs} job(s), {args.nvcc}", flush=True)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            jobs = [pool.submit(compile_one, args.nvcc, s, flags, Path(scratch)) for s in sources]
            for job in jobs:
                source, status, output, seconds = job.result()
                name = source.relative_to(REPO_ROOT) if source.is_relative_to(REPO_ROOT) else source
                if status == 0:
                    print(f"  ok      {name} ({seconds:.1f} s)", flush=True)
                    if args.verbose and output:
                        print(output)
                else:
                    failures += 1
                    print(f"  FAILED  {name} ({seconds:.1f} s)\n{output}\n", flush=True)
    total = time.perf_counter() - start
    print(f"cuda_check: {len(sources) - failures} ok, {failures} failed, {total:.1f} s wall", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
