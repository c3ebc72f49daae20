"""The regularized densely-connected pyramid (RDP) of RDPNet: a bottom-up pass after the FPN.

Exactly the official ``FPN.ATT_DENSE`` forward (yuhuan-wu/RDPNet ``fpn.py``), for levels P3..P7:

- N3 = refine_1(P3), a 3x3 convolution;
- for every coarser level Pk: A = sigmoid(att_k(Pk)) (a 3x3 convolution; a per-channel, per-pixel gate computed
  from the level's own FPN output and shared by all incoming features); every earlier output Nj is resized
  **directly** to Pk's size (bilinear, align_corners=False: sampling, no pooling, not cascaded); then
  Nk = refine_k(cat([A * Nj for j < k] + [Pk])) with the level's own Pk **last**, refine_k a 1x1 convolution
  (256 * (k + 1) -> 256) followed by a 3x3 one.

Every convolution has a bias and no normalisation or activation (the official ``make_conv3x3`` /
``make_conv1x1``, kaiming-normal fan-out init, zero bias).
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


class DenseLevel(nn.Module):
    """One coarser level of the RDP: attention gate, dense bottom-up inputs, 1x1 + 3x3 refinement.

    Args:
        channels: pyramid width.
        num_inputs: earlier outputs fed to this level (its index; P4 has 1).
    """

    def __init__(self, channels: int, num_inputs: int) -> None:
        super().__init__()
        self.attention = _conv(channels, channels, 3)
        self.refine = nn.Sequential(_conv(channels * (num_inputs + 1), channels, 1), _conv(channels, channels, 3))

    def forward(self, level: Tensor, previous: List[Tensor]) -> Tensor:
        """level [B, C, H, W] (the FPN output Pk), previous: the RDP outputs N3..N(k-1) -> Nk [B, C, H, W]."""
        gate = torch.sigmoid(self.attention(level))
        size = [level.shape[-2], level.shape[-1]]
        inputs: List[Tensor] = []
        for feature in previous:
            inputs.append(gate * F.interpolate(feature, size=size, mode="bilinear", align_corners=False))
        inputs.append(level)
        return self.refine(torch.cat(inputs, dim=1))


class DenselyConnectedPyramid(nn.Module):
    """RDP over ``num_levels`` FPN levels of width ``channels``, finest first.

    Args:
        channels: pyramid width (256 official).
        num_levels: number of levels (5: P3..P7).
    """

    def __init__(self, channels: int, num_levels: int = 5) -> None:
        super().__init__()
        self.first = _conv(channels, channels, 3)
        self.levels = nn.ModuleList(DenseLevel(channels, index + 1) for index in range(num_levels - 1))

    def forward(self, features: List[Tensor]) -> List[Tensor]:
        """FPN levels P3..P7 [B, C, H_l, W_l] -> RDP levels N3..N7, same shapes."""
        outputs: List[Tensor] = [self.first(features[0])]
        for index, level in enumerate(self.levels):
            outputs.append(level(features[index + 1], outputs))
        return outputs
