"""RDPNet knobs of the family-generic tests (looked up by family name, see ``tests/models/family_fixtures.py``).

- ``DEAD_BY_DESIGN``: the box scales of P4..P7. FCOS gives a box to the level of its size (largest point-to-side
  distance in [-1, 64] on P3, [64, 128] on P4, ...); the generic tests' instances are under 64 pixels, so only P3
  has positives and the other levels' scales, which only scale box regressions, get a zero gradient
  (``tests/models/rdpnet/test_training.py`` trains P4 with a larger instance). The official code creates six scales
  and uses five: the sixth is frozen, so it is not trainable. Mask channel 0 (the official background) is never
  trained, but the predictor's other rows are, so no parameter is silent.
- :func:`make_confident`: the official initialisation scores every location at 0.01 x 0.5 and predicts boxes of about
  one pixel; confident biases give scores near 0.9 with varied, image-sized boxes and non-empty masks.
"""

from __future__ import annotations

import torch

from pysalient.engine.model import SalientModel

DEAD_BY_DESIGN = tuple(f"head.scales.{level}.scale" for level in (1, 2, 3, 4))
CONFIDENT_ENTRY = "rdpnet_r18_light"


def make_confident(model: SalientModel) -> SalientModel:
    """Class and centerness biases at +3 with random class weights (scores spread around 0.9), box distances of
    about exp(2.5) = 12 input pixels with random weights (boxes of varied sizes), mask logits biased to +1 on
    every class channel with random weights (masks cover part of each box)."""
    network = model.network
    head, masks = network.head, network.mask_head
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head.cls_logits.weight.copy_(torch.randn(head.cls_logits.weight.shape, generator=generator) * 0.2)
        head.cls_logits.bias.fill_(3.0)
        head.centerness.bias.fill_(3.0)
        head.bbox_pred.weight.copy_(torch.randn(head.bbox_pred.weight.shape, generator=generator) * 0.05)
        head.bbox_pred.bias.fill_(2.5)
        masks.predictor.weight.copy_(torch.randn(masks.predictor.weight.shape, generator=generator) * 0.5)
        masks.predictor.bias.fill_(1.0)
    return model


def separate_queries(model: SalientModel) -> SalientModel:
    """Class weights x5 (top scores further apart) and mask weights x4 (few probabilities near the threshold), so
    that compiled graphs, which round differently from eager ones (~1e-7), make the same decisions."""
    network = model.network
    with torch.no_grad():
        network.head.cls_logits.weight.mul_(5.0)
        network.mask_head.predictor.weight.mul_(4.0)
    return model


def size_changes(imgsz: int, max_size: int) -> dict:
    """Config changes giving the test-time shortest side ``imgsz`` capped at ``max_size``."""
    return {"min_size_test": imgsz, "max_size_test": max_size}
