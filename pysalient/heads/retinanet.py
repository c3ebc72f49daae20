"""RetinaNet's head (Lin et al., "Focal Loss for Dense Object Detection", ICCV'17 §4): a classification subnet and a
box subnet, each ``num_convs`` x (3x3 convolution + ReLU) then a 3x3 predictor, the same weights on every level.

Every convolution is N(0, 0.01) with zero bias, except the classification predictor's bias, the focal-loss prior
``-log((1 - pi) / pi)`` (pi = 0.01), as detectron2, torchvision and keras-retinanet. Outputs use the layout of
:class:`pysalient.heads.anchor_head.AnchorHead` (anchor-major channels ``a * K + k``), so that
:func:`~pysalient.heads.anchor_head.flatten_anchor_outputs` and :class:`pysalient.detection.AnchorPostProcessor`
(``score_mode="sigmoid"``) read them. Module names (``cls_subnet``, ``bbox_subnet``, ``cls_score``, ``bbox_pred``)
are detectron2's.
"""

from __future__ import annotations

from typing import List, Tuple

from torch import Tensor, nn

from pysalient.heads.dense import conv_tower
from pysalient.layers.weight_init import normal_fill, prior_probability_bias


class RetinaNetHead(nn.Module):
    """Classification and box subnets of RetinaNet.

    Args:
        in_channels: width of the pyramid levels.
        num_anchors: anchors per cell (A, 9 in RetinaNet).
        num_classes: sigmoid class logits per anchor (K; 1 for class-agnostic salient instances).
        channels: width of both subnets (None: ``in_channels``).
        num_convs: hidden convolutions per subnet (4).
        prior: initial foreground probability of every anchor (0.01).
    """

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        channels: int = 0,
        num_convs: int = 4,
        prior: float = 0.01,
    ) -> None:
        super().__init__()
        width = int(channels) if channels else int(in_channels)
        if min(in_channels, num_anchors, num_classes, width, num_convs) < 1:
            raise ValueError(
                "RetinaNetHead needs positive widths and counts, got "
                f"in_channels={in_channels}, num_anchors={num_anchors}, num_classes={num_classes}, "
                f"channels={width}, num_convs={num_convs}"
            )
        self.num_anchors = int(num_anchors)
        self.num_classes = int(num_classes)
        self.cls_subnet = conv_tower(num_convs, in_channels, width, init="none")
        self.bbox_subnet = conv_tower(num_convs, in_channels, width, init="none")
        self.cls_score = nn.Conv2d(width, num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(width, num_anchors * 4, 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                normal_fill(module, 0.01)
        nn.init.constant_(self.cls_score.bias, prior_probability_bias(prior))

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Levels [B, C, H_l, W_l] -> (logits [B, A * K, H_l, W_l], deltas [B, A * 4, H_l, W_l]) per level."""
        logits: List[Tensor] = []
        deltas: List[Tensor] = []
        for feature in features:
            logits.append(self.cls_score(self.cls_subnet(feature)))
            deltas.append(self.bbox_pred(self.bbox_subnet(feature)))
        return logits, deltas
