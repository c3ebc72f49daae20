"""VGG-16's 13 convolutions (Simonyan & Zisserman, ICLR'15) as a dilated stride-8 feature extractor.

The module layout and parameter names are torchvision's ``vgg16().features`` (``features.0.weight`` ...
``features.28.bias``), so an ImageNet VGG-16 state dict (its ``features.*`` keys) loads unchanged. Two changes make
the output stride 8, as DeepLab-v1 and InstanceFCN do with the "hole algorithm": ``pool4`` becomes a 3x3 stride-1
max-pool with padding 1 (the map keeps exactly H/8 x W/8) and conv5_1..conv5_3 use dilation 2 (padding 2).
``pool5`` and the fully-connected layers are left out. No normalisation layers; ReLU after every convolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from torch import Tensor, nn

# (output channels, convolutions) of the five blocks.
VGG16_BLOCKS: Tuple[Tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


@dataclass
class VGGConfig:
    """Hyper-parameters of :class:`VGG16`.

    Attributes:
        out_features: ``["res5"]``, the conv5_3 output (stride 8) under the name every other backbone's last stage
            has, so that heads accept any backbone.
        width_multiplier: scales every block's channels (1.0 is VGG-16; other values load no ImageNet weights).
        freeze_at: 0 trains everything; k >= 1 freezes blocks 1..k (the Caffe practice freezes conv1 and conv2).
    """

    out_features: List[str] = field(default_factory=lambda: ["res5"])
    width_multiplier: float = 1.0
    freeze_at: int = 0


class VGG16(nn.Module):
    """Dilated VGG-16 feature extractor: conv1_1 .. conv5_3 (with ReLU), output stride 8.

    Args:
        config: see :class:`VGGConfig`.

    Attributes:
        out_channels: ``{"res5": 512}`` (times the width multiplier).
        out_strides: ``{"res5": 8}``.
    """

    def __init__(self, config: VGGConfig) -> None:
        super().__init__()
        if list(config.out_features) != ["res5"]:
            raise ValueError(f"VGG16 returns only conv5_3 (out_features ['res5']), got {config.out_features}")
        if config.width_multiplier <= 0:
            raise ValueError(f"VGG16 width_multiplier must be positive, got {config.width_multiplier}")
        if not 0 <= config.freeze_at <= 5:
            raise ValueError(f"VGG16 freeze_at must lie in [0, 5], got {config.freeze_at}")
        self.out_features = ["res5"]
        layers: List[nn.Module] = []
        self.block_ends: List[int] = []
        in_channels = 3
        for block, (width, convs) in enumerate(VGG16_BLOCKS):
            channels = max(8, int(round(width * config.width_multiplier)))
            dilation = 2 if block == 4 else 1
            for _ in range(convs):
                layers.append(nn.Conv2d(in_channels, channels, 3, padding=dilation, dilation=dilation))
                layers.append(nn.ReLU(inplace=True))
                in_channels = channels
            self.block_ends.append(len(layers))
            if block < 3:
                layers.append(nn.MaxPool2d(2, 2))
            elif block == 3:
                layers.append(nn.MaxPool2d(3, 1, padding=1))  # pool4 at stride 1 (DeepLab-v1)
        self.features = nn.Sequential(*layers)
        self.out_channels: Dict[str, int] = {"res5": in_channels}
        self.out_strides: Dict[str, int] = {"res5": 8}
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        if config.freeze_at > 0:
            for parameter in self.features[: self.block_ends[config.freeze_at - 1]].parameters():
                parameter.requires_grad_(False)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """x: [B, 3, H, W] normalised image (H, W multiples of 8) -> {"res5": [B, 512, H/8, W/8]}."""
        return {"res5": self.features(x)}


def build_vgg16(**overrides: object) -> VGG16:
    """Dilated VGG-16; ``overrides`` set :class:`VGGConfig` fields."""
    return VGG16(VGGConfig(**overrides))  # type: ignore[arg-type]
