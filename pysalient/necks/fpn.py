"""Feature Pyramid Network (Lin et al., CVPR'17) with the top blocks of detectron2 and maskrcnn-benchmark.

The FPN maps backbone stages (e.g. ``res3``..``res5``, strides 8..32) to pyramid levels of one width: a 1x1
lateral convolution per stage, a top-down pass (coarser level upsampled to the finer one and added), then a 3x3
output convolution per level. ``gated=True`` is SPRNet's gated FPN: each merge is ``sigmoid(S(U)) * U + sigmoid(S(L))
* L`` (:class:`SeparableGate`, one ``S`` per merge shared by the upsampled coarser level ``U`` and the lateral ``L``)
instead of ``U + L``. A top block appends coarser levels:

- :class:`LastLevelMaxPool`: P6 = max-pool(P5, kernel 1, stride 2) (detectron2's Mask R-CNN FPN);
- :class:`LastLevelAvgPool`: P6 = avg-pool(P5, kernel 2, stride 2, ceil mode);
- :class:`LastLevelP6P7`: P6 = conv3x3/2(P5 or C5), P7 = conv3x3/2(ReLU(P6)) (RetinaNet reads C5, FCOS and RDPNet
  read P5).

Parameter names (``lateral_convs.i``, ``output_convs.i``, ``top_block.p6``...) are fixed; official checkpoints
(detectron2 ``fpn_lateral3``, maskrcnn-benchmark ``fpn_inner2``) convert with a key table in the family's
``convert.py``.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UPSAMPLE_MODES = ("nearest", "bilinear")


def kaiming_uniform_a1_(conv: nn.Conv2d) -> None:
    """``kaiming_uniform_(a=1)`` weights and zero bias: the FPN fill of detectron2 (``c2_xavier_fill``) and
    maskrcnn-benchmark."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class LastLevelMaxPool(nn.Module):
    """P6 = ``max_pool2d(P5, kernel_size=1, stride=2)``: one extra level, no parameters (detectron2)."""

    num_levels = 1

    def forward(self, p5: Tensor, c5: Tensor) -> List[Tensor]:
        """p5: [B, C, H, W] (``c5`` unused) -> [P6 [B, C, ceil(H/2), ceil(W/2)]]."""
        return [F.max_pool2d(p5, kernel_size=1, stride=2, padding=0)]


