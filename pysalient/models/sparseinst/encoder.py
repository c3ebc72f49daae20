"""Instance context encoder of SparseInst (Cheng et al., CVPR'22).

A light FPN over C3-C5 whose top level is enlarged by a pyramid pooling module (PSPNet), with the three
output levels upsampled to stride 8 and fused by a 1x1 convolution. Module and parameter names follow the
official ``InstanceContextEncoder`` so official checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.layers.weight_init import c2_msra_fill, c2_xavier_fill


class PyramidPoolingModule(nn.Module):
    """Pools the input to ``sizes`` bins, projects, upsamples back and fuses with the input (PSPNet).

    Each stage is ``Sequential(AdaptiveAvgPool2d, Conv2d 1x1)`` (official key ``stages.{i}.1``); the
    official code keeps PyTorch's default initialisation for these convolutions, and so do we.

    Args:
        in_channels: C of the [B, C, H, W] input (and of the output).
        channels: width of every pooled branch.
        sizes: output bins of the adaptive pooling.
    """

    def __init__(self, in_channels: int, channels: int, sizes: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            [nn.Sequential(nn.AdaptiveAvgPool2d((size, size)), nn.Conv2d(in_channels, channels, 1)) for size in sizes]
        )
        self.bottleneck = nn.Conv2d(in_channels + len(sizes) * channels, in_channels, 1)

    def forward(self, features: Tensor) -> Tensor:
        """features: [B, C, H, W] -> [B, C, H, W]."""
        size = features.shape[-2:]
        priors: List[Tensor] = []
        for stage in self.stages:
            pooled = F.relu(stage(features))
            priors.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=False))
        priors.append(features)
        return F.relu(self.bottleneck(torch.cat(priors, dim=1)))


class InstanceContextEncoder(nn.Module):
    """FPN + PPM + multi-scale fusion producing the stride-8 feature map the decoder reads.

    ``fpn_laterals`` / ``fpn_outputs`` are ordered from the coarsest level (res5) to the finest (res3), as in
    the official code. The top-down pathway upsamples with nearest neighbour to the lateral's size (the
    official code uses ``scale_factor=2``, identical on inputs padded to 32, but it fails on other sizes).

    Args:
        in_channels: channels of ``res3``, ``res4``, ``res5``, in that order.
        channels: encoder width (256).
        ppm_channels: width of the pyramid pooling branches.
        ppm_sizes: pyramid pooling bins.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        *,
        channels: int = 256,
        ppm_channels: int = 64,
        ppm_sizes: Sequence[int] = (1, 2, 3, 6),
    ) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"InstanceContextEncoder takes res3, res4 and res5; got {len(in_channels)} channel counts")
        self.in_features = ["res5", "res4", "res3"]
        self.out_channels = channels
        self.fpn_laterals = nn.ModuleList([nn.Conv2d(c, channels, 1) for c in reversed(list(in_channels))])
        self.fpn_outputs = nn.ModuleList([nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels])
        self.ppm = PyramidPoolingModule(channels, ppm_channels, ppm_sizes)
        self.fusion = nn.Conv2d(channels * 3, channels, 1)
        for lateral, output in zip(self.fpn_laterals, self.fpn_outputs):
            c2_xavier_fill(lateral)
            c2_xavier_fill(output)
        c2_msra_fill(self.fusion)

    def forward(self, features: Dict[str, Tensor]) -> Tensor:
        """Builds the stride-8 instance context features.

        Args:
            features: backbone outputs ``res3`` [B, C3, H/8, W/8], ``res4`` [B, C4, H/16, W/16] and ``res5``
                [B, C5, H/32, W/32] (other keys are ignored).

        Returns:
            [B, channels, H/8, W/8].
        """
        inputs = [features[name] for name in self.in_features]
        merged: List[Tensor] = []
        for level, lateral in enumerate(self.fpn_laterals):
            projected = lateral(inputs[level])
            if level == 0:
                # The PPM enlarges the receptive field of the coarsest level only, as in the paper's encoder figure.
                merged.append(self.ppm(projected))
            else:
                top_down = F.interpolate(merged[level - 1], size=projected.shape[-2:], mode="nearest")
                merged.append(projected + top_down)
        outputs: List[Tensor] = []
        for level, output_conv in enumerate(self.fpn_outputs):
            outputs.append(output_conv(merged[level]))
        # Fusion order is finest first (res3, res4, res5): the order of the fusion weights' input channels.
        finest = outputs[2]
        size = finest.shape[-2:]
        fused = [
            finest,
            F.interpolate(outputs[1], size=size, mode="bilinear", align_corners=False),
            F.interpolate(outputs[0], size=size, mode="bilinear", align_corners=False),
        ]
        return self.fusion(torch.cat(fused, dim=1))
