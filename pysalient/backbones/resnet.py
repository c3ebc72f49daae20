"""ResNet-18/34/50/101 with detectron2's module layout and parameter names.

``stem.conv1.weight``, ``stem.conv1.norm.{weight,bias,running_mean,running_var}``, ``res2.0.conv1.weight``,
``res2.0.shortcut.weight``, ... so official detectron2-format checkpoints (SparseInst, RDPNet, ...) load without
renaming (maskrcnn-benchmark checkpoints, e.g. RDPNet's, convert by a key table). Bottleneck blocks put the stride in
the 3x3 convolution by default (``STRIDE_IN_1X1=False``; ``stride_in_1x1=True`` is the MSRA layout of the Caffe2
weights that maskrcnn-benchmark and RDPNet use), convolutions have no bias, and the stem is a 7x7 stride-2
convolution followed by a 3x3 stride-2 max-pool (He et al., CVPR'16).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.layers import ConvNorm, FrozenBatchNorm2d

# depth -> (blocks per stage res2..res5, bottleneck?)
RESNET_SPECS: Dict[int, Tuple[Tuple[int, int, int, int], bool]] = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
}
STAGE_NAMES = ("res2", "res3", "res4", "res5")


@dataclass
class ResNetConfig:
    """Hyper-parameters of :class:`ResNet` (detectron2's ``MODEL.RESNETS`` subset).

    Attributes:
        depth: 18, 34, 50 or 101.
        norm: ``"FrozenBN"`` for pretrained weights, ``"BN"`` when training from scratch.
        freeze_at: 0 trains everything; 1 freezes the stem; k >= 2 also freezes res2..res{k}.
        out_features: which of ``res2``..``res5`` forward returns.
        stem_out_channels: width of the stem.
        width_per_group: bottleneck width of res2 (doubles every stage).
        stride_in_1x1: bottlenecks stride in their first 1x1 convolution (MSRA / maskrcnn-benchmark) instead of
            the 3x3 one (detectron2's default, torchvision's ResNet v1.5). Basic blocks ignore it.
        frozen_bn_eps: epsilon of every FrozenBN layer (detectron2 1e-5; maskrcnn-benchmark's FrozenBN has none:
            0.0).
        replace_stride_with_dilation: for res3, res4 and res5, whether the stage keeps the resolution and dilates
            its 3x3 convolutions instead of striding (torchvision's option of the same name: the first block of a
            dilated stage uses the previous dilation, the others the new one). ``(False, True, True)`` gives
            output stride 8 (DeepLab, InstanceFCN). Dilation adds no parameters: checkpoints load unchanged.
    """

    depth: int = 50
    norm: str = "FrozenBN"
    freeze_at: int = 0
    out_features: List[str] = field(default_factory=lambda: ["res3", "res4", "res5"])
    stem_out_channels: int = 64
    width_per_group: int = 64
    stride_in_1x1: bool = False
    frozen_bn_eps: float = 1e-5
    replace_stride_with_dilation: Tuple[bool, bool, bool] = (False, False, False)


class BasicStem(nn.Module):
    """7x7 stride-2 convolution + norm + ReLU, then 3x3 stride-2 max-pool: stride 4 overall."""

    def __init__(self, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, out_channels, 7, stride=2, padding=3, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, 3, H, W] -> [B, C, ceil(H/4), ceil(W/4)]."""
        return F.max_pool2d(F.relu(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity or 1x1-projection shortcut (ResNet-18/34)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, dilation: int = 1) -> None:
        super().__init__()
        self.shortcut = (
            ConvNorm(in_channels, out_channels, 1, stride=stride, norm=norm)
            if in_channels != out_channels or stride != 1
            else None
        )
        self.conv1 = ConvNorm(
            in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, norm=norm
        )
        self.conv2 = ConvNorm(out_channels, out_channels, 3, padding=dilation, dilation=dilation, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H/stride, W/stride]."""
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.conv2(F.relu(self.conv1(x))) + identity)


class BottleneckBlock(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand, with an identity or projection shortcut."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bottleneck_channels: int,
        stride: int,
        norm: str,
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.shortcut = (
            ConvNorm(in_channels, out_channels, 1, stride=stride, norm=norm)
            if in_channels != out_channels or stride != 1
            else None
        )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNorm(in_channels, bottleneck_channels, 1, stride=stride_1x1, norm=norm)
        self.conv2 = ConvNorm(
            bottleneck_channels,
            bottleneck_channels,
            3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            norm=norm,
        )
        self.conv3 = ConvNorm(bottleneck_channels, out_channels, 1, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H/stride, W/stride]."""
        identity = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        return F.relu(self.conv3(out) + identity)


class ResNet(nn.Module):
    """ResNet feature extractor returning a dict of stage outputs.

    Args:
        config: see :class:`ResNetConfig`.

    Attributes:
        out_channels: channels of every returned stage, e.g. ``{"res3": 512, "res4": 1024, "res5": 2048}``.
        out_strides: stride of every returned stage, ``{"res3": 8, "res4": 16, "res5": 32}``.
    """

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        if config.depth not in RESNET_SPECS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_SPECS)}, got {config.depth}")
        unknown = [name for name in config.out_features if name not in STAGE_NAMES]
        if unknown or not config.out_features:
            raise ValueError(f"out_features must be a non-empty subset of {STAGE_NAMES}, got {config.out_features}")
        self.config = config
        self.out_features = list(config.out_features)
        blocks_per_stage, bottleneck = RESNET_SPECS[config.depth]
        self.stem = BasicStem(config.stem_out_channels, config.norm)
        self.out_channels = {}
        self.out_strides = {}
        in_channels = config.stem_out_channels
        stage_width = config.width_per_group
        last_stage = max(STAGE_NAMES.index(name) for name in self.out_features)
        if len(config.replace_stride_with_dilation) != 3:
            flags = config.replace_stride_with_dilation
            raise ValueError(f"replace_stride_with_dilation needs 3 flags (res3, res4, res5), got {flags}")
        dilated = (False, *[bool(flag) for flag in config.replace_stride_with_dilation])
        stride_so_far = 4
        dilation = 1
        for index, (name, num_blocks) in enumerate(zip(STAGE_NAMES, blocks_per_stage)):
            if index > last_stage:
                # Stages after the last requested output hold no parameters (nothing dead to train or load).
                self.add_module(name, nn.Identity())
                continue
            out_channels = stage_width * 4 if bottleneck else stage_width
            first_stride = 1 if index == 0 else 2
            previous_dilation = dilation
            if dilated[index]:
                dilation *= first_stride
                first_stride = 1
            stride_so_far *= first_stride
            blocks = []
            for block_index in range(num_blocks):
                stride = first_stride if block_index == 0 else 1
                block_dilation = previous_dilation if block_index == 0 else dilation
                if bottleneck:
                    blocks.append(
                        BottleneckBlock(
                            in_channels,
                            out_channels,
                            stage_width,
                            stride,
                            config.norm,
                            config.stride_in_1x1,
                            block_dilation,
                        )
                    )
                else:
                    blocks.append(BasicBlock(in_channels, out_channels, stride, config.norm, block_dilation))
                in_channels = out_channels
            self.add_module(name, nn.Sequential(*blocks))
            self.out_channels[name] = out_channels
            self.out_strides[name] = stride_so_far
            stage_width *= 2
        self.out_channels = {name: self.out_channels[name] for name in self.out_features}
        self.out_strides = {name: self.out_strides[name] for name in self.out_features}
        self._initialize()
        self._set_frozen_bn_eps()
        self.freeze(config.freeze_at)

    def _initialize(self) -> None:
        # MSRA fill (fan_out, ReLU gain) as detectron2's c2_msra_fill; norms start as identity.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _set_frozen_bn_eps(self) -> None:
        for module in self.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.eps = float(self.config.frozen_bn_eps)

    def freeze(self, freeze_at: int) -> None:
        """Freezes the stem (``freeze_at >= 1``) and res2..res{freeze_at} (``freeze_at >= 2``).

        Frozen parts stop receiving gradients and their batch norms become :class:`FrozenBatchNorm2d`.
        """
        if freeze_at < 0 or freeze_at > 5:
            raise ValueError(f"freeze_at must be in [0, 5], got {freeze_at}")
        frozen = (["stem"] if freeze_at >= 1 else []) + list(STAGE_NAMES[: max(freeze_at - 1, 0)])
        for name in frozen:
            module = FrozenBatchNorm2d.convert_frozen_batchnorm(getattr(self, name))
            self.add_module(name, module)
            self._set_frozen_bn_eps()
            for parameter in module.parameters():
                parameter.requires_grad_(False)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """x: [B, 3, H, W] normalised image -> {name: [B, C_name, H/stride, W/stride]} for ``out_features``."""
        outputs: Dict[str, Tensor] = {}
        x = self.stem(x)
        # Written out stage by stage (not a loop over children) so the module stays scriptable.
        x = self.res2(x)
        if "res2" in self.out_features:
            outputs["res2"] = x
        x = self.res3(x)
        if "res3" in self.out_features:
            outputs["res3"] = x
        x = self.res4(x)
        if "res4" in self.out_features:
            outputs["res4"] = x
        x = self.res5(x)
        if "res5" in self.out_features:
            outputs["res5"] = x
        return outputs


def build_resnet(depth: int, **overrides: object) -> ResNet:
    """ResNet of the given depth; ``overrides`` set :class:`ResNetConfig` fields (norm, freeze_at, ...)."""
    return ResNet(ResNetConfig(depth=depth, **overrides))  # type: ignore[arg-type]
