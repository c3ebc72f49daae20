"""Latency of one image through eager ``predict``, the TorchScript export and the AOTInductor export.

For each model (the default entry and an R50 G-IAM, random weights: latency does not depend on the values)
it exports both formats once, then times the full path of one 480x640 BGR image resized to ``--imgsz``
(pre- and post-processing included): median of ``--repeats`` runs after warm-up, all in one process. CPU
always; CUDA (fp32 and fp16: exports with ``half=True``, eager under ``torch.autocast``) with ``--device cuda``.
Appends a dated table to ``benchmarks/RESULTS.md`` unless ``--no-write``. AOTInductor compiles C++ for minutes per
model on a small CPU.

    python benchmarks/bench_export.py --models sparseinst_r18_light --imgsz 640
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch

import pysalient

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


def median_milliseconds(function: Callable[[], Any], repeats: int, warmup: int, device: str) -> float:
    """Median wall time in milliseconds (CUDA work is synchronised around every run)."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def measure(name: str, device: str, half: bool, imgsz: int, formats: Sequence[str], repeats: int) -> List[str]:
    """One table row: eager, then each export format, for one model / device / precision."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # entries without trained weights warn; latency does not care
        model = pysalient.load(name, device=device)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    cells = [name, device, "fp16" if half else "fp32", str(imgsz)]

    def eager() -> Any:
        # Eager fp16 is the fp32 model under autocast (what a user of the Python API would do).
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=half):
            return model.predict(image, imgsz=imgsz)

    cells.append(f"{median_milliseconds(eager, repeats, 2, device):.1f}")
    with tempfile.TemporaryDirectory() as folder:
        for format in formats:
            path = Path(folder) / f"model.{'ts' if format == 'torchscript' else 'pt2'}"
            started = time.perf_counter()
            model.export(format, path, imgsz=imgsz, half=half)
            export_seconds = time.perf_counter() - started
            exported = pysalient.load(str(path), device=device)
            latency = median_milliseconds(lambda exported=exported: exported.predict(image), repeats, 2, device)
            cells.append(f"{latency:.1f} (export {export_seconds:.0f} s)")
    return cells


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["sparseinst_r18_light", "sparseinst_r50_giam"])
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--formats", nargs="+", default=["torchscript", "aoti"], choices=["torchscript", "aoti"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    header = ["model", "device", "dtype", "imgsz", "eager ms"] + [f"{format} ms" for format in args.formats]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print("\n".join(lines), flush=True)
    for name in args.models:
        for half in [False, True] if args.device == "cuda" else [False]:
            row = "| " + " | ".join(measure(name, args.device, half, args.imgsz, args.formats, args.repeats)) + " |"
            print(row, flush=True)
            lines.append(row)
    if not args.no_write:
        from bench_ops import machine_description  # same folder: the machine line of every results table

        heading = f"\n## {datetime.date.today().isoformat()} — bench_export.py — {machine_description(args.device)}\n"
        note = "One 480x640 BGR image per call, pre- and post-processing included; median of repeated runs."
        with RESULTS_PATH.open("a") as handle:
            handle.write("\n".join([heading, note, ""] + lines) + "\n")
        print(f"appended to {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
