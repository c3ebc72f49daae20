"""FCOS post-processing against hand-computed cases: candidates and fallback, decoding and clipping, legacy NMS,
the kthvalue cap, and export of the whole post-processor with data-dependent counts."""

from __future__ import annotations

import math

import torch

from pysalient.detection.boxes import box_iou
from pysalient.detection.postprocess import FCOSPostProcessor, legacy_nms, max_detections, select_level


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def greedy_legacy_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """The official loop, written plainly: +1 IoU, suppression at >=, kept indices ascending."""
    iou = box_iou(boxes, boxes, legacy=True)
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    suppressed, keep = set(), []
    for i in order:
        if i in suppressed:
            continue
        keep.append(i)
        suppressed.update(j for j in order if iou[i, j] >= threshold)
    return torch.tensor(sorted(keep), dtype=torch.int64)


def test_candidates_threshold_scores_decoding_and_clipping() -> None:
    # A 1x3 map at stride 8: locations (4, 4), (12, 4), (20, 4); probabilities 0.9, 0.04, 0.5.
    logits = torch.tensor([logit(0.9), logit(0.04), logit(0.5)]).reshape(1, 1, 3)
    distances = torch.tensor([[1.0, 2.0, 30.0], [1.0, 2.0, 30.0], [2.0, 2.0, 30.0], [3.0, 2.0, 30.0]]).reshape(4, 1, 3)
    centerness = torch.zeros(1, 1, 3)  # sigmoid 0.5
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 4.0]])
    boxes, scores, labels, index = select_level(logits, distances, centerness, points, [16, 24], 0.05, 1000)
    assert index.tolist() == [0, 2] and labels.tolist() == [0, 0]
    torch.testing.assert_close(scores, torch.tensor([0.45, 0.25]))
    # (x - l, y - t, x + r, y + b); the second box is clipped to [0, 23] x [0, 15].
    assert boxes.tolist() == [[3.0, 3.0, 6.0, 7.0], [0.0, 0.0, 23.0, 15.0]]
    top1 = select_level(logits, distances, centerness, points, [16, 24], 0.05, 1)
    assert top1[3].tolist() == [0]


def test_fallback_keeps_every_tie_of_the_maximum() -> None:
    logits = torch.tensor([logit(0.03), logit(0.01), logit(0.03), logit(0.02)]).reshape(1, 2, 2)
    distances = torch.ones(4, 2, 2)
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [12.0, 12.0]])
    _, _, _, index = select_level(logits, distances, torch.zeros(1, 2, 2), points, [16, 16], 0.05, 1000)
    assert index.tolist() == [0, 2]


def test_legacy_nms_by_hand_and_against_the_plain_loop() -> None:
    # IoU 6 / 12 = 0.5 without +1, 12 / 20 = 0.6 exactly with it: legacy NMS suppresses at >= 0.6.
    boxes = torch.tensor([[0.0, 0.0, 3.0, 3.0], [1.0, 0.0, 4.0, 3.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.5, 0.9, 0.3])
    labels = torch.zeros(3, dtype=torch.int64)
    assert (
        box_iou(boxes[:1], boxes[1:2]).item() == 0.5
        and box_iou(boxes[:1], boxes[1:2], legacy=True).item() == torch.tensor(0.6).item()
    )
    assert legacy_nms(boxes, scores, labels, 0.6).tolist() == [1, 2]
    assert legacy_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.6).tolist() == [0, 1, 2]  # classes kept apart
    # Suppression at IoU exactly equal to the threshold: [0,0,1,1] vs [0,0,1,3] is 4 / 8 = 0.5 with +1.
    equal = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 3.0]])
    assert legacy_nms(equal, torch.tensor([0.9, 0.8]), torch.zeros(2, dtype=torch.int64), 0.5).tolist() == [0]
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(300, 2, generator=generator) * 100
    random_boxes = torch.cat([corners, corners + torch.rand(300, 2, generator=generator) * 40], dim=1)
    random_scores = torch.rand(300, generator=generator)
    zeros = torch.zeros(300, dtype=torch.int64)
    for threshold in (0.3, 0.6):
        expected = greedy_legacy_nms(random_boxes, random_scores, threshold)
        assert torch.equal(legacy_nms(random_boxes, random_scores, zeros, threshold), expected)


def test_max_detections_rules() -> None:
    scores = torch.tensor([0.1, 0.9, 0.5, 0.5, 0.2])
    assert max_detections(scores, 3).tolist() == [1, 2, 3]
    assert max_detections(scores, 2).tolist() == [1, 2, 3]  # kthvalue: the tie at the 2nd score keeps both
    assert max_detections(scores, 2, "topk").tolist() == [1, 2]
    assert max_detections(scores, 10).tolist() == [0, 1, 2, 3, 4] and max_detections(scores, 0).shape == (5,)
    assert max_detections(torch.zeros(0), 5).shape == (0,)


def _random_outputs(height: int, width: int):
    generator = torch.Generator().manual_seed(3)
    shapes = [(height // s, width // s) for s in (8, 16)]
    logits = [torch.randn(1, 1, h, w, generator=generator) for h, w in shapes]
    distances = [torch.rand(1, 4, h, w, generator=generator) * 30 + 1 for h, w in shapes]
    centerness = [torch.randn(1, 1, h, w, generator=generator) for h, w in shapes]
    return logits, distances, centerness


def test_post_processor_scripts_and_exports_with_dynamic_counts() -> None:
    processor = FCOSPostProcessor([8, 16], 0.05, 50, 0.6, 20)
    logits, distances, centerness = _random_outputs(64, 96)
    (expected,) = processor(logits, distances, centerness, [[60, 90]])
    assert 0 < len(expected[1]) <= 20
    (scripted,) = torch.jit.script(processor)(logits, distances, centerness, [[60, 90]])
    for a, b in zip(expected, scripted):
        assert torch.equal(a, b)

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.processor = processor

        def forward(self, l0, l1, d0, d1, c0, c1):  # noqa: ANN001, ANN201
            return self.processor([l0, l1], [d0, d1], [c0, c1], [[60, 90]])[0]

    inputs = (logits[0], logits[1], distances[0], distances[1], centerness[0], centerness[1])
    program = torch.export.export(Wrapper(), inputs, strict=False).module()
    for a, b in zip(expected, program(*inputs)):
        assert torch.equal(a, b)
