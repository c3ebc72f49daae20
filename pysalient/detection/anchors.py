"""Anchor boxes of anchor-based dense detectors (RPN, RetinaNet, S4Net, SPRNet).

Every cell ``(row, col)`` of a level of stride ``s`` carries ``A = len(sizes) * len(aspect_ratios)`` anchors, the
same cell anchors shifted by ``(col * s, row * s)``. Anchors are listed cell by cell in row-major order, the
``A`` anchors of a cell consecutively (size-major, then ratio), which is the order of a head's ``[B, A * K, H, W]``
outputs permuted to ``[B, H, W, A, K]`` (:func:`pysalient.heads.anchor_head.flatten_anchor_outputs`).

Two conventions of the cell anchors (``aspect_ratio`` is height / width in both):

- default (detectron2's ``DefaultAnchorGenerator``, torchvision's ``AnchorGenerator`` with ``offset``): an anchor of
  size ``s`` and ratio ``r`` has ``w = sqrt(s^2 / r)``, ``h = w r`` and is centred at ``offset * stride`` inside its
  cell (detectron2: offset 0 at the cell corner; 0.5 at the cell centre);
- ``legacy=True`` (py-faster-rcnn's ``generate_anchors``, the convention of S4Net's released code): boxes cover
  pixels ``x1..x2`` inclusive; the base box ``(0, 0, base_size - 1, base_size - 1)`` is reshaped to each ratio with
  rounded sides (``w = round(sqrt(base_size^2 / r))``, ``h = round(w r)``, half-way cases to even as NumPy rounds)
  around its centre ``(base_size - 1) / 2``, then scaled by ``size / base_size``. The centre stays at
  ``shift + (base_size - 1) / 2`` whatever the stride (S4Net: ``shift + 7.5`` on every level).
"""

from __future__ import annotations

import math
from typing import List, Sequence

import torch
from torch import Tensor, nn


def _round_half_even(value: float) -> float:
    return float(round(value))  # Python's round is half to even, as numpy.round


def cell_anchors(
    sizes: Sequence[float], aspect_ratios: Sequence[float], legacy: bool = False, base_size: int = 16
) -> Tensor:
    """The anchors of one cell whose corner is at the origin, ``len(sizes) * len(aspect_ratios)`` of them.

    Args:
        sizes: anchor sizes (square root of the area) in input pixels.
        aspect_ratios: height / width ratios.
        legacy: py-faster-rcnn's rounded, inclusive-pixel anchors around ``(base_size - 1) / 2`` (see the module
            docstring); otherwise detectron2's exact anchors centred at the origin.
        base_size: the base box side of the legacy convention (16 in py-faster-rcnn and S4Net).

    Returns:
        float32 [A, 4] (x1, y1, x2, y2), size-major then ratio.

    Raises:
        ValueError: a non-positive size, ratio or base size.
    """
    if not sizes or not aspect_ratios or min(sizes) <= 0 or min(aspect_ratios) <= 0 or base_size <= 0:
        raise ValueError(
            f"cell_anchors needs positive sizes, aspect ratios and base size, got {list(sizes)}, "
            f"{list(aspect_ratios)} and {base_size}"
        )
    anchors: List[List[float]] = []
    for size in sizes:
        for ratio in aspect_ratios:
            if legacy:
                centre = (base_size - 1) / 2.0
                base_w = _round_half_even(math.sqrt(base_size * base_size / ratio))
                base_h = _round_half_even(base_w * ratio)
                w, h = base_w * size / base_size, base_h * size / base_size
                anchors.append(
                    [centre - 0.5 * (w - 1), centre - 0.5 * (h - 1), centre + 0.5 * (w - 1), centre + 0.5 * (h - 1)]
                )
            else:
                w = math.sqrt(size * size / ratio)
                h = w * ratio
                anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors, dtype=torch.float32)


def grid_anchors(base: Tensor, height: int, width: int, stride: int, offset: float = 0.0) -> Tensor:
    """``base`` [A, 4] shifted to every cell of a ``height`` x ``width`` map -> float32 [height * width * A, 4]
    (row-major cells, the A anchors of a cell consecutive), shifts ``(col * stride + offset * stride, row * stride
    + offset * stride)``."""
    shifts_x = (torch.arange(0, width, dtype=torch.float32, device=base.device) + offset) * stride
    shifts_y = (torch.arange(0, height, dtype=torch.float32, device=base.device) + offset) * stride
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=1)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)


class AnchorGenerator(nn.Module):
    """Anchors of every pyramid level (scriptable, exportable: map sizes may be symbolic).

    Args:
        sizes: per level, the anchor sizes in input pixels (S4Net: ``[[16], [32], [64], [128], [256]]``).
        aspect_ratios: height / width ratios, the same on every level (S4Net: ``[0.5, 1, 2]``).
        strides: per level, the stride in input pixels.
        offset: anchor centre inside its cell as a fraction of the stride (default convention only).
        legacy: py-faster-rcnn's anchors (module docstring), ``offset`` is then ignored.
        base_size: base box side of the legacy convention.

    Attributes:
        num_anchors: anchors per cell (the same on every level).
    """

    def __init__(
        self,
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[float],
        strides: Sequence[int],
        offset: float = 0.0,
        legacy: bool = False,
        base_size: int = 16,
    ) -> None:
        super().__init__()
        if len(sizes) != len(strides) or not strides:
            raise ValueError(
                f"AnchorGenerator needs one list of sizes per stride, got {list(sizes)} for {list(strides)}"
            )
        counts = {len(level) for level in sizes}
        if len(counts) != 1:
            raise ValueError(f"AnchorGenerator: every level needs the same number of sizes, got {list(sizes)}")
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"AnchorGenerator: offset must lie in [0, 1), got {offset}")
        self.strides: List[int] = [int(stride) for stride in strides]
        self.offset = 0.0 if legacy else float(offset)
        self.legacy = bool(legacy)
        self.num_anchors = len(sizes[0]) * len(aspect_ratios)
        bases = [cell_anchors(list(level_sizes), list(aspect_ratios), legacy, base_size) for level_sizes in sizes]
        self.register_buffer("cell_anchors", torch.stack(bases), persistent=False)  # [L, A, 4]

    def forward(self, features: List[Tensor]) -> List[Tensor]:
        """Anchors of the levels ``features[l]`` [B, C, H_l, W_l] -> per level float32 [H_l * W_l * A, 4]."""
        anchors: List[Tensor] = []
        for level, feature in enumerate(features):
            base = self.cell_anchors[level].to(feature.device)
            anchors.append(grid_anchors(base, feature.shape[-2], feature.shape[-1], self.strides[level], self.offset))
        return anchors
