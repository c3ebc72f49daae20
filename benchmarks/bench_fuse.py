"""What ``SalientModel.fuse()`` gains: eager latency with batch norms folded into the convolutions, in one process.

For each model: the same network unfused and fused (a deep copy, ``model.fuse()``), timed alternately on one
SynthSIS image resized to ``--size`` (H x W), median of ``--repeats`` calls after warm-up; the ratio is unfused /
fused. Entries without shipped weights run with random weights (the network cost does not depend on them; ``conf``
1.0 keeps post-processing out of the timing so the network is what is compared). Appends a dated table to
``benchmarks/RESULTS.md`` unless ``--no-write``.

    python benchmarks/bench_fuse.py --models sparseinst_r50_giam rdpnet_r50 --threads 1 2
"""

from __future__ import annotations

import argparse
import copy
import datetime
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence

import cv2
import numpy as np
import torch

import pysalient
from pysalient.data.synthsis import render_sample
from pysalient.layers import ConvNorm

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


def median_ms(model: Any, image: np.ndarray, imgsz: Optional[int], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(image, conf=1.0, imgsz=imgsz)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(name: str, image: np.ndarray, imgsz: Optional[int], threads: int, repeats: int) -> List[Any]:
    """One row: model, threads, folded layers, unfused ms, fused ms, ratio (timings alternate in rounds)."""
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = pysalient.load(name, device="cpu")
    norms = sum(1 for module in plain.network.modules() if isinstance(module, ConvNorm) and module.norm is not None)
    fused = copy.deepcopy(plain).fuse()
    folded = norms - sum(
        1 for module in fused.network.modules() if isinstance(module, ConvNorm) and module.norm is not None
    )
    for model in (plain, fused):
        model.predict(image, conf=1.0, imgsz=imgsz)  # warm-up
    rounds = 3
    plain_ms, fused_ms = [], []
    for _ in range(rounds):
        plain_ms.append(median_ms(plain, image, imgsz, max(1, repeats // rounds)))
        fused_ms.append(median_ms(fused, image, imgsz, max(1, repeats // rounds)))
    unfused, fused_time = statistics.median(plain_ms), statistics.median(fused_ms)
    return [name, threads, folded, unfused, fused_time, unfused / fused_time]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sparseinst_r50_giam", "rdpnet_r50", "sparseinst_r18_light"])
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    parser.add_argument("--imgsz", type=int, help="shortest side at inference (each model's test size if unset)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sample = render_sample((256, 256), seed=7, split="test", index=0).image
    image = cv2.resize(sample, (args.size[1], args.size[0]), interpolation=cv2.INTER_LINEAR)
    rows = [measure(name, image, args.imgsz, threads, args.repeats) for name in args.models for threads in args.threads]
    lines = ["| model | threads | folded layers | unfused ms | fused ms | speed-up |", "|---|---|---|---|---|---|"]
    for name, threads, folded, unfused, fused, ratio in rows:
        lines.append(f"| {name} | {threads} | {folded} | {unfused:.1f} | {fused:.1f} | {ratio:.2f}x |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
        title = f"## {datetime.date.today()} — bench_fuse.py — {machine}"
        note = (
            f"Eager predict of one {args.size[0]}x{args.size[1]} SynthSIS image at each model's test size, unfused "
            "vs batch norms folded (`model.fuse()`), alternating rounds in one process, median; conf 1.0."
        )
        with RESULTS_PATH.open("a") as handle:
            handle.write(f"\n{title}\n\n{note}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
