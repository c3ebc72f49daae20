"""SPRNet knobs of the family-generic tests (looked up by family name, see ``tests/models/family_fixtures.py``).

- ``DEAD_BY_DESIGN``: none. The RetinaNet head and the mask branch are shared by the five levels, both gates of the
  FPN see every image, and a batch with an instance always has anchors above the mask IoU (the generic tests'
  instances are large), so every parameter gets a gradient from one batch.
- :func:`make_confident`: the focal-loss prior scores every anchor at 0.01 (below the 0.05 candidate threshold);
  biased class logits give scores near 0.95, random delta weights move the boxes, and a biased mask logit gives
  non-empty masks.
"""

from __future__ import annotations

import torch

from pysalient.engine.model import SalientModel

DEAD_BY_DESIGN: tuple = ()
CONFIDENT_ENTRY = "sprnet_r18_light"


def make_confident(model: SalientModel) -> SalientModel:
    """Class logits +3 with small random weights (scores spread around 0.95), random delta weights (boxes of varied
    sizes around the anchors), mask logits biased +3 with small random weights."""
    network = model.network
    head, predictor = network.head, network.mask_branch.predictor
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head.cls_score.weight.copy_(torch.randn(head.cls_score.weight.shape, generator=generator) * 0.01)
        head.cls_score.bias.fill_(3.0)
        head.bbox_pred.weight.copy_(torch.randn(head.bbox_pred.weight.shape, generator=generator) * 0.01)
        head.bbox_pred.bias.zero_()
        predictor.weight.copy_(torch.randn(predictor.weight.shape, generator=generator) * 1e-4)
        predictor.bias.fill_(3.0)
    return model


def separate_queries(model: SalientModel) -> SalientModel:
    """Class weights x5 (scores further apart) and mask weights x4 (few probabilities near 0.5), so that compiled
    graphs, which round differently from eager ones (~1e-7), make the same decisions."""
    network = model.network
    with torch.no_grad():
        network.head.cls_score.weight.mul_(5.0)
        network.mask_branch.predictor.weight.mul_(4.0)
    return model


def size_changes(imgsz: int, max_size: int) -> dict:
    """Config changes giving the test size ``imgsz`` capped at ``max_size``."""
    return {"min_size_test": imgsz, "max_size_test": max_size}
