"""The RDPNet network (Wu et al., IEEE TIP 2021): ResNet, FPN P3-P7, RDP, FCOS head, multi-level RoIAlign masks.

Where the official code (yuhuan-wu/RDPNet) differs from the paper, this follows the code: the FCOS head is the
conference version (centerness on the classification tower, no centre sampling, no GIoU), P6 is computed from P5
and P7 from ReLU(P6), the RDP downsamples by direct bilinear resizing to each level's size (not by strided
convolutions or pooling) and concatenates the level's own FPN output last, the FCOS towers are half the FPN width
(128), every RoI is pooled from all five levels (P3..P7 at 32/16/8/4/4, legacy RoIAlign), and the mask predictor
keeps an untrained background channel.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from torch import Tensor, nn

from pysalient.backbones import build_backbone
from pysalient.heads.fcos import FCOSHead
from pysalient.models.rdpnet.config import RDPNetConfig
from pysalient.models.rdpnet.mask_decoder import MultiLevelMaskDecoder
from pysalient.models.rdpnet.pyramid import DenselyConnectedPyramid
from pysalient.necks.fpn import FPN, LastLevelP6P7

STRIDES = (8, 16, 32, 64, 128)


class RDPNet(nn.Module):
    """Backbone + FPN + RDP + FCOS head + mask decoder.

    Args:
        config: the architecture.

    Attributes:
        strides: strides of the five levels (8..128).
    """

    def __init__(self, config: RDPNetConfig) -> None:
        super().__init__()
        self.num_classes = int(config.num_classes)
        self.strides: List[int] = list(STRIDES)
        self.backbone = build_backbone(config.backbone, **config.backbone_kwargs())
        in_features = ["res3", "res4", "res5"]
        channels = [self.backbone.out_channels[name] for name in in_features]
        self.fpn = FPN(
            in_features,
            channels,
            config.fpn_channels,
            upsample="nearest",
            top_block=LastLevelP6P7(config.fpn_channels, config.fpn_channels, use_p5=True),
        )
        self.pyramid = DenselyConnectedPyramid(config.fpn_channels, len(STRIDES))
        self.head = FCOSHead(
            config.fpn_channels,
            config.num_classes,
            channels=config.head_channels,
            num_convs=config.head_convs,
            num_scales=config.head_num_scales,
            norm_groups=config.norm_groups,
            prior_prob=config.prior_prob,
        )
        self.mask_head = MultiLevelMaskDecoder(
            config.fpn_channels, config.mask_channels, config.num_classes, config.norm_groups
        )

    def features(self, images: Tensor) -> List[Tensor]:
        """images [B, 3, Hp, Wp] (normalised, padded to 32) -> RDP levels N3..N7 [B, C, Hp/s, Wp/s]."""
        return self.pyramid(self.fpn(self.backbone(images)))

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, List[Tensor]]:
        """Runs the network.

        Args:
            images: [B, 3, Hp, Wp] normalised, zero-padded images.
            targets: training targets (``labels``, ``boxes``, ``masks`` per image, see ``FamilySpec.build``).

        Returns:
            ``features`` (N3..N7 [B, C, H_l, W_l]), ``cls_logits`` ([B, num_classes, H_l, W_l] per level),
            ``bbox_reg`` (distances l, t, r, b in input pixels, [B, 4, H_l, W_l]) and ``centerness`` (logits
            [B, 1, H_l, W_l]).

        Raises:
            NotImplementedError: in training mode (RDPNet training is not implemented yet).
        """
        if self.training:
            raise NotImplementedError(
                "RDPNet training (FCOS targets and losses, mask targets of re-matched proposals) is not "
                "implemented yet; the network runs in eval mode only"
            )
        features = self.features(images)
        logits, distances, centerness = self.head(features)
        return {"features": features, "cls_logits": logits, "bbox_reg": distances, "centerness": centerness}


def build_rdpnet(config: RDPNetConfig) -> RDPNet:
    """The family's ``build`` hook."""
    return RDPNet(config)
