"""One deterministic call of every public op, shared by the native run and the reference-fallback run.

``python -m tests.ops.fallback_cases OUT.pt`` runs every case in the current process (with
``PYSALIENT_DISABLE_NATIVE=1`` that is the pure-PyTorch fallback) and saves the outputs.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict

import torch

from pysalient import ops


def _rois(count: int, batch: int, size: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, generator=generator) * size * 0.7
    extents = torch.rand(count, 2, generator=generator) * size * 0.5 + 1
    index = torch.randint(0, batch, (count, 1), generator=generator).float()
    return torch.cat([index, corners, corners + extents], dim=1)


def _cases() -> Dict[str, Callable[[], Any]]:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 12, 16, generator=generator)
    rois = _rois(5, 2, 64, 1)
    score_maps = torch.randn(2, 9, 10, 10, generator=generator)
    windows = torch.tensor([[0, -2, 3], [1, 4, 4], [0, 8, -1]])
    pyramid = [torch.randn(2, 4, 16, 16, generator=generator), torch.randn(2, 4, 8, 8, generator=generator)]
    boxes = _rois(30, 1, 50, 2)[:, 1:]
    scores = torch.rand(30, generator=generator)
    image = torch.randint(0, 256, (23, 37, 3), dtype=torch.uint8, generator=generator)
    logits = torch.randn(4, 10, 14, generator=generator) * 3
    targets = (torch.rand(3, 64, generator=generator) > 0.5).float()
    cost = torch.rand(6, 4, generator=generator, dtype=torch.float64)
    return {
        "resize_image": lambda: ops.resize_image(image, 31, 19),
        "roi_masking": lambda: ops.roi_masking(features, rois, 0.25, 1 / 3, "ternary"),
        "assemble_instances": lambda: ops.assemble_instances(score_maps, windows, 6, 3),
        "multilevel_roi_align": lambda: ops.multilevel_roi_align(pyramid, rois, [0.25, 0.125], [4, 2], 2, True),
        "roi_align": lambda: ops.roi_align(pyramid[0], rois, (3, 5), 0.25, -1, False),
        "nms": lambda: ops.nms(boxes, scores, 0.3),
        "batched_nms": lambda: ops.batched_nms(boxes, scores, torch.arange(30) % 3, 0.3),
        "paste_masks": lambda: ops.paste_masks(torch.rand(3, 7, 7, generator=generator), boxes[:3], 40, 50, 0.5),
        "upsample_masks": lambda: ops.upsample_masks(logits, [40, 56], [37, 50], [25, 33], 0.45),
        "resize_masks_in_boxes": lambda: ops.resize_masks_in_boxes(
            logits.sigmoid(), boxes[:4] * 0.6, [40, 56], [37, 50], [25, 33], 0.5
        ),
        "dice_cost": lambda: ops.dice_cost(torch.randn(5, 64, generator=generator), targets),
        "linear_sum_assignment": lambda: ops.linear_sum_assignment(cost, maximize=True),
    }


def run_all() -> Dict[str, Any]:
    """Runs every case once, in a fixed order (the inputs come from one seeded generator)."""
    return {name: case() for name, case in _cases().items()}


if __name__ == "__main__":
    torch.save(run_all(), sys.argv[1])
