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

import torch
from torch import Tensor, nn

from pysalient.backbones import build_backbone
from pysalient.detection.postprocess import FCOSPostProcessor
from pysalient.heads.fcos import FCOSHead
from pysalient.models.rdpnet.config import RDPNetConfig
from pysalient.models.rdpnet.mask_decoder import MultiLevelMaskDecoder
from pysalient.models.rdpnet.pyramid import DenselyConnectedPyramid
from pysalient.models.rdpnet.targets import mask_samples
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
        # The official head creates six scales and uses five: the unused ones keep their checkpoint key but are
        # frozen, so that the optimizer and distributed training see no parameter without a gradient.
        for unused in self.head.scales[len(STRIDES) :]:
            unused.requires_grad_(False)
        self.mask_head = MultiLevelMaskDecoder(
            config.fpn_channels, config.mask_channels, config.num_classes, config.norm_groups
        )
        # Training proposals of the mask head: the official test-time FCOS post-processing (no parameters).
        self.proposals = FCOSPostProcessor(
            self.strides,
            score_threshold=config.candidate_threshold,
            pre_nms_top_n=config.pre_nms_top_n,
            nms_threshold=config.nms_threshold,
            max_det=config.max_det,
            legacy=True,
        )

    def features(self, images: Tensor) -> List[Tensor]:
        """images [B, 3, Hp, Wp] (normalised, padded to 32) -> RDP levels N3..N7 [B, C, Hp/s, Wp/s]."""
        return self.pyramid(self.fpn(self.backbone(images)))

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, List[Tensor]]:
        """Runs the network.

        Args:
            images: [B, 3, Hp, Wp] normalised, zero-padded images.
            targets: training targets (``labels`` int64 [K], ``boxes`` [K, 4], ``masks`` bool [K, Hp, Wp] per image,
                see ``FamilySpec.build``); required in training mode, where they choose the mask head's RoIs.

        Returns:
            ``cls_logits`` ([B, num_classes, H_l, W_l] per level), ``bbox_reg`` (distances l, t, r, b in input
            pixels, [B, 4, H_l, W_l]) and ``centerness`` (logits [B, 1, H_l, W_l]); in eval mode also ``features``
            (N3..N7 [B, C, H_l, W_l]), in training mode ``mask_logits`` ([P, 32, 32], the class channel of each
            positive proposal) and ``mask_targets`` ([P, 32, 32] in {0, 1}) as one-element lists
            (:mod:`pysalient.models.rdpnet.targets`).

        Raises:
            ValueError: training mode without targets.
        """
        features = self.features(images)
        logits, distances, centerness = self.head(features)
        if not torch.jit.is_scripting():  # a static condition for TorchScript: the training path is not compiled
            if self.training:
                if targets is None:
                    raise ValueError("RDPNet in training mode needs targets: call network(images, targets)")
                return self.training_outputs(images, features, logits, distances, centerness, targets)
        return {"features": features, "cls_logits": logits, "bbox_reg": distances, "centerness": centerness}

    def training_outputs(
        self,
        images: Tensor,
        features: List[Tensor],
        logits: List[Tensor],
        distances: List[Tensor],
        centerness: List[Tensor],
        targets: List[Dict[str, Tensor]],
    ) -> Dict[str, List[Tensor]]:
        """Head outputs plus the mask logits and targets of the proposals matched to the ground truth."""
        if len(targets) != images.shape[0]:
            raise ValueError(f"RDPNet got {images.shape[0]} images but {len(targets)} targets")
        padded_hw = [int(images.shape[-2]), int(images.shape[-1])]
        with torch.no_grad():
            detections = self.proposals(
                [level.detach() for level in logits],
                [level.detach() for level in distances],
                [level.detach() for level in centerness],
                [padded_hw] * len(targets),
            )
        rois, labels, mask_targets = mask_samples([boxes for boxes, _, _ in detections], targets)
        mask_logits = self.mask_head(features, rois.to(features[0].dtype))
        selected = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels + 1]
        return {
            "cls_logits": logits,
            "bbox_reg": distances,
            "centerness": centerness,
            "mask_logits": [selected],
            "mask_targets": [mask_targets],
        }


def build_rdpnet(config: RDPNetConfig) -> RDPNet:
    """The family's ``build`` hook."""
    return RDPNet(config)
