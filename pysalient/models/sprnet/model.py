"""The SPRNet network ("Single Pixel Reconstruction for One-stage Instance Segmentation", Yu et al., 2019).

There is no official code; this follows ``INSTANCEFCN_SPRNET.md`` §2 of the family report and its recommended
resolutions of what the paper leaves open, on pysalient's RetinaNet pieces with detectron2 conventions (B1, B27-B29):

- backbone: ResNet (FrozenBN, stem and res2 frozen, as detectron2's RetinaNet); C3..C5;
- gated FPN P3-P7 (:class:`pysalient.necks.FPN` with ``gated=True``): nearest top-down, at each of the two merges
  ``sigmoid(S(U)) * U + sigmoid(S(L)) * L`` with one separable convolution ``S`` (depthwise 3x3 + pointwise 1x1,
  256-channel element-wise gates, biases 0 at the start: B16-B20) shared by the up-sampled coarser level ``U`` and
  the lateral ``L``, no detach (B21); P5 and P6/P7 are not gated; P6 a 3x3/2 convolution of C5, P7 of ReLU(P6);
- RetinaNet head (:class:`pysalient.heads.RetinaNetHead`), 9 anchors per cell, offset 0 (B29);
- SPR mask branch (:mod:`.mask_branch`) with the 640-channel fusion of §3.2 (B3), a 256-wide decoder (B6),
  kernel-2 deconvolutions (B7), nearest up-sampling (B8), the x4 shortcut added (B10), class-specific logits (B11).

In training the network picks the mask branch's pixels itself (:mod:`.targets`), so the sampling runs inside the
(DDP) forward as the family contract asks; the fusion runs at those pixels only.

The report's open points and the reading taken for each (all its recommendations, except where noted):
B1 pysalient's RetinaNet with detectron2 conventions; B2 a practical SGD recipe by default, the paper's
Adam 1e-5 + clipnorm 1e-3 as the named recipe ``"paper"`` (:mod:`.family`); B3-B5 the §3.2 fusion (the
``c33_1246`` variant is not built); B6-B11 above; B12 targets cropped to the ground-truth box (RoIAlign aligned,
>= 0.5); B13 duplicate pixels kept (no ``dedupe_pixels`` option); B14 no fallback (an image without an anchor above
0.7 has mask loss 0); B15 loss weights 1 : 1 : 1, mask BCE mean over N x 32 x 32; B16-B21 above (the spatial gate is
``gate_channels=1``; no ``detach_top_down`` option); B22-B24 RetinaNet post-processing then masks of the kept
detections, pasted with detectron2's paste (:mod:`.detector`); B25 500 / 833; B26 flips in the practical recipe, none
in ``"paper"``; B27 deltas with weights 1 and smooth L1 beta 0.1, but normalised by the batch's positive count
(torchvision, keras) instead of detectron2's moving average; B28 low-quality matches on; B29 anchor offset 0;
B31 frozen BN.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from pysalient.backbones import build_backbone
from pysalient.detection.anchors import AnchorGenerator
from pysalient.heads.retinanet import RetinaNetHead
from pysalient.models.sprnet.config import MASK_SIZE, STRIDES, SPRNetConfig
from pysalient.models.sprnet.mask_branch import SPRMaskBranch, anchor_cells
from pysalient.models.sprnet.targets import mask_sample_anchors, mask_sample_targets
from pysalient.necks.fpn import FPN, LastLevelP6P7


class SPRNet(nn.Module):
    """Backbone + gated FPN P3-P7 + RetinaNet head + SPR mask branch.

    Args:
        config: the architecture.

    Attributes:
        strides: strides of P3..P7 (8..128).
        anchors: the anchor generator (9 anchors per cell).
    """

    def __init__(self, config: SPRNetConfig) -> None:
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
            top_block=LastLevelP6P7(channels[-1], config.fpn_channels, use_p5=False),
            gated=config.gated,
            gate_channels=config.gate_channels or None,
            gate_bias_init=config.gate_bias_init,
        )
        self.anchors = AnchorGenerator(
            config.level_anchor_sizes(), list(config.anchor_ratios), self.strides, offset=config.anchor_offset
        )
        self.head = RetinaNetHead(
            config.fpn_channels,
            self.anchors.num_anchors,
            config.num_classes,
            channels=config.head_channels,
            num_convs=config.head_convs,
            prior=config.prior,
        )
        self.mask_branch = SPRMaskBranch(
            config.fpn_channels,
            config.num_classes,
            tuple(config.fusion_channels),
            tuple(config.fusion_dilations),
            config.decoder_channels,
            config.mask_upsample,
        )
        self.dense_fusion = bool(config.dense_fusion)
        self.mask_iou = float(config.mask_iou)
        self.mask_samples = int(config.mask_samples)

    def features(self, images: Tensor) -> List[Tensor]:
        """images [B, 3, Hp, Wp] (normalised, padded to 128) -> P3..P7 [B, C, Hp/s, Wp/s]."""
        return self.fpn(self.backbone(images))

    def mask_logits(self, features: List[Tensor], batch: Tensor, anchor_rows: Tensor) -> Tensor:
        """Mask logits [N, num_classes, 32, 32] of the pixels of anchors ``anchor_rows`` [N] (rows of the levels'
        anchors concatenated) in images ``batch`` [N]."""
        shapes = [[feature.shape[-2], feature.shape[-1]] for feature in features]  # SymInts under torch.export
        level, ys, xs = anchor_cells(anchor_rows, shapes, self.anchors.num_anchors)
        return self.mask_branch(features, batch, level, ys, xs, self.dense_fusion)

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, List[Tensor]]:
        """Runs the network.

        Args:
            images: [B, 3, Hp, Wp] normalised, zero-padded images.
            targets: training targets (``labels`` int64 [K], ``boxes`` [K, 4] with exclusive right / bottom edges,
                ``masks`` bool [K, Hp, Wp] per image); required in training mode.

        Returns:
            ``cls_logits`` ([B, A * num_classes, H_l, W_l] per level, anchor-major), ``bbox_deltas``
            ([B, A * 4, H_l, W_l]) and ``features`` (P3..P7); in training mode also, as one-element lists,
            ``mask_logits`` ([S, num_classes, 32, 32] of the sampled pixels of the whole batch), ``mask_targets``
            ([S, 32, 32] in {0, 1}) and ``mask_labels`` (int64 [S], the class channel each is trained on).

        Raises:
            ValueError: training mode without targets, or not as many targets as images.
        """
        pyramid = self.features(images)
        logits, deltas = self.head(pyramid)
        if not torch.jit.is_scripting():  # a static condition for TorchScript: the training path is not compiled
            if self.training:
                if targets is None:
                    raise ValueError("SPRNet in training mode needs targets: call network(images, targets)")
                return self.training_outputs(images, pyramid, logits, deltas, targets)
        return {"cls_logits": logits, "bbox_deltas": deltas, "features": pyramid}

    def training_outputs(
        self,
        images: Tensor,
        pyramid: List[Tensor],
        logits: List[Tensor],
        deltas: List[Tensor],
        targets: List[Dict[str, Tensor]],
    ) -> Dict[str, List[Tensor]]:
        """Head outputs plus the mask logits and targets of the sampled pixels."""
        if len(targets) != images.shape[0]:
            raise ValueError(f"SPRNet got {images.shape[0]} images but {len(targets)} targets")
        all_anchors = torch.cat(self.anchors(pyramid))
        batch: List[Tensor] = []
        rows: List[Tensor] = []
        mask_targets: List[Tensor] = []
        mask_labels: List[Tensor] = []
        for index, target in enumerate(targets):
            gt_boxes = target["boxes"].to(all_anchors)
            anchor_rows, gt_indices = mask_sample_anchors(all_anchors, gt_boxes, self.mask_iou, self.mask_samples)
            batch.append(torch.full_like(anchor_rows, index))
            rows.append(anchor_rows)
            mask_targets.append(mask_sample_targets(target["masks"], gt_boxes, gt_indices, MASK_SIZE))
            mask_labels.append(target["labels"].to(torch.int64)[gt_indices])
        mask_logits = self.mask_logits(pyramid, torch.cat(batch), torch.cat(rows))
        return {
            "cls_logits": logits,
            "bbox_deltas": deltas,
            "features": pyramid,
            "mask_logits": [mask_logits],
            "mask_targets": [torch.cat(mask_targets)],
            "mask_labels": [torch.cat(mask_labels)],
        }


def build_sprnet(config: SPRNetConfig) -> SPRNet:
    """The family's ``build`` hook."""
    return SPRNet(config)
