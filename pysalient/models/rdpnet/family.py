"""The RDPNet family declaration: how the engine builds, runs, exports and loads it."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from torch import nn

from pysalient.models.family import TrainRecipe
from pysalient.models.rdpnet import config as _presets  # noqa: F401  (registers the named entries)
from pysalient.models.rdpnet.config import RDPNetConfig
from pysalient.models.rdpnet.convert import load_official_checkpoint
from pysalient.models.rdpnet.convert import num_classes_in as _num_classes_in
from pysalient.models.rdpnet.detector import build_detector
from pysalient.models.rdpnet.loss import build_criterion
from pysalient.models.rdpnet.model import build_rdpnet
from pysalient.models.registry import FamilySpec, register_family

# The official ISOD recipe (configs/rdpnet/r50-isod-te.yaml on maskrcnn-benchmark's solver): SGD, lr 0.0025 for a
# batch of 4, momentum 0.9, weight decay 1e-4, biases at twice the rate without decay, a constant warm-up at 1/3 of
# the rate for 500 iterations, x0.1 after 6000 of 9000 iterations (kept as a fraction of the run), a single training
# scale of 320 (longest side 480) for the test size 320, horizontal flips. ISOD's 600 training images at batch 4 make
# 9000 iterations 60 epochs.
OFFICIAL_RECIPE = TrainRecipe(
    optimizer="sgd",
    lr=0.0025,
    momentum=0.9,
    weight_decay=1e-4,
    weight_decay_bias=0.0,
    weight_decay_norm=1e-4,
    bias_lr_factor=2.0,
    warmup="constant",
    warmup_iters=500,
    warmup_factor=1.0 / 3.0,
    schedule="step",
    lr_steps=(6000 / 9000,),
    gamma=0.1,
    train_sizes=(320,),
    reference_test_size=320,
    max_size=480,
    batch=4,
    epochs=60,
    flip=True,
    clip_grad=None,
    amp=False,
)


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], strict: bool) -> Any:
    """Loads a pysalient or official (maskrcnn-benchmark) RDPNet checkpoint; see ``load_official_checkpoint``."""
    return load_official_checkpoint(model, checkpoint, strict=strict)


def num_classes_in(checkpoint: Mapping[str, Any]) -> Optional[int]:
    """Output channels of the FCOS class logits of a loaded checkpoint (None if it has none)."""
    return _num_classes_in(checkpoint)


FAMILY = register_family(
    FamilySpec(
        name="rdpnet",
        config_type=RDPNetConfig,
        build=build_rdpnet,
        build_detector=build_detector,
        build_criterion=build_criterion,
        train_recipe=OFFICIAL_RECIPE,
        load_weights=load_weights,
        num_classes_in=num_classes_in,
    )
)
