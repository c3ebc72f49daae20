"""Embedded-size models side by side: parameters, GFLOPs and CPU latency at one input, in one process.

pysalient entries (their shipped weights, random ones for entries without: cost does not depend on them) are timed
as networks on a ``[1, 3, H, W]`` input with their batch norms folded (``model.fuse()``) and as full eager
``predict`` of an ``H x W`` BGR image at ``imgsz = H`` (pre-processing, network, post- processing). When
``ultralytics`` is installed, its nano segmentation models are built from their yaml (random weights, nothing
downloaded), fused as its predictor fuses them, and timed as networks on the same input. GFLOPs are
``torch.utils.flop_counter`` counts (two per multiply-add, convolutions and matrix products) for both. Median of
``--repeats`` calls after warm-up. Appends a dated table to ``benchmarks/RESULTS.md`` unless ``--no-write``.

    python benchmarks/bench_edge.py --threads 1 2
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import pysalient

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
PYSALIENT_MODELS = ["sparseinst_r18_nano", "sparseinst_r18_light", "sparseinst_mbv2_tiny"]
ULTRALYTICS_MODELS = ["yolov8n-seg.yaml", "yolo11n-seg.yaml"]


def median_ms(function: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def flops_and_params(network: torch.nn.Module, x: torch.Tensor) -> tuple:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        network(x)
    return counter.get_total_flops() / 1e9, sum(p.numel() for p in network.parameters()) / 1e6


def pysalient_row(name: str, size: Sequence[int], threads: int, repeats: int) -> List[Any]:
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = pysalient.load(name, device="cpu")
    network = model.fuse().network  # batch norms folded: the network predict then runs
    x = torch.randn(1, 3, *size)
    gflops, params = flops_and_params(network, x)
    with torch.no_grad():
        net_ms = median_ms(lambda: network(x), repeats)
    image = np.random.default_rng(0).integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
    predict_ms = median_ms(lambda: model.predict(image, imgsz=size[0]), repeats)
    return [name, threads, f"{params:.2f}", f"{gflops:.2f}", f"{net_ms:.1f}", f"{predict_ms:.1f}"]


def ultralytics_row(yaml_name: str, size: Sequence[int], threads: int, repeats: int) -> Optional[List[Any]]:
    try:
        from ultralytics import YOLO
    except ImportError:
        return None
    torch.set_num_threads(threads)
    network = YOLO(yaml_name).model.fuse(verbose=False).eval()
    x = torch.randn(1, 3, *size)
    gflops, params = flops_and_params(network, x)
    with torch.no_grad():
        net_ms = median_ms(lambda: network(x), repeats)
    return [
        yaml_name.replace(".yaml", "") + " (ultralytics)",
        threads,
        f"{params:.2f}",
        f"{gflops:.2f}",
        f"{net_ms:.1f}",
        "-",
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=PYSALIENT_MODELS)
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    missing_ultralytics = False
    for threads in args.threads:
        rows += [pysalient_row(name, args.size, threads, args.repeats) for name in args.models]
        for yaml_name in ULTRALYTICS_MODELS:
            row = ultralytics_row(yaml_name, args.size, threads, args.repeats)
            missing_ultralytics = missing_ultralytics or row is None
            if row is not None:
                rows.append(row)
    header = "| model | threads | params M | GFLOPs | network ms (BN folded) | predict ms |"
    lines = [header, "|---|---|---|---|---|---|"] + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    table = "\n".join(lines)
    print(table)
    note = f"Input {args.size[0]}x{args.size[1]}, median of {args.repeats} calls."
    if missing_ultralytics:
        note += " ultralytics is not installed here: its nano models were not built or timed."
        print(note)
    if not args.no_write:
        machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
        title = f"## {datetime.date.today()} — bench_edge.py — {machine}"
        with RESULTS_PATH.open("a") as handle:
            handle.write(f"\n{title}\n\n{note}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
