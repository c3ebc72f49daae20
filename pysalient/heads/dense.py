"""Parts shared by dense prediction heads: the convolution tower."""

from __future__ import annotations

from typing import List

from torch import nn

from pysalient.layers.weight_init import c2_msra_fill

TOWER_INITS = ("c2_msra", "none")


def conv_tower(
    num_convs: int, in_channels: int, channels: int, norm_groups: int = 0, init: str = "c2_msra"
) -> nn.Sequential:
    """``num_convs`` x (3x3 convolution [+ GroupNorm] + ReLU).

    Module indices follow the layer order, so the official keys load unchanged: convolutions at ``0, 2, 4, ...``
    without a norm (SparseInst's instance and mask towers), at ``0, 3, 6, ...`` with GroupNorm at ``1, 4, 7, ...``
    (FCOS' ``cls_tower`` / ``bbox_tower``).

    Args:
        num_convs: convolutions (>= 1).
        in_channels: input width; every convolution outputs ``channels``.
        channels: tower width.
        norm_groups: GroupNorm groups after each convolution; 0 for none.
        init: ``"c2_msra"`` (Kaiming normal fan-out, zero bias, as each convolution is made) or ``"none"`` (PyTorch's
            default; the caller initialises).

    Returns:
        The tower as an ``nn.Sequential``.

    Raises:
        ValueError: ``num_convs`` < 1, ``channels`` not divisible by ``norm_groups``, or an unknown ``init``.
    """
    if num_convs < 1:
        raise ValueError(f"conv_tower needs num_convs >= 1, got {num_convs}")
    if norm_groups < 0 or (norm_groups and channels % norm_groups):
        raise ValueError(f"conv_tower: channels ({channels}) must be divisible by norm_groups ({norm_groups})")
    if init not in TOWER_INITS:
        raise ValueError(f"conv_tower: init must be one of {TOWER_INITS}, got {init!r}")
    layers: List[nn.Module] = []
    for index in range(num_convs):
        conv = nn.Conv2d(in_channels if index == 0 else channels, channels, 3, padding=1)
        if init == "c2_msra":
            c2_msra_fill(conv)
        layers.append(conv)
        if norm_groups:
            layers.append(nn.GroupNorm(norm_groups, channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
