"""Overfitting a few SynthSIS images proves the whole training path learns: data, transforms, collation,
criterion, optimizer, schedule, checkpoint, ``pysalient.load`` and the evaluator.

About 40-60 s on one CPU thread of the shared 2-core CI machine (160 iterations of 4 x 128 px images); AP50
reaches 100 from about iteration 100 on the seeds tried (0, 1, 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pysalient
from pysalient.data import synthesize
from pysalient.engine.trainer import main_train


@pytest.fixture()
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_overfits_four_images(tmp_path: Path, one_thread) -> None:
    paths = synthesize(tmp_path / "synth", train=4, size=128, seed=1)
    overrides = [
        f"data={paths['train']}",
        f"project={tmp_path / 'runs'}",
        "max_iter=160",
        "batch=4",
        "workers=0",
        "lr=1e-3",  # 20x the official rate: a from-scratch tiny model on 4 images, no pretrained backbone
        "train_sizes=128",
        "flip=false",
        "log_period=20",
        "device=cpu",
        "model_config.backbone_width_multiplier=0.5",
        "model_config.encoder_channels=64",
        "model_config.inst_dim=64",
        "model_config.mask_dim=64",
        "model_config.kernel_dim=32",
        "model_config.num_queries=10",
    ]
    run_dir = main_train(None, overrides)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["loss"] < 0.5 * records[0]["loss"]
    model = pysalient.load(run_dir / "weights.pth", device="cpu")
    metrics = model.evaluate(paths["train"], imgsz=128)
    assert metrics["AP50"] >= 90.0, metrics
    assert metrics["AP"] >= 50.0, metrics
