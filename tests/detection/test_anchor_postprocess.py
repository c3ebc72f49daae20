"""Anchor post-processing in RetinaNet mode: sigmoid candidates per level, anchor indices, the level fallback."""

from __future__ import annotations

import torch

from pysalient.detection.anchor_postprocess import AnchorPostProcessor


def two_levels() -> tuple:
    # level 0: 1 x 2 cells, level 1: 1 x 1 cell; 1 anchor per cell, 2 classes (channels a * 2 + k)
    logits = [torch.full((1, 2, 1, 2), -9.0), torch.full((1, 2, 1, 1), -9.0)]
    logits[0][0, 1, 0, 1] = 2.0  # cell 1, class 1
    logits[1][0, 0, 0, 0] = 1.0  # the level-1 cell, class 0
    deltas = [torch.zeros(1, 4, 1, 2), torch.zeros(1, 4, 1, 1)]
    anchors = [torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]]), torch.tensor([[0.0, 0.0, 40.0, 40.0]])]
    return logits, deltas, anchors


def test_sigmoid_candidates_carry_their_anchor_rows_over_concatenated_levels() -> None:
    logits, deltas, anchors = two_levels()
    processor = AnchorPostProcessor(
        2, "sigmoid", 0.05, 1000, per_level=True, nms_threshold=0.5, max_det=10, legacy=False
    )
    ((boxes, scores, labels, rows),) = processor.detect_with_anchors(logits, deltas, anchors, [[40, 40]])
    assert rows.tolist() == [1, 2] and labels.tolist() == [1, 0]
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([2.0, 1.0])))
    torch.testing.assert_close(boxes, torch.cat(anchors)[rows])
    ((plain_boxes, plain_scores, plain_labels),) = processor(logits, deltas, anchors, [[40, 40]])
    assert torch.equal(plain_boxes, boxes) and torch.equal(plain_scores, scores) and torch.equal(plain_labels, labels)
    scripted = torch.jit.script(processor)
    for eager, compiled in zip(
        (boxes, scores, labels, rows), scripted.detect_with_anchors(logits, deltas, anchors, [[40, 40]])[0]
    ):
        assert torch.equal(eager, compiled)


def test_keep_level_max_keeps_each_level_best_when_nothing_passes() -> None:
    logits, deltas, anchors = two_levels()
    strict = AnchorPostProcessor(2, "sigmoid", 0.95, 1000, per_level=True, nms_threshold=0.5, max_det=10, legacy=False)
    assert strict(logits, deltas, anchors, [[40, 40]])[0][0].shape[0] == 0
    fallback = AnchorPostProcessor(
        2, "sigmoid", 0.95, 1000, per_level=True, nms_threshold=0.5, max_det=10, legacy=False, keep_level_max=True
    )
    ((_, scores, labels, rows),) = fallback.detect_with_anchors(logits, deltas, anchors, [[40, 40]])
    assert rows.tolist() == [1, 2] and labels.tolist() == [1, 0]
    logits[0][0, 1, 0, 1] = 3.0  # passes 0.95: level 0 keeps only what passes, not its 0.948 runner-up
    logits[0][0, 0, 0, 0] = 2.9
    ((_, scores, _, rows),) = fallback.detect_with_anchors(logits, deltas, anchors, [[40, 40]])
    assert rows.tolist() == [1, 2] and float(scores[0]) > 0.95
