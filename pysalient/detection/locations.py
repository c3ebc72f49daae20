"""Point locations of dense detectors (FCOS): the image position each feature-map cell stands for."""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor


def level_locations(height: int, width: int, stride: int, device: torch.device) -> Tensor:
    """(x, y) of every cell of an ``height`` x ``width`` map of the given stride, row-major.

    ``x = col * stride + stride // 2`` and ``y = row * stride + stride // 2``, float32, exactly as FCOS'
    ``compute_locations_per_level`` (the floor of half a stride, so stride 8 gives 4, 12, 20, ...).

    Returns:
        float32 [height * width, 2].
    """
    shifts_x = torch.arange(0, width, dtype=torch.float32, device=device) * stride
    shifts_y = torch.arange(0, height, dtype=torch.float32, device=device) * stride
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    return torch.stack([shift_x.reshape(-1), shift_y.reshape(-1)], dim=1) + float(stride // 2)


def locations(features: List[Tensor], strides: List[int]) -> List[Tensor]:
    """:func:`level_locations` of every level: ``features[l]`` [B, C, H_l, W_l] with stride ``strides[l]``."""
    out: List[Tensor] = []
    for level, feature in enumerate(features):
        out.append(level_locations(feature.shape[-2], feature.shape[-1], strides[level], feature.device))
    return out
