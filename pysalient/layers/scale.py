"""A learnable scalar multiplier (FCOS' per-level ``Scale`` of the box branch)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Scale(nn.Module):
    """``x * scale`` with ``scale`` a learnable parameter of shape [1] (FCOS, Tian et al., ICCV'19).

    The parameter is called ``scale`` as in FCOS and maskrcnn-benchmark, so official checkpoints load unchanged.

    Args:
        init_value: initial value of the multiplier.
    """

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(init_value)], dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        """x: any shape -> ``x * scale`` (same shape)."""
        return x * self.scale

    def extra_repr(self) -> str:
        return f"init_value={float(self.scale.detach()[0]):g}"
