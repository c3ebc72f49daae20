"""Latency of one image through eager ``predict`` and the TorchScript, AOTInductor and ONNX (ONNX Runtime) exports.

For each model (by default every family's default entry at its test size, random weights: latency does not
depend on the values, seeded so that detectors decode the same masks in every format) it exports each format
once, then times the full path of one 480x640 BGR image resized to ``--imgsz`` (pre- and post-processing
included): median of ``--repeats`` runs after warm-up, all in one process. CPU
always; CUDA (fp32 and fp16: exports with ``half=True``, eager under ``torch.autocast``) with ``--device cuda``.
Appends a dated table to ``benchmarks/RESULTS.md`` unless ``--no-write``. AOTInductor compiles C++ for minutes per
model on a small CPU.

    python benchmarks/bench_export.py --formats torchscript onnx --threads 1 2
    python benchmarks/bench_export.py --models sparseinst_r18_light --imgsz 320 640 --formats aoti

Exports are made once per model and size and timed at every ``--threads`` count (ONNX Runtime sessions are
opened per count with that many intra-op threads, as ``pysalient.load`` does under ``torch.set_num_threads``).
``--export-dir DIR --export-only`` compiles them ahead (e.g. while the machine is busy) and a later run with the
same ``--export-dir`` reuses them and only times.
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


def export_once(model: Any, format: str, folder: Path, imgsz: int, half: bool) -> tuple:
    """The export of ``model`` in ``format`` at ``imgsz`` under ``folder``: reused when already there (a kept
    ``--export-dir``), written otherwise. Returns (path, seconds spent exporting, or None when reused)."""
    from pysalient.export.formats import FORMATS

    path = folder / f"{model.name}_{imgsz}_{'fp16' if half else 'fp32'}{FORMATS[format].suffix}"
    if path.is_file():
        return path, None
    started = time.perf_counter()
    model.export(format, path, imgsz=imgsz, half=half)
    return path, time.perf_counter() - started


def measure(
    name: str,
    device: str,
    half: bool,
    imgsz: Optional[int],
    formats: Sequence[str],
    repeats: int,
    threads: Sequence[int],
    folder: Path,
    export_only: bool = False,
) -> List[List[str]]:
    """Table rows (one per thread count): eager, then each export format, for one model / device / precision."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # entries without trained weights warn; latency does not care
        # Seeded: an entry without weights gets the same random weights in every run, so that exports kept in
        # --export-dir hold the network timed eagerly (for detectors the weights set how many masks get decoded).
        torch.manual_seed(0)
        model = pysalient.load(name, device=device)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def eager() -> Any:
        # Eager fp16 is the fp32 model under autocast (what a user of the Python API would do).
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=half):
            return model.predict(image, imgsz=imgsz)

    if imgsz is None:
        imgsz = model.test_size
    exports = [(format, *export_once(model, format, folder, imgsz, half)) for format in formats]
    if export_only:
        return []
    rows: List[List[str]] = []
    for count in threads:
        torch.set_num_threads(count)
        loaded = [(pysalient.load(str(path), device=device), seconds) for _, path, seconds in exports]
        cells = [name, device, "fp16" if half else "fp32", str(imgsz), str(count)]
        cells.append(f"{median_milliseconds(eager, repeats, 2, device):.1f}")
        for exported, seconds in loaded:
            latency = median_milliseconds(lambda exported=exported: exported.predict(image), repeats, 2, device)
            cells.append(f"{latency:.1f}" + (f" (export {seconds:.0f} s)" if seconds is not None else ""))
        rows.append(cells)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_models = [
        "sparseinst_r18_light",
        "rdpnet_r18_light",
        "s4net_r18_light",
        "instancefcn_r18_light",
        "sprnet_r18_light",
    ]
    parser.add_argument("--models", nargs="+", default=default_models)
    parser.add_argument("--imgsz", nargs="+", type=int, default=[None], help="test sizes (default: each model's)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--formats", nargs="+", default=["torchscript", "aoti", "onnx"], choices=["torchscript", "aoti", "onnx"]
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", nargs="+", type=int, default=[torch.get_num_threads()])
    parser.add_argument(
        "--export-dir", help="keep the exports here and reuse the ones already there (compile now, time later)"
    )
    parser.add_argument("--export-only", action="store_true", help="write the exports to --export-dir, time nothing")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.export_only and not args.export_dir:
        parser.error("--export-only needs --export-dir")
    header = ["model", "device", "dtype", "imgsz", "threads", "eager ms"] + [f"{format} ms" for format in args.formats]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.export_dir or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for name in args.models:
            for imgsz in args.imgsz:
                for half in [False, True] if args.device == "cuda" else [False]:
                    for cells in measure(
                        name,
                        args.device,
                        half,
                        imgsz,
                        args.formats,
                        args.repeats,
                        args.threads,
                        folder,
                        args.export_only,
                    ):
                        row = "| " + " | ".join(cells) + " |"
                        print(row, flush=True)
                        lines.append(row)
    if not args.no_write and not args.export_only:
        from bench_ops import machine_description  # same folder: the machine line of every results table

        heading = f"\n## {datetime.date.today().isoformat()} — bench_export.py — {machine_description(args.device)}\n"
        note = "One 480x640 BGR image per call, pre- and post-processing included; median of repeated runs."
        with RESULTS_PATH.open("a") as handle:
            handle.write("\n".join([heading, note, ""] + lines) + "\n")
        print(f"appended to {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
