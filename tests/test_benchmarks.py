"""The benchmark script keeps working (tiny sizes, one run, nothing written); timings are never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_bench_ops_smoke_run_covers_every_op() -> None:
    script = REPO_ROOT / "benchmarks" / "bench_ops.py"
    result = subprocess.run(
        [sys.executable, str(script), "--smoke", "--threads", "1"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| op |")]
    measured_ops = {row.split("|")[1].strip() for row in rows}
    expected = {
        "resize_image",
        "roi_masking",
        "assemble_instances",
        "multilevel_roi_align",
        "roi_align",
        "nms",
        "paste_masks",
        "upsample_masks",
        "resize_masks_in_boxes",
        "dice_cost",
        "linear_sum_assignment",
    }
    assert measured_ops == expected


def test_bench_export_smoke_run_times_eager_and_torchscript(tmp_path) -> None:
    script = REPO_ROOT / "benchmarks" / "bench_export.py"
    command = [sys.executable, str(script), "--models", "sparseinst_mbv2_tiny", "--imgsz", "64", "--threads", "1", "2"]
    command += ["--formats", "torchscript", "--repeats", "1", "--no-write", "--export-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| sparseinst_mbv2_tiny")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    assert [row[1:5] for row in cells] == [["cpu", "fp32", "64", "1"], ["cpu", "fp32", "64", "2"]]
    assert float(cells[0][5]) > 0 and "export" in cells[0][6] and "export" in cells[1][6]
    assert (tmp_path / "sparseinst_mbv2_tiny_64_fp32.ts").is_file()
    again = subprocess.run(command[:6] + command[9:], capture_output=True, text=True, timeout=600)  # no --threads
    assert again.returncode == 0, again.stderr
    rows = [line for line in again.stdout.splitlines() if line.startswith("| sparseinst_mbv2_tiny")]
    assert len(rows) == 1 and "export" not in rows[0]  # the kept export was reused, not made again


def test_bench_predict_smoke_run_prints_both_image_sets() -> None:
    script = REPO_ROOT / "benchmarks" / "bench_predict.py"
    command = [sys.executable, str(script), "--imgsz", "64", "--batches", "1", "2", "--repeats", "1", "--no-write"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "sizes" in line]
    assert len(rows) == 2 and all("(1.00x)" in row for row in rows)


def test_s4net_lanczos_mask_step_is_the_box_rectangle_of_the_thresholded_resize() -> None:
    from pysalient import ops

    module = load_benchmark("s4net_mask_resize")
    probabilities = torch.full((2, 8, 8), 0.9)
    probabilities[1, :, 4:] = 0.1  # the right half of the second map is background
    boxes = torch.tensor([[3.7, 2.2, 20.5, 9.0], [0.0, 0.0, 39.0, 29.0]])
    lanczos = module.lanczos_masks_in_boxes(probabilities, boxes, [64, 64], [64, 64], [30, 40], 0.5)
    bilinear = ops.resize_masks_in_boxes(probabilities, boxes, [64, 64], [64, 64], [30, 40], 0.5)
    expected = torch.zeros(30, 40, dtype=torch.uint8)
    expected[2:10, 3:21] = 1  # int(x1) <= x < int(x2) + 1
    assert torch.equal(lanczos[0], expected) and torch.equal(bilinear[0], expected)
    # both put the foreground / background edge of the second map at the middle column
    assert lanczos[1, :, :19].all() and not lanczos[1, :, 21:].any()
    assert bilinear[1, :, :19].all() and not bilinear[1, :, 21:].any()


def load_benchmark(name: str):  # noqa: ANN201
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sprnet_mask_branch_benchmark_runs_both_fusions_on_pixels_inside_the_levels() -> None:
    module = load_benchmark("sprnet_mask_branch")
    shapes = [[16, 16], [8, 8], [4, 4], [2, 2], [1, 1]]
    batch, level, ys, xs = module.spread_pixels(shapes, 200)
    heights = torch.tensor([h for h, _ in shapes])[level]
    assert bool((ys < heights).all()) and bool((xs < heights).all()) and bool((batch == 0).all())
    assert int((level == 0).sum()) > int((level == 4).sum())
    text = module.main(
        ["--models", "sprnet_r18_light", "--imgsz", "128", "--threads", "1", "--detections", "3"]
        + ["--repeats", "1", "--no-write"]
    )
    rows = [line for line in text.splitlines() if line.startswith("| sprnet_r18_light | 128 | 1 |")]
    assert len(rows) == 1 and rows[0].count("x |") == 1


def test_bench_ops_under_background_load_prints_one_table_per_load() -> None:
    script = REPO_ROOT / "benchmarks" / "bench_ops.py"
    command = [sys.executable, str(script), "--smoke", "--threads", "1", "--only", "nms", "--load", "0", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Idle machine." in lines and any(line.startswith("Background load: ") for line in lines)
    assert len([line for line in lines if line.startswith("| nms |")]) == 4  # two sizes, two tables


def test_bench_fuse_smoke_run_folds_and_times_both() -> None:
    script = REPO_ROOT / "benchmarks" / "bench_fuse.py"
    command = [sys.executable, str(script), "--models", "sparseinst_mbv2_tiny", "--size", "64", "96", "--imgsz", "64"]
    command += ["--repeats", "1", "--no-write"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("| sparseinst_mbv2_tiny")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "1" and int(cells[2]) > 10 and float(cells[3]) > 0 and float(cells[4]) > 0


def test_bench_edge_smoke_run_counts_flops_and_times_predict() -> None:
    script = REPO_ROOT / "benchmarks" / "bench_edge.py"
    command = [sys.executable, str(script), "--models", "sparseinst_r18_nano", "--size", "64", "96"]
    command += ["--repeats", "1", "--no-write"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("| sparseinst_r18_nano")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # 3.23 M parameters whatever the input; GFLOPs scale with the input area (8.48 at 480 x 640).
    assert cells[1] == "1" and cells[2] == "3.23" and 0.05 < float(cells[3]) < 0.5
    assert float(cells[4]) > 0 and float(cells[5]) > 0
