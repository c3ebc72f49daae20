"""A convolution followed by an optional normalisation and activation (detectron2's ``Conv2d`` layout)."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from pysalient.layers.frozen_batch_norm import FrozenBatchNorm2d

NORMS = ("BN", "FrozenBN", "GN", "")


def get_norm(norm: str, channels: int) -> Optional[nn.Module]:
    """Builds a normalisation layer by name.

    Args:
        norm: ``"BN"`` (trainable batch norm), ``"FrozenBN"``, ``"GN"`` (32 groups) or ``""`` for none.
        channels: number of channels normalised.

    Returns:
        The layer, or None for ``""``.
    """
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    if norm == "GN":
        return nn.GroupNorm(32, channels)
    if norm == "":
        return None
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


class ConvNorm(nn.Conv2d):
    """``nn.Conv2d`` whose normalisation lives in ``.norm`` so parameter names match detectron2
    (``conv1.weight``, ``conv1.norm.running_mean``, ...).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as ``nn.Conv2d``.
        norm: normalisation name for :func:`get_norm` (``""`` for none).
        activation: module applied last, or None.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm: str = "",
        activation: Optional[nn.Module] = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.norm = get_norm(norm, out_channels)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H', W']."""
        x = self._conv_forward(x, self.weight, self.bias)  # super().forward is not scriptable
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x