class LastLevelAvgPool(nn.Module):
    """P6 = ``avg_pool2d(P5, kernel_size=2, stride=2, ceil_mode=True)``: the mean of each 2x2 cell block (a block
    cut by an odd border averages the cells it has)."""

    num_levels = 1

    def forward(self, p5: Tensor, c5: Tensor) -> List[Tensor]:
        """p5: [B, C, H, W] (``c5`` unused) -> [P6 [B, C, ceil(H/2), ceil(W/2)]]."""
        return [F.avg_pool2d(p5, kernel_size=2, stride=2, ceil_mode=True)]


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2(x), P7 = conv3x3/2(ReLU(P6)), with x = P5 (``use_p5``, FCOS/RDPNet) or C5 (RetinaNet).

    Args:
        in_channels: channels of the input (the FPN width for P5, the backbone's for C5).
        out_channels: FPN width.
        use_p5: read P5 instead of C5.
    """

    num_levels = 2

    def __init__(self, in_channels: int, out_channels: int, use_p5: bool = True) -> None:
        super().__init__()
        self.use_p5 = bool(use_p5)
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
        for conv in (self.p6, self.p7):
            kaiming_uniform_a1_(conv)

    def forward(self, p5: Tensor, c5: Tensor) -> List[Tensor]:
        """p5 [B, C, H, W], c5 [B, C5, H, W] -> [P6 [B, C, ceil(H/2), ceil(W/2)], P7 [B, C, ceil(H/4), ceil(W/4)]]."""
        p6 = self.p6(p5 if self.use_p5 else c5)
        return [p6, self.p7(F.relu(p6))]


class SeparableGate(nn.Module):
    """The gate of one gated-FPN merge: a separable convolution (depthwise 3x3 + pointwise 1x1, both with biases, no
    activation between: Keras ``SeparableConv2D``) followed by a sigmoid.

    Args:
        channels: width of the gated features.
        gate_channels: channels of the gate; ``channels`` gives an element-wise gate (SPRNet's "score map
            element-wise corresponds to each feature"), 1 a spatial gate broadcast over the channels.
        bias_init: initial bias of the pointwise convolution (0: gates start near 0.5; a large value makes every
            gate 1, the plain FPN).
    """

    def __init__(self, channels: int, gate_channels: int, bias_init: float = 0.0) -> None:
        super().__init__()
        if gate_channels not in (1, channels):
            raise ValueError(f"SeparableGate: gate_channels must be 1 or {channels}, got {gate_channels}")
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pointwise = nn.Conv2d(channels, gate_channels, 1)
        nn.init.constant_(self.pointwise.bias, float(bias_init))

    def forward(self, feature: Tensor) -> Tensor:
        """feature [B, C, H, W] -> gate values in (0, 1), [B, gate_channels, H, W]."""
        return torch.sigmoid(self.pointwise(self.depthwise(feature)))


class FPN(nn.Module):
    """Feature pyramid over backbone stages.

    Args:
        in_features: backbone outputs used, finest first (e.g. ``["res3", "res4", "res5"]``).
        in_channels: their channels, same order.
        out_channels: width of every level.
        upsample: top-down interpolation, ``"nearest"`` (detectron2, maskrcnn-benchmark: x2 nearest) or
            ``"bilinear"`` (align_corners=False); both interpolate to the finer level's size, which for exact
            halvings is the same as a scale factor of 2.
        top_block: optional module ``(p_last, c_last) -> List[Tensor]`` of extra coarser levels.
        bias: whether the lateral and output convolutions have a bias (True in both reference codebases).
        last_output_conv: whether the coarsest stage gets a 3x3 output convolution; without it that level is its
            1x1 lateral convolution alone (S4Net's P5).
        gated: SPRNet's gated merges (module docstring), one :class:`SeparableGate` per merge (``gates.i`` gates
            the merge into stage ``i``).
        gate_channels: channels of each gate (None: ``out_channels``, element-wise; 1: spatial).
        gate_bias_init: initial bias of the gates' pointwise convolutions.

    Attributes:
        num_levels: pyramid levels returned (stages plus top-block levels).
    """

    def __init__(
        self,
        in_features: Sequence[str],
        in_channels: Sequence[int],
        out_channels: int,
        upsample: str = "nearest",
        top_block: Optional[nn.Module] = None,
        bias: bool = True,
        last_output_conv: bool = True,
        gated: bool = False,
        gate_channels: Optional[int] = None,
        gate_bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        if len(in_features) != len(in_channels) or not in_features:
            raise ValueError(f"FPN needs one channel count per input feature, got {in_features} and {in_channels}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"FPN upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.in_features: List[str] = list(in_features)
        self.out_channels = int(out_channels)
        self.bilinear = upsample == "bilinear"
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1, bias=bias) for c in in_channels)
        self.output_convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)
            for _ in range(len(in_channels) - (0 if last_output_conv else 1))
        )
        for conv in [*self.lateral_convs, *self.output_convs]:
            kaiming_uniform_a1_(conv)
        width = out_channels if gate_channels is None else int(gate_channels)
        self.gated = bool(gated)
        self.gates = nn.ModuleList(
            SeparableGate(out_channels, width, gate_bias_init) for _ in range(len(in_channels) - 1 if gated else 0)
        )
        self.top_block = top_block
        self.num_levels = len(in_channels) + (0 if top_block is None else int(getattr(top_block, "num_levels", 1)))

    def forward(self, features: Dict[str, Tensor]) -> List[Tensor]:
        """Builds the pyramid.

        Args:
            features: backbone outputs, ``{name: [B, C_name, H_name, W_name]}`` including ``in_features``.

        Returns:
            ``num_levels`` tensors [B, out_channels, H_l, W_l], finest first (e.g. P3..P7).
        """
        laterals: List[Tensor] = []
        for index, conv in enumerate(self.lateral_convs):
            laterals.append(conv(features[self.in_features[index]]))
        for index in range(len(laterals) - 2, -1, -1):
            finer = laterals[index]
            size = [finer.shape[-2], finer.shape[-1]]
            if self.bilinear:
                top_down = F.interpolate(laterals[index + 1], size=size, mode="bilinear", align_corners=False)
            else:
                top_down = F.interpolate(laterals[index + 1], size=size, mode="nearest")
            laterals[index] = self.merge(index, finer, top_down)
        results: List[Tensor] = []
        for index, conv in enumerate(self.output_convs):
            results.append(conv(laterals[index]))
        results.extend(laterals[len(results) :])  # the coarsest lateral, without its own output convolution
        if self.top_block is not None:
            results.extend(self.top_block(results[-1], features[self.in_features[-1]]))
        return results

    def merge(self, index: int, lateral: Tensor, top_down: Tensor) -> Tensor:
        """Merge into stage ``index``: ``lateral + top_down``, or with ``gated`` ``g(top_down) * top_down +
        g(lateral) * lateral`` with ``g`` the merge's :class:`SeparableGate` (both [B, C, H, W])."""
        if not self.gated:
            return lateral + top_down
        for position, gate in enumerate(self.gates):  # TorchScript indexes a ModuleList only in a loop
            if position == index:
                return gate(top_down) * top_down + gate(lateral) * lateral
        raise RuntimeError(f"FPN has no gate for merge {index}")


def level_strides(first_stride: int, num_levels: int) -> List[int]:
    """Strides of ``num_levels`` pyramid levels that halve the resolution each, e.g. ``(8, 5) -> [8, ..., 128]``."""
    if first_stride < 1 or num_levels < 1 or 2 ** round(math.log2(first_stride)) != first_stride:
        raise ValueError(f"need a power-of-two first stride and >= 1 level, got {first_stride} and {num_levels}")
    return [first_stride * 2**level for level in range(num_levels)]
