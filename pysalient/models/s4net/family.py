"""The S4Net family declaration: how the engine builds, runs, exports and loads it."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from pysalient.models.family import TrainRecipe
from pysalient.models.registry import FamilySpec, register_family
from pysalient.models.s4net import config as _presets  # noqa: F401  (registers the named entries)
from pysalient.models.s4net.config import S4NetConfig
from pysalient.models.s4net.detector import build_detector
from pysalient.models.s4net.loss import build_criterion
from pysalient.models.s4net.model import build_s4net
from pysalient.models.state_dicts import bare_state_dict, load_bare_state_dict

CLASS_LOGITS_KEY = "head.cls_logits.weight"

# The released recipe (experiment/config.py, train_multi_gpu.py): SGD, lr 0.002 per GPU of one image, momentum
# 0.9, weight decay 1e-4, x0.1 at 20k and 30k of 40k iterations (kept as fractions of the run), horizontal flips, the
# fixed 320 x 320 input; the release has no warm-up (warmup_iters 0). 40k iterations of one image are 80 epochs of
# ISOD's 500 training images.
OFFICIAL_RECIPE = TrainRecipe(
    optimizer="sgd",
    lr=0.002,
    momentum=0.9,
    weight_decay=1e-4,
    weight_decay_norm=0.0,
    warmup="constant",
    warmup_iters=0,
    warmup_factor=1.0,
    schedule="step",
    lr_steps=(0.5, 0.75),
    gamma=0.1,
    train_sizes=(),
    reference_test_size=320,
    max_size=320,
    batch=1,
    epochs=80,
    flip=True,
    clip_grad=None,
    amp=False,
)


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], strict: bool) -> Any:
    """Loads a pysalient S4Net state dict (bare or under ``model`` / ``state_dict``; a ``module.`` prefix of
    DistributedDataParallel is removed). The released TensorFlow checkpoints are not read.

    Raises:
        ValueError: with ``strict``, missing or unexpected keys, named.
    """
    return load_bare_state_dict(model, checkpoint, strict, "S4Net")


def num_classes_in(checkpoint: Mapping[str, Any]) -> Optional[int]:
    """Classes of the head's softmax (logits per anchor minus the background) of a checkpoint, None if unknown."""
    state = bare_state_dict(checkpoint)
    weight = state.get(CLASS_LOGITS_KEY)
    anchors = state.get("head.bbox_pred.weight")
    if not isinstance(weight, torch.Tensor) or not isinstance(anchors, torch.Tensor):
        return None
    num_anchors = anchors.shape[0] // 4
    return weight.shape[0] // max(num_anchors, 1) - 1


FAMILY = register_family(
    FamilySpec(
        name="s4net",
        config_type=S4NetConfig,
        build=build_s4net,
        build_detector=build_detector,
        build_criterion=build_criterion,
        train_recipe=OFFICIAL_RECIPE,
        load_weights=load_weights,
        num_classes_in=num_classes_in,
    )
)
