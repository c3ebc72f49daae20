"""The S4Net network (Fan et al., "S4Net: Single Stage Salient-Instance Segmentation", CVPR 2019 / CVM 2020).

A ResNet, an FPN P2-P6 (bilinear top-down path, P5 the 1x1 lateral of C5 without an output convolution, P6 a 2x2
average pool of P5), one anchor head shared by the five levels (the RPN used as the final detector: a 2-way softmax
of background and salient object per anchor) and the RoIMasking segmentation branch on the stride-8 level
(:mod:`.segmentation`). In training the ground-truth boxes are the segmentation RoIs (the released code's choice).

Deviations from the released TensorFlow code, all documented where they are made: RoIMasking clamps the context ring
at the map borders (:func:`pysalient.ops.roi_masking`; the release's negative slice start wraps around and drops the
ring of boxes near the top or left border); the test path feeds the network the same BGR order as training (the
release reverses the channels at test time only); test masks are resized bilinearly, not with Lanczos
(:mod:`.detector`).
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from pysalient.backbones import build_backbone
from pysalient.detection.anchors import AnchorGenerator
from pysalient.heads.anchor_head import AnchorHead
from pysalient.layers.weight_init import c2_msra_fill, normal_fill
from pysalient.models.s4net.config import SEGMENTATION_STRIDE, STRIDES, S4NetConfig
from pysalient.models.s4net.segmentation import SegmentationBranch
from pysalient.models.s4net.targets import inclusive_boxes, segmentation_targets
from pysalient.necks.fpn import FPN, LastLevelAvgPool


class S4Net(nn.Module):
    """Backbone + FPN P2-P6 + shared anchor head + RoIMasking segmentation branch.

    Args:
        config: the architecture.

    Attributes:
        strides: strides of P2..P6 (4..64).
        anchors: the anchor generator (py-faster-rcnn anchors centred at ``shift + 7.5`` on every level).
    """

    def __init__(self, config: S4NetConfig) -> None:
        super().__init__()
        self.num_classes = int(config.num_classes)
        self.strides: List[int] = list(STRIDES)
        self.backbone = build_backbone(config.backbone, **config.backbone_kwargs())
        in_features = ["res2", "res3", "res4", "res5"]
        channels = [self.backbone.out_channels[name] for name in in_features]
        self.fpn = FPN(
            in_features,
            channels,
            config.fpn_channels,
            upsample="bilinear",
            top_block=LastLevelAvgPool(),
            last_output_conv=False,
        )
        for module in self.fpn.modules():
            if isinstance(module, nn.Conv2d) and config.seg_msra_init:
                c2_msra_fill(module)
            elif isinstance(module, nn.Conv2d):
                normal_fill(module, 0.01)
        self.anchors = AnchorGenerator(
            [[size] for size in config.anchor_sizes], list(config.anchor_ratios), self.strides, legacy=True
        )
        self.head = AnchorHead(
            config.fpn_channels,
            self.anchors.num_anchors,
            config.num_classes + 1,
            hidden_channels=config.head_channels,
            predictor_kernel=3,
        )
        self.segmentation = SegmentationBranch(
            config.fpn_channels,
            tuple(config.seg_channels),
            stride=SEGMENTATION_STRIDE,
            masking_mode=config.masking_mode,
            expand_ratio=config.expand_ratio,
            logits_relu=config.seg_logits_relu,
            msra_init=config.seg_msra_init,
        )
        self.segmentation_level = STRIDES.index(SEGMENTATION_STRIDE)

    def features(self, images: Tensor) -> List[Tensor]:
        """images [B, 3, Hp, Wp] (normalised, padded to 64) -> P2..P6 [B, C, Hp/s, Wp/s]."""
        return self.fpn(self.backbone(images))

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, List[Tensor]]:
        """Runs the network.

        Args:
            images: [B, 3, Hp, Wp] normalised, zero-padded images.
            targets: training targets (``labels`` int64 [K], ``boxes`` [K, 4] with exclusive right / bottom edges,
                ``masks`` bool [K, Hp, Wp] per image); required in training mode, where their boxes are the
                segmentation RoIs.

        Returns:
            ``cls_logits`` ([B, A * (num_classes + 1), H_l, W_l] per level, anchor-major), ``bbox_deltas``
            ([B, A * 4, H_l, W_l]); in eval mode also ``seg_features`` ([S [B, c0, Hp/8, Wp/8]]); in training mode
            ``seg_logits`` ([R, 2, Hp/8, Wp/8] of the ground-truth RoIs), ``seg_targets`` ([R, Hp/8, Wp/8] in
            {0, 1}) and ``seg_rois`` ([R, 5] inclusive pixel boxes) as one-element lists.

        Raises:
            ValueError: training mode without targets, or as many targets as images.
        """
        pyramid = self.features(images)
        logits, deltas = self.head(pyramid)
        seg_features = self.segmentation.image_features(pyramid[self.segmentation_level])
        if not torch.jit.is_scripting():  # a static condition for TorchScript: the training path is not compiled
            if self.training:
                if targets is None:
                    raise ValueError("S4Net in training mode needs targets: call network(images, targets)")
                return self.training_outputs(images, logits, deltas, seg_features, targets)
        return {"cls_logits": logits, "bbox_deltas": deltas, "seg_features": [seg_features]}

    def training_outputs(
        self,
        images: Tensor,
        logits: List[Tensor],
        deltas: List[Tensor],
        seg_features: Tensor,
        targets: List[Dict[str, Tensor]],
    ) -> Dict[str, List[Tensor]]:
        """Head outputs plus the segmentation logits and targets of the ground-truth RoIs."""
        if len(targets) != images.shape[0]:
            raise ValueError(f"S4Net got {images.shape[0]} images but {len(targets)} targets")
        map_hw = (int(seg_features.shape[-2]), int(seg_features.shape[-1]))
        rois: List[Tensor] = []
        masks: List[Tensor] = []
        for index, target in enumerate(targets):
            boxes = inclusive_boxes(target["boxes"].to(torch.float32))
            rois.append(torch.cat([torch.full_like(boxes[:, :1], float(index)), boxes], dim=1))
            masks.append(segmentation_targets(target["masks"], map_hw))
        all_rois = torch.cat(rois)
        seg_logits = self.segmentation(seg_features, all_rois.to(seg_features.dtype))
        return {
            "cls_logits": logits,
            "bbox_deltas": deltas,
            "seg_logits": [seg_logits],
            "seg_targets": [torch.cat(masks)],
            "seg_rois": [all_rois],
        }


def build_s4net(config: S4NetConfig) -> S4Net:
    """The family's ``build`` hook."""
    return S4Net(config)
