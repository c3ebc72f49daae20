"""What ``predict(batch=...)`` gains: images per second of eager predict at several batch sizes, in one process.

Two sets of 16 BGR images: equal sizes (every image pads to the same network input, so a batch is one forward pass)
and mixed sizes (images run in one forward pass only with images of the same padded size, so that results do not
depend on ``batch``). Median of ``--repeats`` passes over the set after a warm-up pass; the ratio is against
``batch=1`` in the same process. Appends a dated table to ``benchmarks/RESULTS.md`` unless ``--no-write``.

    python benchmarks/bench_predict.py --model sparseinst_r18_light --imgsz 224
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

import pysalient

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
EQUAL_SIZES = [(240, 320)] * 16
MIXED_SIZES = [(240, 320), (320, 240), (256, 256), (200, 380)] * 4


def images_of(sizes: Sequence[tuple], seed: int = 0) -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for height, width in sizes]


def images_per_second(
    model: pysalient.engine.model.SalientModel, images: List[np.ndarray], batch: int, imgsz: int, repeats: int
) -> float:
    """Median throughput of ``predict`` over ``images`` (one warm-up pass first)."""
    model.predict(images, batch=batch, imgsz=imgsz)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(images, batch=batch, imgsz=imgsz)
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sparseinst_r18_light")
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = pysalient.load(args.model, device="cpu")
    rows: Dict[str, List[float]] = {}
    for label, sizes in (("equal sizes 240x320", EQUAL_SIZES), ("mixed sizes (4 padded shapes)", MIXED_SIZES)):
        images = images_of(sizes)
        rows[label] = [images_per_second(model, images, batch, args.imgsz, args.repeats) for batch in args.batches]
    header = "| images | " + " | ".join(f"batch {batch} img/s (x vs 1)" for batch in args.batches) + " |"
    lines = [header, "|---|" + "---|" * len(args.batches)]
    for label, values in rows.items():
        cells = " | ".join(f"{value:.1f} ({value / values[0]:.2f}x)" for value in values)
        lines.append(f"| {label} | {cells} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        machine = f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}"
        title = f"## {datetime.date.today()} — bench_predict.py {args.model} imgsz {args.imgsz} — {machine}"
        note = (
            "Eager predict on 16 random BGR images, median of repeated passes; ratio against batch 1 in the same "
            "process. Images share a forward pass only with images of the same padded size."
        )
        with RESULTS_PATH.open("a") as handle:
            handle.write(f"\n{title}\n\n{note}\n\n{table}\n")


if __name__ == "__main__":
    main()
