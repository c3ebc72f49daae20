"""The InstanceFCN family declaration: how the engine builds, runs, exports and loads it."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from pysalient.models.family import TrainRecipe
from pysalient.models.instancefcn import config as _presets  # noqa: F401  (registers the named entries)
from pysalient.models.instancefcn.config import PAPER_SCALE_FACTORS, SIS_SCALE_FACTORS, InstanceFCNConfig
from pysalient.models.instancefcn.detector import build_detector
from pysalient.models.instancefcn.loss import build_criterion
from pysalient.models.instancefcn.model import build_instancefcn
from pysalient.models.registry import FamilySpec, register_family
from pysalient.models.state_dicts import bare_state_dict, load_bare_state_dict

OBJECTNESS_KEY = "objectness_branch.logits.weight"
REFERENCE_SIZE = 600

# The paper's recipe: SGD, momentum 0.9, weight decay 5e-4, learning rate 1e-3 for 32k iterations then 1e-4 for 8k
# (x0.1 after 80 % of the run), 8 images per iteration (8 GPUs x 1), no warm-up; shorter sides jittered over
# 600 x 1.5^{-4..1} with no cap on the longer side, horizontal flips (the report's recommendation: DeepMask and FCIS
# flip). 40k x 8 images are 57 passes over VOC's 5,623 SBD training images.
PAPER_RECIPE = TrainRecipe(
    optimizer="sgd",
    lr=1e-3,
    momentum=0.9,
    weight_decay=5e-4,
    weight_decay_norm=0.0,
    warmup="constant",
    warmup_iters=0,
    warmup_factor=1.0,
    schedule="step",
    lr_steps=(0.8,),
    gamma=0.1,
    train_sizes=tuple(int(REFERENCE_SIZE * factor + 0.5) for factor in PAPER_SCALE_FACTORS),
    reference_test_size=REFERENCE_SIZE,
    max_size=4000,
    batch=8,
    epochs=57,
    flip=True,
    clip_grad=None,
    amp=True,
)

# The salient-instance variant: the same recipe with the shorter side 600 x 1.5^-5 = 79 added (objects as long as the
# image become positives there), matching ``instancefcn_vgg16_sis``' test scales.
SIS_RECIPE = TrainRecipe(
    **{
        **PAPER_RECIPE.__dict__,
        "train_sizes": tuple(int(REFERENCE_SIZE * factor + 0.5) for factor in SIS_SCALE_FACTORS),
    }
)


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], strict: bool) -> Any:
    """Loads a pysalient InstanceFCN state dict (bare or under ``model`` / ``state_dict``, ``module.`` prefixes
    removed); there are no official checkpoints.

    Raises:
        ValueError: with ``strict``, missing or unexpected keys, named.
    """
    return load_bare_state_dict(model, checkpoint, strict, "InstanceFCN")


def num_classes_in(checkpoint: Mapping[str, Any]) -> Optional[int]:
    """Objectness classes of a checkpoint (output channels of the objectness branch), None if unknown."""
    weight = bare_state_dict(checkpoint).get(OBJECTNESS_KEY)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else None


FAMILY = register_family(
    FamilySpec(
        name="instancefcn",
        config_type=InstanceFCNConfig,
        build=build_instancefcn,
        build_detector=build_detector,
        build_criterion=build_criterion,
        train_recipe=PAPER_RECIPE,
        load_weights=load_weights,
        num_classes_in=num_classes_in,
        named_recipes={"paper": PAPER_RECIPE, "sis": SIS_RECIPE},
    )
)
