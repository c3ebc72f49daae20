"""InstanceFCN ablation at equal budget on SynthSIS: k in {3, 5, 7} (the paper's Table 1) and one vs all scales.

The light model is trained with each k for the same iterations, recipe and seed (``pysalient train``, one process
per run), then evaluated on a held-out split at the reference scale only and at all its test scales: mask AP / AP50 /
AP70, AR@10/100/1000 (``useCats=0`` is implied: one class) and the median latency of one image.

    python benchmarks/instancefcn_ablation.py --train synth/annotations/train.json \\
        --test synth_test/annotations/test.json --out runs/ifcn_ablation --iterations 200

Data: ``pysalient data synth --out synth --train 3000 --val 200 --test 300 --size 256 --seed 1`` and
``--out synth_test --train 0 --val 0 --test 300 --size 256 --seed 7``. Appends a dated table to
``benchmarks/RESULTS.md`` unless ``--no-write``; runs already trained in ``--out`` are reused.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from instancefcn_measure import RESULTS_PATH, median_ms, with_scales

import pysalient
from pysalient.engine.model import SalientModel
from pysalient.models import get_model_entry

RECIPE = (
    "model=instancefcn_r18_light weights=none batch=8 optimizer=adamw lr=1e-3 weight_decay=0.05 warmup=linear "
    "warmup_iters=50 warmup_factor=0.001 lr_steps=0.8 clip_grad=10 workers=1 eval_period=0 log_period=50 seed=0 "
    "train_sizes=76,114,171,256,384,576 max_size=1200 exist_ok=true"
).split()


def train(k: int, train_json: str, out: Path, iterations: int) -> Path:
    """Trains (or reuses) the k run; returns its weights."""
    weights = out / f"k{k}" / "weights.pth"
    if not weights.is_file():
        command = [sys.executable, "-m", "pysalient", "train", f"data={train_json}", f"max_iter={iterations}"]
        command += RECIPE + [f"project={out}", f"name=k{k}", f"model_config.k={k}"]
        with (out / f"train_k{k}.log").open("w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    return weights


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="COCO json of the training split")
    parser.add_argument("--test", required=True, help="COCO json of the held-out split")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--ks", nargs="+", type=int, default=[3, 5, 7])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    header = ["k", "scales", "AP", "AP50", "AP70", "AR@10", "AR@100", "AR@1000", "ms / image"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print("\n".join(lines), flush=True)
    for k in args.ks:
        trained = pysalient.load(str(train(k, args.train, args.out, args.iterations)), device="cpu")
        # Every run is evaluated with the entry's current inference settings (NMS, scales, thresholds), only k differs.
        reference = get_model_entry("instancefcn_r18_light").make_config(k=trained.config.k)
        trained = SalientModel(trained.network, trained.family, reference, ["salient"], trained.name)
        for which in ("one", "all"):
            model = with_scales(trained, which)
            metrics = model.evaluate(args.test, max_dets=(10, 100, 1000))
            cells: List[str] = [str(k), f"{which} ({len(model.config.test_scales)})"]
            cells += [f"{metrics[name]:.1f}" for name in ("AP", "AP50", "AP70", "AR@10", "AR@100", "AR@1000")]
            cells.append(f"{median_ms(lambda model=model: model.predict(image), args.repeats):.0f}")
            row = "| " + " | ".join(cells) + " |"
            print(row, flush=True)
            lines.append(row)
    if not args.no_write:
        from bench_ops import machine_description  # same folder: the machine line of every results table

        heading = f"\n## {datetime.date.today().isoformat()} — instancefcn_ablation.py — {machine_description('cpu')}\n"
        note = (
            f"instancefcn_r18_light, {args.iterations} iterations of 8 images per k (same recipe and seed), held-out "
            "SynthSIS test split; latency of one 256x256 image, conf 0.3."
        )
        with RESULTS_PATH.open("a") as handle:
            handle.write("\n".join([heading, note, ""] + lines) + "\n")
        print(f"appended to {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
