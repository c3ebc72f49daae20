"""A small training setup the trainer tests share (CPU, DDP, CUDA): a narrow model and a short run's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

from pysalient.engine.train_config import TrainConfig

# A narrow SparseInst (half-width MobileNetV2 neck and heads, 10 queries): a CPU iteration on 2 x 128 px images
# takes ~0.1 s.
SMALL_MODEL: Dict[str, Any] = {
    "backbone_width_multiplier": 0.5,
    "encoder_channels": 64,
    "inst_dim": 64,
    "mask_dim": 64,
    "kernel_dim": 32,
    "num_queries": 10,
}


def small_train_config(data: Union[str, Path], project: Union[str, Path], **changes: Any) -> TrainConfig:
    """Six iterations of SMALL_MODEL on ``data`` (a COCO json), batch 2, no workers, logging every iteration, CPU;
    the settings not given here (AdamW, warm-up, steps, flips...) come from SparseInst's recipe; ``changes`` override
    any field."""
    values: Dict[str, Any] = dict(
        data=str(data),
        model_config=SMALL_MODEL,
        max_iter=6,
        batch=2,
        workers=0,
        lr=1e-3,
        train_sizes=(96, 128),
        log_period=1,
        project=str(project),
        device="cpu",
    )
    values.update(changes)
    return TrainConfig(**values)
