"""InstanceFCN knobs of the family-generic tests (looked up by family name, see ``tests/models/family_fixtures.py``).

- ``DEAD_BY_DESIGN``: the instance branch. Its score maps are trained only through the assembled masks of positive
  windows, and a window is positive only for an object whose maximal side is 81-114 px at the training scale; the
  generic tests' 35-40 px instances never are, so one batch of them gives the branch no gradient (the paper's
  rule, not a dead path: ``tests/models/instancefcn/test_model.py`` trains every parameter on fitting objects).
- :func:`make_confident`: objectness biased +2 with small random weights (scores spread around 0.88), score maps of
  random weights large enough that the assembled masks vary in shape.
"""

from __future__ import annotations

import torch

from pysalient.engine.model import SalientModel

DEAD_BY_DESIGN: tuple = (
    "instance_branch.reduce.weight",
    "instance_branch.reduce.bias",
    "instance_branch.score_maps.weight",
    "instance_branch.score_maps.bias",
)
CONFIDENT_ENTRY = "instancefcn_r18_light"


def make_confident(model: SalientModel) -> SalientModel:
    """Objectness logits +2 with small random weights, score-map logits of random weights (std 0.05) and bias 0.5."""
    network = model.network
    objectness, score_maps = network.objectness_branch.logits, network.instance_branch.score_maps
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        objectness.weight.copy_(torch.randn(objectness.weight.shape, generator=generator) * 0.02)
        objectness.bias.fill_(2.0)
        score_maps.weight.copy_(torch.randn(score_maps.weight.shape, generator=generator) * 0.05)
        score_maps.bias.fill_(0.5)
    return model


def separate_queries(model: SalientModel) -> SalientModel:
    """Objectness weights x5 (scores further apart) and score-map weights x4 (few probabilities near 0.5), so that
    compiled graphs, which round differently from eager ones (~1e-7), make the same decisions."""
    network = model.network
    with torch.no_grad():
        network.objectness_branch.logits.weight.mul_(5.0)
        network.instance_branch.score_maps.weight.mul_(4.0)
    return model


def size_changes(imgsz: int, max_size: int) -> dict:
    """Config changes giving the test size ``imgsz`` capped at ``max_size``."""
    return {"min_size_test": imgsz, "max_size_test": max_size}
