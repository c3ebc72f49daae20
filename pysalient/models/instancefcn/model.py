"""The InstanceFCN network ("Instance-sensitive Fully Convolutional Networks", Dai et al., ECCV 2016).

There is no official code; this follows ``INSTANCEFCN_SPRNET.md`` §1 of the family report and its recommended
resolution of every point the paper leaves open:

- backbone: dilated VGG-16 at output stride 8 (pool4 3x3 / stride 1 / pad 1, conv5 dilation 2: A1), or a ResNet
  dilated to stride 8 (A17); the branches read its last feature (after ReLU);
- instance branch: 1x1 conv + ReLU, 3x3 conv -> k^2 instance-sensitive score maps, logits (A2); channel ``a*k + b``
  is relative position (row a, column b) and window cell (i, j) copies channel ``floor(i k / m) k + floor(j k / m)``
  (the floor rule of FCIS' PSRoIPooling and :func:`pysalient.ops.assemble_instances`: bins 5, 4, 4, 4, 4 for
  k = 5, m = 21; A3);
- objectness branch: 3x3 conv + ReLU, 1x1 conv -> 1 logit per cell: the window centred on that cell (A4) is an
  instance; the branches are N(0, 0.01) with zero biases;
- training inside ``network(images, targets)`` (:mod:`.targets`): DeepMask's window rule scaled to 168 px (A5),
  256 windows per image with at most half positives, negatives filling the rest (A11); the positives' masks are
  assembled from the logits and their targets are the matched instance's mask RoIAligned over the window (A10);
  window cells off the map get loss weight 0 (A8); the losses are the mean objectness BCE over the sampled windows
  plus the mean mask BCE over the positives' on-map cells, 1 : 1 (A6, A7, A9; :mod:`.loss`);
- inference (:mod:`.detector`): every window of every scale, per-scale top-k by objectness (A14), probabilities
  assembled (A8), binarised at 0.5 (A12), one NMS 0.8 over the grid-level tight boxes of all scales (A13), top N,
  pasted with :func:`pysalient.ops.paste_masks`.

Departures: ``num_classes > 1`` gives the objectness branch one sigmoid logit per class (not in the paper, which
classifies proposals with MNC's stage 3); scale jitter and flips come from the training pipeline (the recipe's
shorter sides, horizontal flips p = 0.5).
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from pysalient import ops
from pysalient.backbones import build_backbone
from pysalient.models.instancefcn.config import STRIDE, InstanceFCNConfig
from pysalient.models.instancefcn.targets import (
    label_windows,
    on_map_weights,
    sample_windows,
    window_boxes,
    window_centres,
    window_mask_targets,
)


class InstanceBranch(nn.Module):
    """1x1 conv + ReLU, 3x3 conv to k^2 instance-sensitive score-map logits."""

    def __init__(self, in_channels: int, channels: int, k: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, channels, 1)
        self.score_maps = nn.Conv2d(channels, k * k, 3, padding=1)

    def forward(self, features: Tensor) -> Tensor:
        """features [B, C, H, W] -> score-map logits [B, k^2, H, W]."""
        return self.score_maps(torch.relu(self.reduce(features)))


class ObjectnessBranch(nn.Module):
    """3x3 conv + ReLU, 1x1 conv to one objectness logit per class and cell."""

    def __init__(self, in_channels: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: Tensor) -> Tensor:
        """features [B, C, H, W] -> objectness logits [B, num_classes, H, W]."""
        return self.logits(torch.relu(self.conv(features)))


class InstanceFCN(nn.Module):
    """Dilated backbone (stride 8) + instance branch + objectness branch.

    Args:
        config: the architecture.

    Attributes:
        k, m: sub-windows per side and window side in cells.
    """

    def __init__(self, config: InstanceFCNConfig) -> None:
        super().__init__()
        self.num_classes = int(config.num_classes)
        self.k = int(config.k)
        self.m = int(config.m)
        self.feature_name = "res5" if config.backbone == "vgg16" else config.backbone_feature
        self.backbone = build_backbone(config.backbone, **config.backbone_kwargs())
        if self.backbone.out_strides[self.feature_name] != STRIDE:
            raise ValueError(f"InstanceFCN needs a stride-{STRIDE} backbone, got {self.backbone.out_strides}")
        channels = self.backbone.out_channels[self.feature_name]
        self.instance_branch = InstanceBranch(channels, config.branch_channels, self.k)
        self.objectness_branch = ObjectnessBranch(channels, config.branch_channels, self.num_classes)
        for branch in (self.instance_branch, self.objectness_branch):
            for module in branch.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.normal_(module.weight, std=config.init_std)
                    nn.init.zeros_(module.bias)
        self.rule = (
            float(config.canonical_size),
            float(config.positive_center),
            float(config.positive_scale),
            float(config.negative_center),
            float(config.negative_scale),
        )
        self.windows_per_image = int(config.windows_per_image)
        self.positive_fraction = float(config.positive_fraction)
        self.mask_target_threshold = float(config.mask_target_threshold)

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, List[Tensor]]:
        """Runs the network.

        Args:
            images: [B, 3, Hp, Wp] normalised, zero-padded images (multiples of 8).
            targets: training targets (``labels`` int64 [K], ``boxes`` [K, 4] with exclusive right / bottom edges,
                ``masks`` bool [K, Hp, Wp] per image); required in training mode.

        Returns:
            ``score_maps`` ([B, k^2, Hp/8, Wp/8] logits) and ``objectness`` ([B, num_classes, Hp/8, Wp/8] logits),
            one-element lists; in training mode also, for the sampled windows of the whole batch,
            ``window_logits`` ([S, num_classes] objectness), ``window_targets`` ([S, num_classes] in {0, 1}),
            ``mask_logits`` ([P, m, m] assembled logits of the positives), ``mask_targets`` ([P, m, m] in {0, 1})
            and ``mask_weights`` ([P, m, m], 0 for cells off the map).

        Raises:
            ValueError: training mode without targets, or not as many targets as images.
        """
        features = self.backbone(images)[self.feature_name]
        score_maps = self.instance_branch(features)
        objectness = self.objectness_branch(features)
        if not torch.jit.is_scripting():  # a static condition for TorchScript: the training path is not compiled
            if self.training:
                if targets is None:
                    raise ValueError("InstanceFCN in training mode needs targets: call network(images, targets)")
                return self.training_outputs(score_maps, objectness, targets)
        return {"score_maps": [score_maps], "objectness": [objectness]}

    def training_outputs(
        self, score_maps: Tensor, objectness: Tensor, targets: List[Dict[str, Tensor]]
    ) -> Dict[str, List[Tensor]]:
        """Map outputs plus the sampled windows' objectness and the positives' assembled masks and targets."""
        batch_size, _, height, width = score_maps.shape
        if len(targets) != batch_size:
            raise ValueError(f"InstanceFCN got {batch_size} images but {len(targets)} targets")
        ys, xs, centres = window_centres(height, width, score_maps.device)
        window_logits: List[Tensor] = []
        window_targets: List[Tensor] = []
        windows: List[Tensor] = []
        mask_targets: List[Tensor] = []
        mask_weights: List[Tensor] = []
        for index, target in enumerate(targets):
            gt_boxes = target["boxes"].to(centres)
            labels, matched = label_windows(centres, gt_boxes, *self.rule)
            positive, negative = sample_windows(labels, self.windows_per_image, self.positive_fraction)
            sampled = torch.cat([positive, negative])
            window_logits.append(objectness[index][:, ys[sampled], xs[sampled]].t())
            classes = torch.zeros(sampled.numel(), self.num_classes, device=centres.device)
            if positive.numel():
                gt_classes = target["labels"].to(torch.int64)[matched[positive]]
                classes[torch.arange(positive.numel(), device=centres.device), gt_classes] = 1.0
            window_targets.append(classes)
            pos_ys, pos_xs = ys[positive], xs[positive]
            windows.append(
                torch.stack([torch.full_like(pos_ys, index), pos_ys - self.m // 2, pos_xs - self.m // 2], dim=1)
            )
            boxes = window_boxes(pos_ys, pos_xs, self.m)
            mask_targets.append(
                window_mask_targets(target["masks"], boxes, matched[positive], self.m, self.mask_target_threshold)
            )
            mask_weights.append(on_map_weights(pos_ys, pos_xs, self.m, height, width))
        mask_logits = ops.assemble_instances(score_maps, torch.cat(windows), self.m, self.k)
        return {
            "score_maps": [score_maps],
            "objectness": [objectness],
            "window_logits": [torch.cat(window_logits)],
            "window_targets": [torch.cat(window_targets)],
            "mask_logits": [mask_logits],
            "mask_targets": [torch.cat(mask_targets)],
            "mask_weights": [torch.cat(mask_weights)],
        }


def build_instancefcn(config: InstanceFCNConfig) -> InstanceFCN:
    """The family's ``build`` hook."""
    return InstanceFCN(config)
