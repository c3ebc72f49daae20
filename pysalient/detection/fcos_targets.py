"""FCOS training targets (Tian et al., ICCV'19, Sec. 3.1-3.3): which ground truth each point regresses.

A point (x, y) of level l is a positive of ground-truth box g when it lies strictly inside g (every distance
l, t, r, b > 0; no centre sampling, the conference version) and ``max(l, t, r, b)`` falls in the level's size range
``[low, high]`` (both ends inclusive, as the official ``is_cared_in_the_level``). A point claimed by several boxes
regresses the one of smallest area (the first of them among equal areas). The regression target is
``(x - x1, y - y1, x2 - x, y2 - y)`` in input pixels, and the centerness target
``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from pysalient.detection.box_coder import encode_distances
from pysalient.detection.boxes import box_area

# maskrcnn-benchmark / FCOS defaults for P3..P7 (object sizes as the largest point-to-side distance).
FCOS_SIZE_RANGES: Tuple[Tuple[float, float], ...] = (
    (-1.0, 64.0),
    (64.0, 128.0),
    (128.0, 256.0),
    (256.0, 512.0),
    (512.0, float("inf")),
)


def fcos_targets(
    points: List[Tensor],
    boxes: Tensor,
    labels: Tensor,
    size_ranges: Sequence[Tuple[float, float]] = FCOS_SIZE_RANGES,
    legacy: bool = True,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Assigns every point of every level of one image.

    Args:
        points: per level, (x, y) of the points [N_l, 2] (:func:`pysalient.detection.locations.locations`).
        boxes: [K, 4] ground-truth boxes (x1, y1, x2, y2) in input pixels.
        labels: [K] int64 0-based classes.
        size_ranges: per level, the ``(low, high)`` range of ``max(l, t, r, b)``; at least ``len(points)`` of them.
        legacy: compare areas with maskrcnn-benchmark's ``+1`` convention (only the choice among overlapping boxes
            depends on it).

    Returns:
        ``labels`` int64 [N] (the class of the matched box, -1 for background), ``distances`` float32 [N, 4]
        (l, t, r, b of the matched box; 0 for background) and ``matches`` int64 [N] (index of the matched box,
        -1 for background), with N = sum of N_l in level order.

    Raises:
        ValueError: fewer size ranges than levels, or boxes / labels of mismatched shapes.
    """
    if len(size_ranges) < len(points):
        raise ValueError(f"fcos_targets: {len(points)} levels but only {len(size_ranges)} size ranges")
    if boxes.dim() != 2 or boxes.shape[1] != 4 or labels.shape != boxes.shape[:1]:
        raise ValueError(
            f"fcos_targets: boxes must be [K, 4] with labels [K], got {tuple(boxes.shape)} and {tuple(labels.shape)}"
        )
    all_points = torch.cat(points).to(torch.float32)
    device = all_points.device
    ranges = torch.cat(
        [
            torch.tensor([size_ranges[level]], dtype=torch.float32, device=device).expand(len(level_points), 2)
            for level, level_points in enumerate(points)
        ]
    )
    count = all_points.shape[0]
    if boxes.shape[0] == 0:
        background = torch.full((count,), -1, dtype=torch.int64, device=device)
        return background, all_points.new_zeros((count, 4)), background.clone()
    boxes = boxes.to(device=device, dtype=torch.float32)
    distances = encode_distances(all_points[:, None], boxes[None])  # [N, K, 4]
    inside = distances.min(dim=2).values > 0
    largest = distances.max(dim=2).values
    in_range = (largest >= ranges[:, :1]) & (largest <= ranges[:, 1:])
    areas = box_area(boxes, legacy)[None, :].expand(count, -1)
    areas = torch.where(inside & in_range, areas, torch.full_like(areas, float("inf")))
    smallest, matches = areas.min(dim=1)
    positive = torch.isfinite(smallest)
    matches = torch.where(positive, matches, torch.full_like(matches, -1))
    point_labels = torch.where(positive, labels.to(device)[matches.clamp(min=0)], torch.full_like(matches, -1))
    regression = distances[torch.arange(count, device=device), matches.clamp(min=0)]
    regression = torch.where(positive[:, None], regression, torch.zeros_like(regression))
    return point_labels, regression, matches


def centerness_targets(distances: Tensor) -> Tensor:
    """``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of positive distances [P, 4] -> [P] in (0, 1]."""
    left_right = distances[:, [0, 2]]
    top_bottom = distances[:, [1, 3]]
    ratio = (left_right.min(dim=1).values / left_right.max(dim=1).values) * (
        top_bottom.min(dim=1).values / top_bottom.max(dim=1).values
    )
    return torch.sqrt(ratio)
