"""The SPRNet family declaration: how the engine builds, runs, exports and loads it."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from pysalient.models.family import TrainRecipe
from pysalient.models.registry import FamilySpec, register_family
from pysalient.models.sprnet import config as _presets  # noqa: F401  (registers the named entries)
from pysalient.models.sprnet.config import SPRNetConfig
from pysalient.models.sprnet.detector import build_detector
from pysalient.models.sprnet.loss import build_criterion
from pysalient.models.sprnet.model import build_sprnet
from pysalient.models.state_dicts import bare_state_dict, load_bare_state_dict

CLASS_LOGITS_KEY = "head.cls_score.weight"
BOX_DELTAS_KEY = "head.bbox_pred.weight"

# The practical default (the report's B2 "detectron2_1x"): SGD 0.01 for 16 images, momentum 0.9, weight decay 1e-4,
# 1000-iteration linear warm-up, x0.1 after 2/3 and 8/9 of the run (60k and 80k of 90k iterations), 12 epochs of
# COCO, 500 px training (the paper's test size), horizontal flips.
DETECTRON2_1X_RECIPE = TrainRecipe(
    optimizer="sgd",
    lr=0.01,
    momentum=0.9,
    weight_decay=1e-4,
    weight_decay_norm=0.0,
    warmup="linear",
    warmup_iters=1000,
    warmup_factor=0.001,
    schedule="step",
    lr_steps=(2.0 / 3.0, 8.0 / 9.0),
    gamma=0.1,
    train_sizes=(500,),
    reference_test_size=500,
    max_size=833,
    batch=16,
    epochs=12,
    flip=True,
    clip_grad=None,
    amp=True,
)

# The paper's recipe ("Adam, initial learning rate 1e-5, gradient clip at 1e-3, 25 epochs"), which is the
# keras-retinanet / keras-maskrcnn default: Adam(lr=1e-5, clipnorm=0.001) (AdamW without weight decay is Adam), one
# image per step, no warm-up, no augmentation (B26). Its "epoch" is 25 full passes here; keras' 10 000-step epochs
# are ``max_iter=250000``. keras' ReduceLROnPlateau has no equivalent: the rate stays constant.
PAPER_RECIPE = TrainRecipe(
    optimizer="adamw",
    lr=1e-5,
    weight_decay=0.0,
    warmup="constant",
    warmup_iters=0,
    warmup_factor=1.0,
    schedule="step",
    lr_steps=(),
    train_sizes=(500,),
    reference_test_size=500,
    max_size=833,
    batch=1,
    epochs=25,
    flip=False,
    clip_grad=1e-3,
    amp=False,
)


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], strict: bool) -> Any:
    """Loads a pysalient SPRNet state dict (bare or under ``model`` / ``state_dict``, ``module.`` prefixes removed);
    there are no official checkpoints.

    Raises:
        ValueError: with ``strict``, missing or unexpected keys, named.
    """
    return load_bare_state_dict(model, checkpoint, strict, "SPRNet")


def num_classes_in(checkpoint: Mapping[str, Any]) -> Optional[int]:
    """Sigmoid classes of the head (class logits per anchor) of a checkpoint, None if unknown."""
    state = bare_state_dict(checkpoint)
    weight, deltas = state.get(CLASS_LOGITS_KEY), state.get(BOX_DELTAS_KEY)
    if not isinstance(weight, torch.Tensor) or not isinstance(deltas, torch.Tensor):
        return None
    return weight.shape[0] // max(deltas.shape[0] // 4, 1)


FAMILY = register_family(
    FamilySpec(
        name="sprnet",
        config_type=SPRNetConfig,
        build=build_sprnet,
        build_detector=build_detector,
        build_criterion=build_criterion,
        train_recipe=DETECTRON2_1X_RECIPE,
        load_weights=load_weights,
        num_classes_in=num_classes_in,
        named_recipes={"detectron2_1x": DETECTRON2_1X_RECIPE, "paper": PAPER_RECIPE},
    )
)
