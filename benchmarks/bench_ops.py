"""Times every native operator against its pure-PyTorch reference, on the CPU (1 and 2 threads) or on a GPU.

Each case runs the native op (``torch.ops.pysalient.*``) and the reference from
``pysalient.ops._reference`` on the same inputs in the same process: median of ``--repeats`` runs after
``--warmup`` runs. The table is printed and, unless ``--no-write``, appended with the date and machine to
``benchmarks/RESULTS.md``. Timings are measurements, never test assertions.

With ``--device cuda`` the inputs live on the GPU and every timed call ends with ``torch.cuda.synchronize()``;
ops without a CUDA kernel in the loaded library are skipped. Where torchvision is installed, ``roi_align`` and
``nms`` are also timed against ``torchvision.ops``. On CUDA the memory-bound ops (``roi_masking``,
``paste_masks``, ``upsample_masks``) report their achieved bandwidth (bytes they must move at least: inputs read
once, outputs written once, divided by the time) against the device's measured copy bandwidth.

    python benchmarks/bench_ops.py                 # full run, writes RESULTS.md
    python benchmarks/bench_ops.py --only nms      # one op
    python benchmarks/bench_ops.py --device cuda   # on the GPU
    python benchmarks/bench_ops.py --smoke         # tiny sizes, one run: checks the script itself
    python benchmarks/bench_ops.py --load 0 2      # idle, then with 2 busy processes per core

``--load N`` runs the whole table while ``N`` busy processes per core spin in the background (a user's machine
runs data loaders, other models, other requests): kernels that open many small parallel regions wait for a time
slice at every barrier and fall far behind serial code there, which an idle machine never shows. Several values
give one table each, in order.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import multiprocessing
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

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
    torchvision: Optional[Callable[[], Any]] = None  # the same computation by torchvision.ops, when installed
    bytes_needed: int = 0  # memory-bound ops: bytes read and written at least (0: not reported)


def median_milliseconds(
    function: Callable[[], Any], repeats: int, warmup: int, synchronize: Callable[[], None] = lambda: None
) -> float:
    """Median wall time of ``function`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        function()
    synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize()
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


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def torchvision_ops() -> Optional[Any]:
    """torchvision.ops when torchvision is installed (comparison only; pysalient never depends on it)."""
    try:
        import torchvision.ops
    except Exception:  # a missing and a broken install (ABI mismatch) both mean "not available"
        return None
    return torchvision.ops


def build_cases(smoke: bool, device: str = "cpu") -> List[Case]:
    """Realistic sizes (issue 2) on ``device``; ``smoke`` shrinks every case to a few elements."""
    g = torch.Generator().manual_seed(0)
    scale = 8 if smoke else 1
    native = torch.ops.pysalient
    vision = torchvision_ops()
    cases: List[Case] = []

    def on(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(device)

    # S4Net RoIMasking on the stride-8 map of a 640x640 image.
    features = on(torch.randn(1, 256 // scale, 80 // scale, 80 // scale, generator=g))
    rois = on(random_rois(100 // scale, 1, 640 / scale, g))
    cases.append(
        Case(
            "roi_masking",
            f"{rois.shape[0]} RoIs, {tuple(features.shape)}, ternary",
            lambda: native.roi_masking(features, rois, 0.125, 1 / 3, 2),
            lambda: _reference.roi_masking(features, rois, 0.125, 1 / 3, 2),
            bytes_needed=nbytes(features, rois) + rois.shape[0] * nbytes(features[0]),
        )
    )

    # InstanceFCN assembling: k=5 (25 score maps), 21x21 windows at stride 8.
    score_maps = on(torch.randn(1, 25, 80 // scale, 80 // scale, generator=g))
    windows = on(
        torch.stack(
            [
                torch.zeros(300 // scale, dtype=torch.int64),
                torch.randint(-10, 70 // scale, (300 // scale,), generator=g),
                torch.randint(-10, 70 // scale, (300 // scale,), generator=g),
            ],
            dim=1,
        )
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
    pyramid = [on(torch.randn(1, 256 // scale, 640 // s, 640 // s, generator=g)) for s in (8, 16, 32, 64, 128)]
    level_scales = [1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128]
    level_sizes = [32, 16, 8, 4, 4]
    pyramid_rois = on(random_rois(100 // scale, 1, 640, g))
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
            torchvision=None
            if vision is None
            else lambda: vision.roi_align(pyramid[0], pyramid_rois, 14, level_scales[0], -1, True),
        )
    )

    for count in (1000, 10000):
        count //= scale
        boxes, scores = on(random_boxes(count, 640, g)), on(torch.rand(count, generator=g))
        cases.append(
            Case(
                "nms",
                f"{count} boxes, IoU 0.5",
                lambda boxes=boxes, scores=scores: native.nms(boxes, scores, 0.5),
                lambda boxes=boxes, scores=scores: _reference.nms(boxes, scores, 0.5),
                torchvision=None
                if vision is None
                else lambda boxes=boxes, scores=scores: vision.nms(boxes, scores, 0.5),
            )
        )

    roi_masks = on(torch.rand(100 // scale, 28, 28, generator=g))
    paste_boxes = on(random_boxes(100 // scale, 480 / scale, g))
    paste_hw = (480 // scale, 640 // scale)
    cases.append(
        Case(
            "paste_masks",
            f"{roi_masks.shape[0]} masks 28x28 into {paste_hw[0]}x{paste_hw[1]}",
            lambda: native.paste_masks(roi_masks, paste_boxes, paste_hw[0], paste_hw[1], 0.5),
            lambda: _reference.paste_masks(roi_masks, paste_boxes, paste_hw[0], paste_hw[1], 0.5),
            bytes_needed=nbytes(roi_masks, paste_boxes) + roi_masks.shape[0] * paste_hw[0] * paste_hw[1],
        )
    )

    mask_logits = on(torch.randn(100 // scale, 80, 112, generator=g) * 4)
    output_hw = [480 // scale, 640 // scale]
    cases.append(
        Case(
            "upsample_masks",
            f"{mask_logits.shape[0]} masks 80x112 -> padded 320x448 -> {output_hw[0]}x{output_hw[1]}",
            lambda: native.upsample_masks(mask_logits, [320, 448], [320, 427], output_hw, 0.45),
            lambda: _reference.upsample_masks(mask_logits, [320, 448], [320, 427], output_hw, 0.45),
            # logits read, uint8 masks + float boxes [N, 4] + maskness [N] written
            bytes_needed=nbytes(mask_logits) + mask_logits.shape[0] * (output_hw[0] * output_hw[1] + 20),
        )
    )

    # S4Net: stride-8 maps of the padded 320x448 input, boxes in output pixels.
    # (A generator of its own: the inputs of the cases below stay those of earlier RESULTS.md rows.)
    box_generator = torch.Generator().manual_seed(8)
    box_probabilities = on(torch.rand(100 // scale, 40, 56, generator=box_generator))
    box_masks_boxes = on(random_boxes(100 // scale, 480 / scale, box_generator))
    cases.append(
        Case(
            "resize_masks_in_boxes",
            f"{box_probabilities.shape[0]} maps 40x56 (padded 320x448) -> {output_hw[0]}x{output_hw[1]} in boxes",
            lambda: native.resize_masks_in_boxes(
                box_probabilities, box_masks_boxes, [320, 448], [320, 427], output_hw, 0.5
            ),
            lambda: _reference.resize_masks_in_boxes(
                box_probabilities, box_masks_boxes, [320, 448], [320, 427], output_hw, 0.5
            ),
            # maps and boxes read, uint8 masks written
            bytes_needed=nbytes(box_probabilities, box_masks_boxes)
            + box_probabilities.shape[0] * output_hw[0] * output_hw[1],
        )
    )

    image = on(torch.randint(0, 256, (480 // scale, 640 // scale, 3), dtype=torch.uint8, generator=g))
    cases.append(
        Case(
            "resize_image",
            f"{tuple(image.shape)} -> {320 // scale}x{427 // scale}",
            lambda: native.resize_image(image, 320 // scale, 427 // scale),
            lambda: _reference.resize_image(image, 320 // scale, 427 // scale),
        )
    )

    pred_logits = on(torch.randn(100, (160 // scale) ** 2, generator=g))
    targets = on((torch.rand(10, (160 // scale) ** 2, generator=g) > 0.7).float())
    cases.append(
        Case(
            "dice_cost",
            f"100x10 at {160 // scale}x{160 // scale}",
            lambda: native.dice_cost(pred_logits, targets),
            lambda: _reference.dice_cost(pred_logits, targets),
        )
    )

    for rows, cols in ((100, 10), (100, 50)):
        cost = on(torch.rand(rows // scale, cols // scale, generator=g, dtype=torch.float64))
        cases.append(
            Case(
                "linear_sum_assignment",
                f"{cost.shape[0]}x{cost.shape[1]}",
                lambda cost=cost: native.linear_sum_assignment(cost, False),
                lambda cost=cost: _reference.linear_sum_assignment(cost, False),
            )
        )
    return cases


def has_kernel(case: Case, device: str) -> bool:
    """Whether the loaded op library has a kernel of this case's op for ``device``."""
    op = "multilevel_roi_align" if case.op == "roi_align" else case.op
    key = "CUDA" if torch.device(device).type == "cuda" else "CPU"
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"pysalient::{op}", key)


def copy_bandwidth_gb_s(device: str, smoke: bool) -> float:
    """Device-to-device copy bandwidth (bytes read + bytes written per second), the ceiling of a memory-bound op."""
    source = torch.empty((1 if smoke else 64) * 2**20, device=device)
    target = torch.empty_like(source)
    milliseconds = median_milliseconds(lambda: target.copy_(source), 3 if smoke else 20, 1, torch.cuda.synchronize)
    return 2 * nbytes(source) / (milliseconds * 1e-3) / 1e9


def run(
    cases: Sequence[Case], settings: Sequence[str], repeats: int, warmup: int, device: str, copy_gb_s: float
) -> List[Dict[str, Any]]:
    """Measures every case in every setting ("<n>t": n CPU threads, or "cuda"); returns one row per case."""
    synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    with_torchvision = any(case.torchvision is not None for case in cases)
    rows = []
    for case in cases:
        row: Dict[str, Any] = {"op": case.op, "size": case.size}
        for setting in settings:
            if setting.endswith("t"):
                torch.set_num_threads(int(setting[:-1]))
            row[f"reference_{setting}"] = median_milliseconds(case.reference, repeats, warmup, synchronize)
            row[f"native_{setting}"] = median_milliseconds(case.native, repeats, warmup, synchronize)
        if case.torchvision is not None:
            row["torchvision"] = median_milliseconds(case.torchvision, repeats, warmup, synchronize)
        if copy_gb_s > 0 and case.bytes_needed:
            row["bandwidth"] = case.bytes_needed / (row[f"native_{settings[-1]}"] * 1e-3) / 1e9
        rows.append(row)
        print(format_row(row, settings, with_torchvision, copy_gb_s), flush=True)
    return rows


def table_header(settings: Sequence[str], with_torchvision: bool, copy_gb_s: float) -> str:
    columns = ["op", "size"]
    for setting in settings:
        columns += [f"reference ms ({setting})", f"native ms ({setting})", f"speed-up ({setting})"]
    if len(settings) > 1:
        columns.append(f"native {settings[-1]} vs {settings[0]}")
    if with_torchvision:
        columns += ["torchvision ms", "native vs torchvision"]
    if copy_gb_s > 0:
        columns += ["GB/s", f"% of copy ({copy_gb_s:.0f} GB/s)"]
    return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)


def format_row(row: Dict[str, Any], settings: Sequence[str], with_torchvision: bool, copy_gb_s: float) -> str:
    cells = [row["op"], row["size"]]
    for setting in settings:
        reference, native = row[f"reference_{setting}"], row[f"native_{setting}"]
        cells += [f"{reference:.3f}", f"{native:.3f}", f"{reference / native:.1f}x"]
    if len(settings) > 1:
        cells.append(f"{row[f'native_{settings[0]}'] / row[f'native_{settings[-1]}']:.2f}x")
    if with_torchvision:
        vision = row.get("torchvision")
        native = row[f"native_{settings[-1]}"]
        cells += ["" if vision is None else f"{vision:.3f}", "" if vision is None else f"{vision / native:.2f}x"]
    if copy_gb_s > 0:
        bandwidth = row.get("bandwidth")
        cells += [
            "" if bandwidth is None else f"{bandwidth:.0f}",
            "" if bandwidth is None else f"{100 * bandwidth / copy_gb_s:.0f}%",
        ]
    return "| " + " | ".join(cells) + " |"


def machine_description(device: str) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    host = f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__}, Python {platform.python_version()}"
    if torch.device(device).type != "cuda":
        return host
    properties = torch.cuda.get_device_properties(device)
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", f"--id={properties.pci_bus_id}"]
        driver = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError, AttributeError):
        driver = "unknown"
    gpu = f"{properties.name} (sm_{properties.major}{properties.minor}, {properties.total_memory / 2**30:.0f} GiB)"
    return f"{gpu}, driver {driver}, CUDA {torch.version.cuda}; host {host}"


def append_results(
    rows: List[Dict[str, Any]],
    settings: Sequence[str],
    repeats: int,
    note: Optional[str],
    device: str,
    with_torchvision: bool,
    copy_gb_s: float,
) -> None:
    """Appends a dated section with the table to benchmarks/RESULTS.md."""
    today = datetime.date.today().isoformat()
    lines = [
        f"\n## {today} — bench_ops.py --device {device} — {machine_description(device)}\n",
        f"Median of {repeats} runs after warm-up, same process; speed-up = reference / native.",
    ]
    if copy_gb_s > 0:
        lines.append("GB/s = bytes the op must move (inputs read once, outputs written once) / native time.")
    if note:
        lines.append(note)
    header = table_header(settings, with_torchvision, copy_gb_s)
    lines += ["", header] + [format_row(row, settings, with_torchvision, copy_gb_s) for row in rows]
    if not RESULTS_PATH.exists():
        RESULTS_PATH.write_text("# Benchmark results\n\nDated measurements written by the scripts in this folder.\n")
    with RESULTS_PATH.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def background_load(per_core: int) -> Iterator[int]:
    """``per_core`` busy processes per logical core for the duration of the block; yields their number."""
    count = per_core * (os.cpu_count() or 1)
    context = multiprocessing.get_context("spawn")  # nothing of this process (torch threads) is inherited
    workers = [context.Process(target=_spin, daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield count
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts (CPU only)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]")
    parser.add_argument("--only", nargs="+", help="op names to run")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each, nothing written")
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md")
    parser.add_argument("--note", help="a line added under the dated heading")
    parser.add_argument(
        "--load", type=int, nargs="+", default=[0], help="busy background processes per core (one table per value)"
    )
    args = parser.parse_args(argv)
    if not ops.has_native():
        raise SystemExit(f"native ops are not loaded ({ops.native_load_error()}); nothing to compare")
    on_cuda = torch.device(args.device).type == "cuda"
    if on_cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda needs torch with CUDA and a visible GPU")
    if args.smoke:
        args.repeats, args.warmup, args.no_write = 1, 0, True
    cases = [case for case in build_cases(args.smoke, args.device) if not args.only or case.op in args.only]
    skipped = sorted({case.op for case in cases if not has_kernel(case, args.device)})
    if skipped:
        print(f"skipped (no {args.device} kernel in the loaded library): {', '.join(skipped)}")
    cases = [case for case in cases if case.op not in skipped]
    settings = ["cuda"] if on_cuda else [f"{count}t" for count in args.threads]
    with_torchvision = any(case.torchvision is not None for case in cases)
    copy_gb_s = copy_bandwidth_gb_s(args.device, args.smoke) if on_cuda else 0.0
    if on_cuda:
        print(f"{machine_description(args.device)}; measured copy bandwidth {copy_gb_s:.0f} GB/s")
    for per_core in args.load:
        with background_load(per_core) as busy:
            load_note = f"Background load: {busy} busy processes ({per_core} per core)." if busy else "Idle machine."
            print(load_note)
            print(table_header(settings, with_torchvision, copy_gb_s))
            rows = run(cases, settings, args.repeats, args.warmup, args.device, copy_gb_s)
        if not args.no_write:
            note = " ".join(part for part in (args.note, load_note) if part)
            append_results(rows, settings, args.repeats, note, args.device, with_torchvision, copy_gb_s)
            print(f"appended to {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
