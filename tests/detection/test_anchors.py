"""Anchors: hand-computed cell anchors of both conventions, the grid order, and the generator."""

from __future__ import annotations

import math

import pytest
import torch

from pysalient.detection.anchors import AnchorGenerator, cell_anchors, grid_anchors


def test_legacy_cell_anchors_are_py_faster_rcnn_s() -> None:
    # Base 16, centre 7.5. Ratio 0.5: w = round(sqrt(512)) = 23, h = round(11.5) = 12 (half to even);
    # ratio 2: w = round(sqrt(128)) = 11, h = 22. Scaled by 2 for size 32.
    anchors = cell_anchors([16, 32], [0.5, 1.0, 2.0], legacy=True)
    expected = [
        [-3.5, 2.0, 18.5, 13.0],
        [0.0, 0.0, 15.0, 15.0],
        [2.5, -3.0, 12.5, 18.0],
        [-15.0, -4.0, 30.0, 19.0],
        [-8.0, -8.0, 23.0, 23.0],
        [-3.0, -14.0, 18.0, 29.0],
    ]
    assert anchors.tolist() == expected
    widths = anchors[:, 2] - anchors[:, 0] + 1  # inclusive pixels
    assert widths.tolist() == [23.0, 16.0, 11.0, 46.0, 32.0, 22.0]
    centres = (anchors[:, 0] + anchors[:, 2]) / 2
    assert torch.all(centres == 7.5)


def test_default_cell_anchors_keep_area_and_ratio() -> None:
    anchors = cell_anchors([32], [0.5, 1.0, 2.0])
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    torch.testing.assert_close(widths * heights, torch.full((3,), 1024.0))
    torch.testing.assert_close(heights / widths, torch.tensor([0.5, 1.0, 2.0]))
    assert anchors[1].tolist() == [-16.0, -16.0, 16.0, 16.0]
    assert math.isclose(float(anchors[0, 2]), math.sqrt(2048) / 2, rel_tol=1e-6)


def test_grid_is_row_major_with_the_anchors_of_a_cell_consecutive() -> None:
    base = torch.tensor([[0.0, 0.0, 3.0, 3.0], [1.0, 1.0, 2.0, 2.0]])
    grid = grid_anchors(base, height=2, width=3, stride=4)
    assert grid.shape == (12, 4)
    # cell (row 0, col 1): shift x by 4; cell (row 1, col 0): shift y by 4.
    assert grid[2].tolist() == [4.0, 0.0, 7.0, 3.0] and grid[3].tolist() == [5.0, 1.0, 6.0, 2.0]
    assert grid[6].tolist() == [0.0, 4.0, 3.0, 7.0]
    centred = grid_anchors(base, 1, 1, 8, offset=0.5)
    assert centred[0].tolist() == [4.0, 4.0, 7.0, 7.0]


def test_s4net_anchors_are_centred_at_shift_plus_7_5_on_every_level_and_script() -> None:
    generator = AnchorGenerator([[16], [32], [64]], [0.5, 1.0, 2.0], [4, 8, 16], legacy=True)
    assert generator.num_anchors == 3
    features = [torch.zeros(1, 1, 4, 5), torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 1, 2)]
    levels = generator(features)
    assert [level.shape[0] for level in levels] == [60, 18, 6]
    for level, stride in zip(levels, [4, 8, 16]):
        centres_x = ((level[:, 0] + level[:, 2]) / 2).reshape(-1, 3)[:, 0]
        width = features[[4, 8, 16].index(stride)].shape[-1]
        expected = (torch.arange(width, dtype=torch.float32) * stride + 7.5).repeat(level.shape[0] // 3 // width)
        torch.testing.assert_close(centres_x, expected)
    scripted = torch.jit.script(generator)
    for eager, compiled in zip(levels, scripted(features)):
        assert torch.equal(eager, compiled)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sizes": [[16]], "aspect_ratios": [1.0], "strides": [4, 8]}, "one list of sizes per stride"),
        ({"sizes": [[16], [32, 64]], "aspect_ratios": [1.0], "strides": [4, 8]}, "same number of sizes"),
        ({"sizes": [[-16]], "aspect_ratios": [1.0], "strides": [4]}, "positive sizes"),
        ({"sizes": [[16]], "aspect_ratios": [0.0], "strides": [4]}, "positive sizes"),
        ({"sizes": [[16]], "aspect_ratios": [1.0], "strides": [4], "offset": 1.5}, "offset"),
    ],
)
def test_bad_anchor_settings_raise(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        AnchorGenerator(**kwargs)
