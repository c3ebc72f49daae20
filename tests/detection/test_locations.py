"""FCOS point locations: ``x = col * stride + stride // 2``, row-major."""

from __future__ import annotations

import torch

from pysalient.detection.locations import level_locations, locations


def test_locations_by_hand() -> None:
    points = level_locations(2, 3, 8, torch.device("cpu"))
    assert points.dtype == torch.float32
    assert points.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert level_locations(1, 2, 3, torch.device("cpu")).tolist() == [[1, 1], [4, 1]]  # floor of half an odd stride


def test_locations_of_every_level() -> None:
    features = [torch.zeros(1, 1, 4, 6), torch.zeros(1, 1, 2, 3)]
    first, second = locations(features, [8, 16])
    assert first.shape == (24, 2) and second.tolist()[-1] == [40.0, 24.0]
