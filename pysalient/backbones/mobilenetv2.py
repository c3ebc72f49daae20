"""MobileNetV2 feature extractor (Sandler et al., CVPR'18) for light and embedded models.

Returns the stride-8, 16 and 32 features under the same names as the ResNet stages (``res3``, ``res4``,
``res5``) so every neck and head accepts either backbone. The final 1x1 convolution to 1280 channels of the
classification network is left out: detection heads read the 320-channel (x width) stride-32 features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from torch import Tensor, nn

from pysalient.layers import ConvNorm

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper.
INVERTED_RESIDUAL_SETTING: Tuple[Tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),  # ends at stride 8  -> res3
    (6, 64, 4, 2),
    (6, 96, 3, 1),  # ends at stride 16 -> res4
    (6, 160, 3, 2),
    (6, 320, 1, 1),  # ends at stride 32 -> res5
)
OUTPUT_AFTER_SETTING = {2: "res3", 4: "res4", 6: "res5"}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds a channel count to the nearest multiple of ``divisor`` without going 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass
class MobileNetV2Config:
    """Hyper-parameters of :class:`MobileNetV2`.

    Attributes:
        width_multiplier: scales every layer's channels (0.35 .. 1.4 in the paper).
        norm: ``"BN"`` (training from scratch) or ``"FrozenBN"`` (pretrained weights).
        out_features: subset of ``res3``, ``res4``, ``res5``.
    """

    width_multiplier: float = 1.0
    norm: str = "BN"
    out_features: List[str] = field(default_factory=lambda: ["res3", "res4", "res5"])


class InvertedResidual(nn.Module):
    """1x1 expansion (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 projection; residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int, norm: str) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: List[nn.Module] = []
        if expansion != 1:
            layers.append(ConvNorm(in_channels, hidden, 1, norm=norm, activation=nn.ReLU6(inplace=True)))
        layers.append(
            ConvNorm(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, norm=norm, activation=nn.ReLU6(True))
        )
        layers.append(ConvNorm(hidden, out_channels, 1, norm=norm))
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H/stride, W/stride]."""
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 returning ``{"res3": stride 8, "res4": stride 16, "res5": stride 32}`` features.

    Args:
        config: see :class:`MobileNetV2Config`.
    """

    def __init__(self, config: MobileNetV2Config) -> None:
        super().__init__()
        unknown = [name for name in config.out_features if name not in OUTPUT_AFTER_SETTING.values()]
        if unknown or not config.out_features:
            raise ValueError(f"out_features must be a non-empty subset of res3/res4/res5, got {config.out_features}")
        if config.width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be positive, got {config.width_multiplier}")
        self.config = config
        self.out_features = list(config.out_features)
        width = config.width_multiplier
        in_channels = make_divisible(32 * width)
        self.stem = ConvNorm(3, in_channels, 3, stride=2, padding=1, norm=config.norm, activation=nn.ReLU6(True))
        stages: List[nn.Module] = []
        self.out_channels = {}
        self.out_strides = {}
        stride = 2
        current: List[nn.Module] = []
        for index, (expansion, channels, repeats, first_stride) in enumerate(INVERTED_RESIDUAL_SETTING):
            out_channels = make_divisible(channels * width)
            for repeat in range(repeats):
                block_stride = first_stride if repeat == 0 else 1
                current.append(InvertedResidual(in_channels, out_channels, block_stride, expansion, config.norm))
                in_channels = out_channels
            stride *= first_stride
            if index in OUTPUT_AFTER_SETTING:
                name = OUTPUT_AFTER_SETTING[index]
                stages.append(nn.Sequential(*current))
                current = []
                self.out_channels[name] = out_channels
                self.out_strides[name] = stride
        # stages[0] runs to stride 8, stages[1] to 16, stages[2] to 32.
        self.stages = nn.ModuleList(stages)
        self.out_channels = {name: self.out_channels[name] for name in self.out_features}
        self.out_strides = {name: self.out_strides[name] for name in self.out_features}
        self._initialize()

    def _initialize(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """x: [B, 3, H, W] normalised image -> {name: [B, C_name, H/stride, W/stride]} for ``out_features``."""
        outputs: Dict[str, Tensor] = {}
        x = self.stem(x)
        for index, stage in enumerate(self.stages):
            x = stage(x)
            name = "res" + str(index + 3)
            if name in self.out_features:
                outputs[name] = x
        return outputs


def build_mobilenetv2(width_multiplier: float = 1.0, **overrides: object) -> MobileNetV2:
    """MobileNetV2 with the given width; ``overrides`` set :class:`MobileNetV2Config` fields."""
    return MobileNetV2(MobileNetV2Config(width_multiplier=width_multiplier, **overrides))  # type: ignore[arg-type]
