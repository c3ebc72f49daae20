"""The benchmark script keeps working (tiny sizes, one run, nothing written); timings are never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
        "dice_cost",
        "linear_sum_assignment",
    }
    assert measured_ops == expected


def test_bench_export_smoke_run_times_eager_and_torchscript() -> None:
    script = REPO_ROOT / "benchmarks" / "bench_export.py"
    command = [sys.executable, str(script), "--models", "sparseinst_mbv2_tiny", "--imgsz", "64"]
    command += ["--formats", "torchscript", "--repeats", "1", "--no-write"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| sparseinst_mbv2_tiny"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:4] == ["cpu", "fp32", "64"] and float(cells[4]) > 0 and "export" in cells[5]


def test_bench_predict_smoke_run_prints_both_image_sets() -> None:
    script = REPO_ROOT / "benchmarks" / "bench_predict.py"
    command = [sys.executable, str(script), "--imgsz", "64", "--batches", "1", "2", "--repeats", "1", "--no-write"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "sizes" in line]
    assert len(rows) == 2 and all("(1.00x)" in row for row in rows)
