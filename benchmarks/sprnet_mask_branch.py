"""Cost of SPRNet's mask branch: the fusion computed at the sampled pixels only against the dense fusion.

For a pyramid of the given input size and ``--detections`` pixels spread over its levels, times (median of
``--repeats`` runs, interleaved in one process) the fusion of the SPR branch two ways, point-sampled (the default:
the 28 taps of each pixel, four matrix products) and dense (the four convolutions over every level, then indexed),
and the decoder of the same pixels. Prints a Markdown table and appends it to ``benchmarks/RESULTS.md`` unless
``--no-write``.

    python benchmarks/sprnet_mask_branch.py --models sprnet_r18_light sprnet_r50 --imgsz 320 640 --threads 1 2
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import torch

from pysalient.models import get_family, get_model_entry
from pysalient.models.sprnet.config import STRIDES

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


def median_ms(functions: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median wall time in ms of each function, calls interleaved (one warm-up call each)."""
    times: Dict[str, List[float]] = {name: [] for name in functions}
    for function in functions.values():
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(values) for name, values in times.items()}


def spread_pixels(shapes: Sequence[Sequence[int]], count: int, seed: int = 0) -> List[torch.Tensor]:
    """``count`` pixels of one image, spread over the levels as detections are (mostly the fine levels):
    ``[batch, level, y, x]`` int64 [count] each."""
    generator = torch.Generator().manual_seed(seed)
    weights = torch.tensor([float(h * w) for h, w in shapes])
    level = torch.multinomial(weights / weights.sum(), count, replacement=True, generator=generator)
    heights = torch.tensor([h for h, _ in shapes])[level]
    widths = torch.tensor([w for _, w in shapes])[level]
    ys = (torch.rand(count, generator=generator) * heights).long()
    xs = (torch.rand(count, generator=generator) * widths).long()
    return [torch.zeros(count, dtype=torch.int64), level, ys, xs]


def measure(model: str, imgsz: int, detections: int, threads: int, repeats: int) -> Dict[str, float]:
    """Point-sampled and dense fusion and decoder times (ms) of ``model``'s widths on an ``imgsz`` square input."""
    torch.set_num_threads(threads)
    entry = get_model_entry(model)
    network = get_family(entry.family).build(entry.make_config()).eval()
    branch = network.mask_branch
    side = -(-imgsz // STRIDES[-1]) * STRIDES[-1]
    channels = branch.reduce.in_channels
    shapes = [[side // stride, side // stride] for stride in STRIDES]
    torch.manual_seed(0)
    levels = [torch.randn(1, channels, h, w) for h, w in shapes]
    batch, level, ys, xs = spread_pixels(shapes, detections)
    with torch.no_grad():
        fused = branch.point_fusion(levels, batch, level, ys, xs)
        times = median_ms(
            {
                "point": lambda: branch.point_fusion(levels, batch, level, ys, xs),
                "dense": lambda: branch.indexed_dense_fusion(levels, batch, level, ys, xs),
                "decoder": lambda: branch.decode(fused),
            },
            repeats,
        )
    return times


def main(argv: Sequence[str] = ()) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sprnet_r18_light", "sprnet_r50"])
    parser.add_argument("--imgsz", nargs="+", type=int, default=[320, 640])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(list(argv) or None)
    lines = [
        f"## {datetime.date.today()} — SPRNet mask branch, point-sampled vs dense fusion — {platform.machine()}, "
        f"torch {torch.__version__}",
        "",
        f"`python benchmarks/sprnet_mask_branch.py --models {' '.join(args.models)} --imgsz "
        f"{' '.join(map(str, args.imgsz))} --threads {' '.join(map(str, args.threads))} --detections "
        f"{args.detections} --repeats {args.repeats}`: the fusion of {args.detections} pixels of one image computed "
        "at the pixels only and densely over every level, and the decoder of those pixels (median ms; the branch "
        "costs fusion + decoder).",
        "",
        "| model | imgsz | threads | fusion at the pixels | dense fusion | dense / pixels | decoder |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in args.models:
        for imgsz in args.imgsz:
            for threads in args.threads:
                t = measure(model, imgsz, args.detections, threads, args.repeats)
                lines.append(
                    f"| {model} | {imgsz} | {threads} | {t['point']:.1f} | {t['dense']:.1f} | "
                    f"{t['dense'] / t['point']:.1f}x | {t['decoder']:.1f} |"
                )
                print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if not args.no_write:
        with open(RESULTS_PATH, "a", encoding="utf-8") as results:
            results.write("\n" + text)
    return text


if __name__ == "__main__":
    main()
