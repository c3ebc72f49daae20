"""InstanceFCN's assembling module: ``assemble_instances`` and ``InstanceAssembler``.

InstanceFCN predicts k*k instance-sensitive score maps, each scoring one relative position (top-left, ...,
bottom-right) inside an object. An instance candidate of an m x m sliding window is assembled by copying each
of its k x k sub-windows from the score map of that relative position (Dai et al., "Instance-sensitive Fully
Convolutional Networks", ECCV 2016, §3.1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def assemble_instances(score_maps: Tensor, windows: Tensor, m: int, k: int) -> Tensor:
    """Assembles one m x m instance window per row of ``windows`` from k*k score maps.

    ``out[r, i, j] = score_maps[b, floor(i*k/m) * k + floor(j*k/m), y0 + i, x0 + j]`` and 0 where
    ``(y0 + i, x0 + j)`` lies outside the map; windows may hang off the map (negative offsets allowed). When
    m is not divisible by k the sub-windows differ in size by one cell; when m < k some score maps are unused.

    Differentiable with respect to ``score_maps`` (a deterministic scatter-add; overlapping windows sum);
    ``windows`` are integers and get no gradient.

    Args:
        score_maps: [B, k*k, H, W] instance-sensitive score maps (fp32, fp64, fp16 or bf16); channel
            ``a * k + b`` holds relative position (row a, column b).
        windows: int64 [R, 3] (batch_idx, y0, x0): top-left cell of each window on the score-map grid, batch
            indices in [0, B).
        m: window size in cells (InstanceFCN: 21); >= 1.
        k: sub-windows per side (InstanceFCN: 5); >= 1.

    Returns:
        [R, m, m] assembled windows, dtype of ``score_maps``.
    """
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.assemble_instances(score_maps, windows, m, k)
    return torch.ops.pysalient.assemble_instances(score_maps, windows, m, k)


class InstanceAssembler(nn.Module):
    """Module form of :func:`assemble_instances` (the paper's "instance assembling module").

    Args:
        m: window size in cells (InstanceFCN: 21).
        k: sub-windows per side (InstanceFCN: 5); the score maps must have k*k channels.
    """

    def __init__(self, m: int = 21, k: int = 5) -> None:
        super().__init__()
        if m < 1 or k < 1:
            raise ValueError(f"InstanceAssembler: m and k must be >= 1, got m={m}, k={k}")
        self.m = int(m)
        self.k = int(k)

    def forward(self, score_maps: Tensor, windows: Tensor) -> Tensor:
        """Returns [R, m, m] windows for ``score_maps`` [B, k*k, H, W] and int64 ``windows`` [R, 3]."""
        return assemble_instances(score_maps, windows, self.m, self.k)

    def extra_repr(self) -> str:
        return f"m={self.m}, k={self.k}"
