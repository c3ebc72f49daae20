"""FCOS target assignment and centerness targets against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from pysalient.detection.fcos_targets import centerness_targets, fcos_targets


def points(*xy):
    return torch.tensor(xy, dtype=torch.float32)


def test_inside_rule_and_regression_targets() -> None:
    boxes = torch.tensor([[0.0, 0.0, 40.0, 20.0]])
    labels = torch.tensor([3])
    level = points((4, 4), (36, 12), (40, 4), (50, 50), (0, 10))
    point_labels, distances, matches = fcos_targets([level], boxes, labels, [(-1.0, 64.0)])
    # (40, 4) lies on the right edge (r = 0) and (0, 10) on the left edge (l = 0): strictly inside only.
    assert point_labels.tolist() == [3, 3, -1, -1, -1]
    assert matches.tolist() == [0, 0, -1, -1, -1]
    assert distances[:2].tolist() == [[4.0, 4.0, 36.0, 16.0], [36.0, 12.0, 4.0, 8.0]]
    assert distances[2:].abs().sum() == 0


def test_size_ranges_choose_the_level() -> None:
    # One 200 x 100 box; at its centre (100, 50) max(l, t, r, b) = 100, in P4's [64, 128] only.
    boxes = torch.tensor([[0.0, 0.0, 200.0, 100.0]])
    centre = points((100, 50))
    ranges = [(-1.0, 64.0), (64.0, 128.0), (128.0, 256.0)]
    point_labels, _, _ = fcos_targets([centre, centre, centre], boxes, torch.tensor([0]), ranges)
    assert point_labels.tolist() == [-1, 0, -1]
    # The range ends are inclusive on both sides: max distance exactly 64 is positive on P3 and on P4.
    square = torch.tensor([[0.0, 0.0, 128.0, 128.0]])
    point_labels, _, _ = fcos_targets([points((64, 64)), points((64, 64))], square, torch.tensor([0]), ranges)
    assert point_labels.tolist() == [0, 0]


def test_smallest_box_wins_and_legacy_area_breaks_ties() -> None:
    boxes = torch.tensor([[0.0, 0.0, 30.0, 30.0], [5.0, 5.0, 20.0, 20.0], [0.0, 0.0, 10.0, 40.0]])
    labels = torch.tensor([0, 1, 2])
    point_labels, distances, matches = fcos_targets([points((8, 8))], boxes, labels, [(-1.0, 64.0)])
    # Areas 900, 225, 400: the 15 x 15 box wins.
    assert matches.tolist() == [1] and point_labels.tolist() == [1]
    assert distances.tolist() == [[3.0, 3.0, 12.0, 12.0]]
    # 10 x 40 and 20 x 20 have the same area (400) but not the same +1 area (451 vs 441).
    tie = torch.tensor([[0.0, 0.0, 10.0, 40.0], [0.0, 0.0, 20.0, 20.0]])
    assert fcos_targets([points((5, 5))], tie, torch.tensor([0, 1]), [(-1.0, 64.0)], legacy=False)[2].tolist() == [0]
    assert fcos_targets([points((5, 5))], tie, torch.tensor([0, 1]), [(-1.0, 64.0)], legacy=True)[2].tolist() == [1]


def test_no_boxes_is_all_background_and_levels_concatenate() -> None:
    point_labels, distances, matches = fcos_targets(
        [points((4, 4), (12, 4)), points((8, 8))], torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
    )
    assert point_labels.tolist() == [-1, -1, -1] and matches.tolist() == [-1, -1, -1]
    assert distances.shape == (3, 4) and distances.abs().sum() == 0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="size ranges"):
        fcos_targets([points((1, 1))] * 3, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), [(-1.0, 64.0)])
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        fcos_targets([points((1, 1))], torch.zeros(2, 4), torch.zeros(3, dtype=torch.int64))


def test_centerness_by_hand() -> None:
    distances = torch.tensor([[4.0, 4.0, 36.0, 16.0], [10.0, 5.0, 10.0, 5.0]])
    expected = torch.tensor([math.sqrt(4 / 36 * 4 / 16), 1.0])
    torch.testing.assert_close(centerness_targets(distances), expected)
