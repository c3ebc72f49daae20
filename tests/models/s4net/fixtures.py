"""S4Net knobs of the family-generic tests (looked up by family name, see ``tests/models/family_fixtures.py``).

- ``DEAD_BY_DESIGN``: none. The head is shared by the five levels and every segmentation layer sees the
  ground-truth RoIs, so every parameter gets a gradient from one batch with an instance.
- :func:`make_confident`: the released initialisation (N(0, 0.01), zero biases) scores every anchor at 0.5 and
  returns the anchors themselves; biased object logits give scores near 0.95, random delta weights move the boxes,
  and a biased foreground logit of the segmentation branch gives non-empty masks.
"""

from __future__ import annotations

import torch

from pysalient.engine.model import SalientModel

DEAD_BY_DESIGN: tuple = ()
CONFIDENT_ENTRY = "s4net_r18_light"


def make_confident(model: SalientModel) -> SalientModel:
    """Object logits +3 over the background with random weights (scores spread around 0.95), random delta weights
    (boxes of varied sizes around the anchors), segmentation logits biased +2 to the foreground with random weights.

    The weight scales are small because S4Net's input is only mean-subtracted (std 1): untrained features reach
    hundreds."""
    network = model.network
    head, segmentation = network.head, network.segmentation
    num_logits = head.num_logits
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head.cls_logits.weight.copy_(torch.randn(head.cls_logits.weight.shape, generator=generator) * 0.002)
        bias = torch.full((head.num_anchors, num_logits), 3.0)
        bias[:, 0] = 0.0
        head.cls_logits.bias.copy_(bias.reshape(-1))
        head.bbox_pred.weight.copy_(torch.randn(head.bbox_pred.weight.shape, generator=generator) * 0.0005)
        head.bbox_pred.bias.zero_()
        predictor = segmentation.predictor
        predictor.weight.copy_(torch.randn(predictor.weight.shape, generator=generator) * 0.0005)
        predictor.bias.copy_(torch.tensor([0.0, 2.0]))
    return model


def separate_queries(model: SalientModel) -> SalientModel:
    """Class weights x5 (scores further apart) and segmentation weights x4 (few probabilities near 0.5), so that
    compiled graphs, which round differently from eager ones (~1e-7), make the same decisions."""
    network = model.network
    with torch.no_grad():
        network.head.cls_logits.weight.mul_(5.0)
        network.segmentation.predictor.weight.mul_(4.0)
    return model


def size_changes(imgsz: int, max_size: int) -> dict:
    """Config changes giving the test size ``imgsz`` (S4Net resizes to a fixed square; ``max_size`` is unused)."""
    return {"input_size": imgsz}
