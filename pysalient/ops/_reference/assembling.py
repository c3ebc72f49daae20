"""Reference of ``assemble_instances`` (InstanceFCN instance assembling)."""

from __future__ import annotations

import torch
from torch import Tensor


def assemble_instances(score_maps: Tensor, windows: Tensor, m: int, k: int) -> Tensor:
    """InstanceFCN assembling from its definition (see ``pysalient.ops.assemble_instances``).

    Args:
        score_maps: [B, k*k, H, W] instance-sensitive score maps.
        windows: int64 [R, 3] (batch_idx, y0, x0), top-left cell of each m x m window.
        m: window size in cells.
        k: sub-windows per side.

    Returns:
        [R, m, m] assembled windows (0 off the map), differentiable with respect to ``score_maps``.
    """
    num_windows = windows.shape[0]
    height, width = score_maps.shape[2], score_maps.shape[3]
    if height == 0 or width == 0:
        # Nothing to index; adding the (zero) sum of the empty maps keeps the result in the autograd graph.
        return score_maps.new_zeros((num_windows, m, m)) + score_maps.sum()
    cells = torch.arange(m, device=windows.device)
    sub_window = cells * k // m
    channel = sub_window[:, None] * k + sub_window[None, :]
    # Offsets clamped to [-m, size] (still fully off the map beyond) so the sums below cannot overflow.
    ys = windows[:, 1:2].clamp(-m, height) + cells
    xs = windows[:, 2:3].clamp(-m, width) + cells
    on_map = ((ys >= 0) & (ys < height))[:, :, None] & ((xs >= 0) & (xs < width))[:, None, :]
    rows = ys.clamp(0, height - 1)[:, :, None]
    cols = xs.clamp(0, width - 1)[:, None, :]
    values = score_maps[windows[:, 0, None, None], channel[None], rows, cols]
    return torch.where(on_map, values, torch.zeros_like(values))
