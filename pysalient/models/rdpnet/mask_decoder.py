"""RDPNet's multi-level RoIAlign (MRA) mask decoder (official ``InstanceSaliencyMaskDecoder`` +
``MaskDecoderPredictor``).

1. Each level is reduced on the full map: F_k = ReLU(GN(conv1x1(N_k))) (no bias, 32 groups).
2. Every RoI is pooled from **all** levels (no FPN level assignment) with legacy RoIAlign (``aligned=False``,
   sampling ratio 2) at the level's scale: P3..P7 at 1/8..1/128 into 32, 16, 8, 4 and 4 cells
   (:func:`pysalient.ops.multilevel_roi_align`, one launch for all levels).
3. Top-down decoding: x = conv_1(pool(F7) + pool(F6)) at 4x4, then x = conv_k(up(x) + pool(F_l)) for
   (F5, 8x8), (F4, 16x16), (F3, 32x32); up is bilinear (align_corners=False), each conv_k a 3x3 convolution
   without bias, GroupNorm and ReLU.
4. ``predictor``: a 1x1 convolution to ``num_classes + 1`` channels (channel 0, the official background, is never
   trained; class c uses channel c + 1).
"""

from __future__ import annotations

from typing import Dict, List

import torch.nn.functional as F
from torch import Tensor, nn

from pysalient import ops

POOLER_SCALES = (1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128)
POOLER_SIZES = (32, 16, 8, 4, 4)
SAMPLING_RATIO = 2
STAGE_NAMES = ("stage1_4x4", "stage2_8x8", "stage3_16x16", "stage4_32x32")


def _conv_gn_relu(in_channels: int, out_channels: int, kernel_size: int, groups: int) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, nn.GroupNorm(groups, out_channels), nn.ReLU())


class MultiLevelMaskDecoder(nn.Module):
    """Mask logits of RoIs from five pyramid levels.

    Args:
        in_channels: width of the RDP levels (256).
        channels: decoder width (128).
        num_classes: foreground classes; the predictor has ``num_classes + 1`` channels.
        norm_groups: GroupNorm groups (32).
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, norm_groups: int = 32) -> None:
        super().__init__()
        self.scales: List[float] = [float(scale) for scale in POOLER_SCALES]
        self.sizes: List[int] = [int(size) for size in POOLER_SIZES]
        self.stage_names: List[str] = list(STAGE_NAMES)
        self.sampling_ratio = SAMPLING_RATIO
        self.reduce = nn.ModuleList(_conv_gn_relu(in_channels, channels, 1, norm_groups) for _ in POOLER_SIZES)
        self.decode = nn.ModuleList(_conv_gn_relu(channels, channels, 3, norm_groups) for _ in range(4))
        self.predictor = nn.Conv2d(channels, num_classes + 1, 1)
        nn.init.kaiming_normal_(self.predictor.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.predictor.bias)

    def reduced(self, features: List[Tensor]) -> List[Tensor]:
        """RDP levels N3..N7 [B, C_in, H_l, W_l] -> F3..F7 [B, channels, H_l, W_l]."""
        out: List[Tensor] = []
        for level, reduce in enumerate(self.reduce):
            out.append(reduce(features[level]))
        return out

    def pooled(self, reduced: List[Tensor], rois: Tensor) -> List[Tensor]:
        """RoIAlign of rois [R, 5] (batch index, x1, y1, x2, y2 in input pixels) on F3..F7: [R, channels, s_l, s_l]."""
        return ops.multilevel_roi_align(reduced, rois, self.scales, self.sizes, self.sampling_ratio, False)

    def stages(self, pooled: List[Tensor]) -> Dict[str, Tensor]:
        """The four decoder outputs (``stage1_4x4`` .. ``stage4_32x32``) and ``logits`` [R, num_classes + 1, 32, 32]."""
        out: Dict[str, Tensor] = {}
        x = pooled[4] + pooled[3]
        for step, decode in enumerate(self.decode):
            if step > 0:
                level = 3 - step
                size = [self.sizes[level], self.sizes[level]]
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False) + pooled[level]
            x = decode(x)
            out[self.stage_names[step]] = x
        out["logits"] = self.predictor(x)
        return out

    def forward(self, features: List[Tensor], rois: Tensor) -> Tensor:
        """Mask logits [R, num_classes + 1, 32, 32] of rois [R, 5] from the RDP levels N3..N7."""
        return self.stages(self.pooled(self.reduced(features), rois))["logits"]
