"""SparseInst knobs of the family-generic tests (looked up by family name, see ``tests/models/family_fixtures.py``).

- ``DEAD_BY_DESIGN``: parameters that legitimately receive a zero gradient: a constant added to every logit of a
  spatial softmax cancels out (the official soft-IAM model has the same dead parameters).
- :func:`confident_model`: a random model whose predictions are non-trivial, for tests that compare eager and
  exported results (random initialisation scores every query near 0 and covers the whole image).
"""

from __future__ import annotations

from typing import Any

import torch

from pysalient.engine.model import SalientModel
from pysalient.models import get_model_entry, list_models
from pysalient.models.sparseinst import SparseInstConfig

DEAD_BY_DESIGN = ("decoder.inst_branch.softmax_bias", "decoder.inst_branch.iam_conv.bias")
CONFIDENT_ENTRY = "sparseinst_mbv2_tiny"


def make_confident(model: SalientModel) -> SalientModel:
    """Class and objectness biases at +5 make every query pass the thresholds; larger mask-kernel weights make the
    masks cover part of the image (with the official initialisation every pixel is above the mask threshold)."""
    branch = model.network.decoder.inst_branch
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        branch.cls_score.bias.fill_(5.0)
        branch.objectness.bias.fill_(5.0)
        branch.mask_kernel.weight.copy_(torch.randn(branch.mask_kernel.weight.shape, generator=generator))
    return model


def separate_queries(model: SalientModel) -> SalientModel:
    """Instance-activation weights x300 and class / objectness weights x30, so that the queries attend to different
    places (masks of different areas, top scores spread by > 1e-3), and the mask kernel x10, so that few mask
    probabilities lie near the threshold (compiled graphs round differently from eager ones, ~1e-7)."""
    branch = model.network.decoder.inst_branch
    with torch.no_grad():
        branch.iam_conv.weight.mul_(300.0)
        branch.cls_score.weight.mul_(30.0)
        branch.objectness.weight.mul_(30.0)
        branch.mask_kernel.weight.mul_(10.0)
    return model


def size_changes(imgsz: int, max_size: int) -> dict:
    """Config changes giving the test-time shortest side ``imgsz`` capped at ``max_size``."""
    return {"min_size_test": imgsz, "max_size_test": max_size}


def preset_config(name: str, **changes: Any) -> SparseInstConfig:
    """The config of the registry entry ``name`` (``num_classes=...`` and field changes allowed)."""
    entry = get_model_entry(name)
    assert entry.family == "sparseinst", name
    return entry.make_config(**changes)


PRESETS = tuple(list_models(family="sparseinst"))
