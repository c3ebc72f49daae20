"""The FCOS head (Tian et al., ICCV'19): one head shared by every pyramid level.

Two towers of ``num_convs`` x [3x3 conv, GroupNorm, ReLU]; ``cls_logits`` and ``centerness`` read the
classification tower (the conference version of FCOS, as RDPNet's maskrcnn-benchmark fork), or ``centerness``
reads the box tower (``centerness_on_reg``, the FCOS journal version); the box branch predicts
``exp(scale_l * bbox_pred(tower))``, distances (l, t, r, b) in input pixels, with one learnable
:class:`~pysalient.layers.scale.Scale` per level.

Module names are maskrcnn-benchmark's (``cls_tower.{0,3,6,9}`` convolutions and ``.{1,4,7,10}`` GroupNorms,
``cls_logits``, ``bbox_pred``, ``centerness``, ``scales.l.scale``), so official FCOS and RDPNet weights load under
``head.`` unchanged.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient.heads.dense import conv_tower
from pysalient.layers.scale import Scale


class FCOSHead(nn.Module):
    """Classification, box-distance and centerness predictions on every level.

    Args:
        in_channels: width of the pyramid levels.
        num_classes: foreground classes (sigmoid scores; no background channel).
        channels: width of the towers (RDPNet: ``in_channels // 2`` = 128).
        num_convs: convolutions per tower (4).
        num_scales: learnable scales (one per level; the official RDPNet code creates 6 and uses 5).
        norm_groups: GroupNorm groups of the towers (32).
        prior_prob: initial foreground probability of the class logits (bias ``-log((1 - p) / p)``).
        centerness_on_reg: centerness from the box tower instead of the classification tower.

    Init is the official one: N(0, 0.01) weights and zero biases, class bias from ``prior_prob``, scales 1.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 256,
        num_convs: int = 4,
        num_scales: int = 5,
        norm_groups: int = 32,
        prior_prob: float = 0.01,
        centerness_on_reg: bool = False,
    ) -> None:
        super().__init__()
        if num_convs < 1 or num_scales < 1 or num_classes < 1 or channels % norm_groups:
            raise ValueError(
                f"FCOSHead needs num_convs, num_scales, num_classes >= 1 and channels ({channels}) divisible by "
                f"norm_groups ({norm_groups})"
            )
        self.num_classes = int(num_classes)
        self.centerness_on_reg = bool(centerness_on_reg)
        self.cls_tower = conv_tower(num_convs, in_channels, channels, norm_groups, init="none")
        self.bbox_tower = conv_tower(num_convs, in_channels, channels, norm_groups, init="none")
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))
        self.scales = nn.ModuleList(Scale(1.0) for _ in range(num_scales))

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
        """Runs the head on each level.

        Args:
            features: L <= ``num_scales`` maps [B, in_channels, H_l, W_l].

        Returns:
            Per level: class logits [B, num_classes, H_l, W_l], box distances (l, t, r, b) [B, 4, H_l, W_l]
            (``exp`` already applied, input pixels) and centerness logits [B, 1, H_l, W_l].
        """
        torch._assert(len(features) <= len(self.scales), "FCOSHead: more levels than scales")
        logits: List[Tensor] = []
        distances: List[Tensor] = []
        centerness: List[Tensor] = []
        for level, scale in enumerate(self.scales):
            if level < len(features):
                cls_tower = self.cls_tower(features[level])
                bbox_tower = self.bbox_tower(features[level])
                logits.append(self.cls_logits(cls_tower))
                centerness.append(self.centerness(bbox_tower if self.centerness_on_reg else cls_tower))
                distances.append(torch.exp(scale(self.bbox_pred(bbox_tower))))
        return logits, distances, centerness
