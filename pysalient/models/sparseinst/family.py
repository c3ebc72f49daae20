"""The SparseInst family declaration: how the engine builds, trains, runs, exports and loads it."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from torch import nn

from pysalient.models.family import TrainRecipe
from pysalient.models.registry import FamilySpec, register_family
from pysalient.models.sparseinst import config as _presets  # noqa: F401  (registers the named entries)
from pysalient.models.sparseinst.config import SparseInstConfig
from pysalient.models.sparseinst.convert import CLASS_SCORE_KEY, convert_official_checkpoint, load_official_checkpoint
from pysalient.models.sparseinst.detector import build_detector
from pysalient.models.sparseinst.loss import SparseInstCriterion
from pysalient.models.sparseinst.model import build_sparseinst

# The official recipe (hustvl/SparseInst ``Base-SparseInst.yaml`` on detectron2's solver defaults): AdamW 5e-5,
# weight decay 0.05 (biases too; none on normalisation layers), a linear warm-up of 1000 iterations from 1/1000,
# x0.1 at 210k and 250k of 270k iterations (kept as fractions of the run), multi-scale shortest sides 416-640 for
# the test size 640 (scaled to the model's), longest side 853, flips, no clipping.
OFFICIAL_RECIPE = TrainRecipe(
    optimizer="adamw",
    lr=5e-5,
    betas=(0.9, 0.999),
    weight_decay=0.05,
    weight_decay_bias=None,
    weight_decay_norm=0.0,
    bias_lr_factor=1.0,
    warmup="linear",
    warmup_iters=1000,
    warmup_factor=0.001,
    schedule="step",
    lr_steps=(210000 / 270000, 250000 / 270000),
    gamma=0.1,
    train_sizes=(416, 448, 480, 512, 544, 576, 608, 640),
    reference_test_size=640,
    max_size=853,
    batch=8,
    epochs=36,
    flip=True,
    clip_grad=None,
    amp=True,
)


def build_criterion(config: SparseInstConfig) -> SparseInstCriterion:
    """The official SparseInst losses (weights of ``Base-SparseInst.yaml``) for ``config.num_classes`` classes."""
    return SparseInstCriterion(config.num_classes)


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], strict: bool) -> Any:
    """Loads a pysalient or official (detectron2-format) SparseInst state dict; see ``load_official_checkpoint``."""
    return load_official_checkpoint(model, checkpoint, strict=strict)


def num_classes_in(checkpoint: Mapping[str, Any]) -> Optional[int]:
    """Rows of the class-score layer of a loaded checkpoint (None if it has no such layer)."""
    state, _ = convert_official_checkpoint(checkpoint)
    weight = state.get(CLASS_SCORE_KEY)
    return None if weight is None else int(weight.shape[0])


FAMILY = register_family(
    FamilySpec(
        name="sparseinst",
        config_type=SparseInstConfig,
        build=build_sparseinst,
        build_detector=build_detector,
        build_criterion=build_criterion,
        train_recipe=OFFICIAL_RECIPE,
        load_weights=load_weights,
        num_classes_in=num_classes_in,
    )
)
