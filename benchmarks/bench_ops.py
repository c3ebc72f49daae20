"""Times every native operator against its pure-PyTorch reference, with 1 and 2 threads.

Each case runs the native op (``torch.ops.pysalient.*``) and the reference from
``pysalient.ops._reference`` on the same inputs in the same process: median of ``--repeats`` runs after
``--warmup`` runs. The table is printed and, unless ``--no-write``, appended with the date and machine to
``benchmarks/RESULTS.md``. Timings are measurements, never test assertions.

    python benchmarks/bench_ops.py                 # full run, writes RESULTS.md
    python benchmarks/bench_ops.py --only nms      # one op
    python benchmarks/bench_ops.py --smoke         # tiny sizes, one run: checks the script itself
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from pysalient import ops
from pysalient.ops import _reference

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass
class Case:
    """One benchmarked call: the native op and its reference on the same inputs."""

    op: str
    size: str
    native: Callable[[], Any]
    reference: Callable[[], Any]


def median_milliseconds(function: Callable[[], Any], repeats: int, warmup: int) -> float:
    """Median wall time of ``function`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def random_rois(count: int, batch: int, image_size: float, generator: torch.Generator) -> torch.Tensor:
    """rois: [count, 5] (batch_idx, x1, y1, x2, y2) inside an ``image_size`` square."""
    corners = torch.rand(count, 2, generator=generator) * image_size * 0.8
    extents = torch.rand(count, 2, generator=generator) * image_size * 0.4 + 4.0
    batch_index = torch.randint(0, batch, (count, 1), generator=generator).float()
    return torch.cat([batch_index, corners, (corners + extents).clamp(max=image_size)], dim=1)


def random_boxes(count: int, image_size: float, generator: torch.Generator) -> torch.Tensor:
    """boxes: [count, 4] (x1, y1, x2, y2)."""
    return random_rois(count, 1, image_size, generator)[:, 1:].contiguous()


def build_cases(smoke: bool) -> List[Case]:
    """Realistic sizes (issue 2); ``smoke`` shrinks every case to a few elements."""
    g = torch.Generator().manual_seed(0)
    scale = 8 if smoke else 1
    native = torch.ops.pysalient
    cases: List[Case] = []

    # S4Net RoIMasking on the stride-8 map of a 640x640 image.
    features = torch.randn(1, 256 // scale, 80 // scale, 80 // scale, generator=g)
    rois = random_rois(100 // scale, 1, 640 / scale, g)
    cases.append(
        Case(
            "roi_masking",
            f"{rois.shape[0]} RoIs, {tuple(features.shape)}, ternary",
            lambda: native.roi_masking(features, rois, 0.125, 1 / 3, 2),
            lambda: _reference.roi_masking(features, rois, 0.125, 1 / 3, 2),
        )
    )

    # InstanceFCN assembling: k=5 (25 score maps), 21x21 windows at stride 8.
    score_maps = torch.randn(1, 25, 80 // scale, 80 // scale, generator=g)
    windows = torch.stack(
        [
            torch.zeros(300 // scale, dtype=torch.int64),
            torch.randint(-10, 70 // scale, (300 // scale,), generator=g),
            torch.randint(-10, 70 // scale, (300 // scale,), generator=g),
        ],
        dim=1,
    )
    cases.append(
        Case(
            "assemble_instances",
            f"{windows.shape[0]} windows, m=21, k=5, {tuple(score_maps.shape)}",
            lambda: native.assemble_instances(score_maps, windows, 21, 5),
            lambda: _reference.assemble_instances(score_maps, windows, 21, 5),
        )
    )

    # RDPNet multi-level RoIAlign: P3..P7 of a 640x640 image pooled at 32/16/8/4/4.
    pyramid = [torch.randn(1, 256 // scale, 640 // s, 640 // s, generator=g) for s in (8, 16, 32, 64, 128)]
    level_scales = [1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128]
    level_sizes = [32, 16, 8, 4, 4]
    pyramid_rois = random_rois(100 // scale, 1, 640, g)
    cases.append(
        Case(
            "multilevel_roi_align",
            f"{pyramid_rois.shape[0]} RoIs, P3-P7 of 640x640, C={pyramid[0].shape[1]}, out 32/16/8/4/4",
            lambda: native.multilevel_roi_align(pyramid, pyramid_rois, level_scales, level_sizes, 2, True),
            lambda: _reference.multilevel_roi_align(pyramid, pyramid_rois, level_scales, level_sizes, 2, True),
        )
    )
    cases.append(
        Case(
            "roi_align",
            f"{pyramid_rois.shape[0]} RoIs, {tuple(pyramid[0].shape)}, 14x14, adaptive sampling",
            lambda: native.multilevel_roi_align(pyramid[:1], pyramid_rois, level_scales[:1], [14], -1, True),
            lambda: _reference.multilevel_roi_align(pyramid[:1], pyramid_rois, level_scales[:1], [14], -1, True),
        )
    )

    for count in (1000, 10000):
        count //= scale
        boxes, scores = random_boxes(count, 640, g), torch.rand(count, generator=g)
        cases.append(
            Case(
                "nms",
                f"{count} boxes, IoU 0.5",
                lambda boxes=boxes, scores=scores: native.nms(boxes, scores, 0.5),
                lambda boxes=boxes, scores=scores: _reference.nms(boxes, scores, 0.5),
            )
        )

    roi_masks = torch.rand(100 // scale, 28, 28, generator=g)
    paste_boxes = random_boxes(100 // scale, 480 / scale, g)
    cases.append(
        Case(
            "paste_masks",
            f"{roi_masks.shape[0]} masks 28x28 into {480 // scale}x{640 // scale}",
            lambda: native.paste_masks(roi_masks, paste_boxes, 480 // scale, 640 // scale, 0.5),
            lambda: _reference.paste_masks(roi_masks, paste_boxes, 480 // scale, 640 // scale, 0.5),
        )
    )

    mask_logits = torch.randn(100 // scale, 80, 112, generator=g) * 4
    output_hw = [480 // scale, 640 // scale]
    cases.append(
        Case(
            "upsample_masks",
            f"{mask_logits.shape[0]} masks 80x112 -> padded 320x448 -> {output_hw[0]}x{output_hw[1]}",
            lambda: native.upsample_masks(mask_logits, [320, 448], [320, 427], output_hw, 0.45),
            lambda: _reference.upsample_masks(mask_logits, [320, 448], [320, 427], output_hw, 0.45),
        )
    )

    image = torch.randint(0, 256, (480 // scale, 640 // scale, 3), dtype=torch.uint8, generator=g)
    cases.append(
        Case(
            "resize_image",
            f"{tuple(image.shape)} -> {320 // scale}x{427 // scale}",
            lambda: native.resize_image(image, 320 // scale, 427 // scale),
            lambda: _reference.resize_image(image, 320 // scale, 427 // scale),
        )
    )

    pred_logits = torch.randn(100, (160 // scale) ** 2, generator=g)
    targets = (torch.rand(10, (160 // scale) ** 2, generator=g) > 0.7).float()
    cases.append(
        Case(
            "dice_cost",
            f"100x10 at {160 // scale}x{160 // scale}",
            lambda: native.dice_cost(pred_logits, targets),
            lambda: _reference.dice_cost(pred_logits, targets),
        )
    )

    for rows, cols in ((100, 10), (100, 50)):
        cost = torch.rand(rows // scale, cols // scale, generator=g, dtype=torch.float64)
        cases.append(
            Case(
                "linear_sum_assignment",
                f"{cost.shape[0]}x{cost.shape[1]}",
                lambda cost=cost: native.linear_sum_assignment(cost, False),
                lambda cost=cost: _reference.linear_sum_assignment(cost, False),
            )
        )
    return cases


def run(cases: Sequence[Case], threads: Sequence[int], repeats: int, warmup: int) -> List[Dict[str, Any]]:
    """Measures every case at every thread count; returns one row per case."""
    rows = []
    for case in cases:
        row: Dict[str, Any] = {"op": case.op, "size": case.size}
        for count in threads:
            torch.set_num_threads(count)
            row[f"reference_{count}"] = median_milliseconds(case.reference, repeats, warmup)
            row[f"native_{count}"] = median_milliseconds(case.native, repeats, warmup)
        rows.append(row)
        print(format_row(row, threads), flush=True)
    return rows


def table_header(threads: Sequence[int]) -> str:
    columns = ["op", "size"]
    for count in threads:
        columns += [f"reference ms ({count}t)", f"native ms ({count}t)", f"speed-up ({count}t)"]
    if len(threads) > 1:
        columns.append(f"native {threads[-1]}t vs {threads[0]}t")
    return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)


def format_row(row: Dict[str, Any], threads: Sequence[int]) -> str:
    cells = [row["op"], row["size"]]
    for count in threads:
        reference, native = row[f"reference_{count}"], row[f"native_{count}"]
        cells += [f"{reference:.3f}", f"{native:.3f}", f"{reference / native:.1f}x"]
    if len(threads) > 1:
        cells.append(f"{row[f'native_{threads[0]}'] / row[f'native_{threads[-1]}']:.2f}x")
    return "| " + " | ".join(cells) + " |"


def machine_description() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__}, Python {platform.python_version()}"


def append_results(rows: List[Dict[str, Any]], threads: Sequence[int], repeats: int, note: Optional[str]) -> None:
    """Appends a dated section with the table to benchmarks/RESULTS.md."""
    today = datetime.date.today().isoformat()
    lines = [
        f"\n## {today} — bench_ops.py — {machine_description()}\n",
        f"Median of {repeats} runs after warm-up, same process; speed-up = reference / native.",
    ]
    if note:
        lines.append(note)
    lines += ["", table_header(threads)] + [format_row(row, threads) for row in rows]
    if not RESULTS_PATH.exists():
        RESULTS_PATH.write_text("# Benchmark results\n\nDated measurements written by the scripts in this folder.\n")
    with RESULTS_PATH.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", help="op names to run")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each, nothing written")
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md")
    parser.add_argument("--note", help="a line added under the dated heading")
    args = parser.parse_args(argv)
    if not ops.has_native():
        raise SystemExit(f"native ops are not loaded ({ops.native_load_error()}); nothing to compare")
    if args.smoke:
        args.repeats, args.warmup, args.no_write = 1, 0, True
    cases = [case for case in build_cases(args.smoke) if not args.only or case.op in args.only]
    print(table_header(args.threads))
    rows = run(cases, args.threads, args.repeats, args.warmup)
    if not args.no_write:
        append_results(rows, args.threads, args.repeats, args.note)
        print(f"appended to {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
