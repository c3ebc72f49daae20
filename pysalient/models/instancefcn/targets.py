"""InstanceFCN's training windows: DeepMask's positive / negative rule on 21 x 21-cell windows, 1:1 sampling and
the windows' mask targets.

A window is centred on score-map cell (y, x): its centre is the input pixel (8x + 4, 8y + 4) and its box
``(8 (x - m//2), 8 (y - m//2), 8 (x - m//2 + m), 8 (y - m//2 + m))``. For a ground truth with box centre ``c`` and
maximal side ``d`` (input pixels), the window is *positive* for it when ``||c - centre||_inf <= positive_center``
and ``|log2(d / canonical_size)| <= positive_scale``; *negative* when for every ground truth
``||c - centre||_inf >= negative_center`` or ``|log2(d / canonical_size)| >= negative_scale``; ignored (never
sampled) otherwise. A window positive for several ground truths takes the one with the nearest centre.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from pysalient.detection.mask_targets import crop_and_resize_masks
from pysalient.models.instancefcn.config import STRIDE


def window_centres(height: int, width: int, device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """Cells and centre pixels of every window of a ``height`` x ``width`` map.

    Returns:
        ys, xs: int64 [height * width], the row-major cells; centres: float32 [height * width, 2] (x, y) pixels.
    """
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    centres = torch.stack([xs, ys], dim=1).to(torch.float32) * STRIDE + STRIDE / 2
    return ys, xs, centres


def label_windows(
    centres: Tensor,
    gt_boxes: Tensor,
    canonical_size: float,
    positive_center: float,
    positive_scale: float,
    negative_center: float,
    negative_scale: float,
) -> Tuple[Tensor, Tensor]:
    """Positive / negative / ignored label of every window.

    Args:
        centres: [N, 2] window centres (x, y) in input pixels.
        gt_boxes: [G, 4] ground-truth boxes (x1, y1, x2, y2), exclusive right / bottom edges.
        canonical_size, positive_center, positive_scale, negative_center, negative_scale: the rule's tolerances
            (pixels and octaves; see the module docstring).

    Returns:
        labels: int64 [N], 1 positive, 0 negative, -1 ignored; matched: int64 [N], the ground truth of each positive
        (0 elsewhere).
    """
    count = centres.shape[0]
    if gt_boxes.shape[0] == 0:
        return torch.zeros(count, dtype=torch.int64, device=centres.device), torch.zeros(
            count, dtype=torch.int64, device=centres.device
        )
    gt_centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # [G, 2]
    sides = (gt_boxes[:, 2:] - gt_boxes[:, :2]).amax(dim=1).clamp(min=1e-6)
    octaves = torch.log2(sides / canonical_size).abs()  # [G]
    offsets = (centres[:, None, :] - gt_centres[None]).abs().amax(dim=2)  # [N, G] L-infinity
    positive_pairs = (offsets <= positive_center) & (octaves <= positive_scale)[None]
    far_pairs = (offsets >= negative_center) | (octaves >= negative_scale)[None]
    nearest = torch.where(positive_pairs, offsets, torch.full_like(offsets, float("inf"))).argmin(dim=1)
    labels = torch.full((count,), -1, dtype=torch.int64, device=centres.device)
    labels[far_pairs.all(dim=1)] = 0
    labels[positive_pairs.any(dim=1)] = 1
    return labels, nearest


def sample_windows(labels: Tensor, total: int, positive_fraction: float) -> Tuple[Tensor, Tensor]:
    """Random indices of at most ``total * positive_fraction`` positives and negatives filling up to ``total``.

    Args:
        labels: int64 [N] from :func:`label_windows`.
        total: windows per image (256).
        positive_fraction: most positives as a fraction of ``total`` (0.5).

    Returns:
        positive, negative: int64 indices into ``labels`` (never an ignored window).
    """
    positive = torch.nonzero(labels == 1).flatten()
    negative = torch.nonzero(labels == 0).flatten()
    num_positive = min(positive.numel(), int(total * positive_fraction))
    num_negative = min(negative.numel(), total - num_positive)
    positive = positive[torch.randperm(positive.numel(), device=labels.device)[:num_positive]]
    negative = negative[torch.randperm(negative.numel(), device=labels.device)[:num_negative]]
    return positive, negative


def window_boxes(ys: Tensor, xs: Tensor, m: int) -> Tensor:
    """Boxes [R, 4] (x1, y1, x2, y2) in input pixels of the windows centred on cells ``ys``, ``xs`` [R]."""
    x0 = (xs - m // 2).to(torch.float32) * STRIDE
    y0 = (ys - m // 2).to(torch.float32) * STRIDE
    return torch.stack([x0, y0, x0 + m * STRIDE, y0 + m * STRIDE], dim=1)


def window_mask_targets(masks: Tensor, boxes: Tensor, matched: Tensor, m: int, threshold: float) -> Tensor:
    """Binary m x m targets [R, m, m]: the matched instance's mask (every other instance is background)
    RoIAligned over each window box (aligned, adaptive sampling), ``>= threshold``."""
    return crop_and_resize_masks(masks, boxes, matched, m, threshold)


def on_map_weights(ys: Tensor, xs: Tensor, m: int, height: int, width: int) -> Tensor:
    """float32 [R, m, m]: 1 where a window's cell lies on the ``height`` x ``width`` map, 0 where it hangs off."""
    offsets = torch.arange(m, device=ys.device)
    rows = ys[:, None] - m // 2 + offsets[None]  # [R, m]
    cols = xs[:, None] - m // 2 + offsets[None]
    row_ok = (rows >= 0) & (rows < height)
    col_ok = (cols >= 0) & (cols < width)
    return (row_ok[:, :, None] & col_ok[:, None, :]).to(torch.float32)
