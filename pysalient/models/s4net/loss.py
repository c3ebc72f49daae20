"""S4Net's training criterion (the released code's losses, per level and image as its target layer runs).

For every image and every pyramid level, with the anchors of that level (:mod:`.targets`):

* classification, 2-way (or (C + 1)-way) softmax cross-entropy: ``w * mean over positives`` plus ``w * (sum of the
  256 largest negative cross-entropies) / 256`` (online hard example mining), ``w = 0.3``;
* box regression: smooth L1 with ``sigma = 3`` (``beta = 1 / 9``) of the positives' deltas, summed, divided by the
  level's positive count and by 4.

Both are summed over levels and averaged over the images of the batch (the release trains one image per GPU).

* ``loss_seg``: 2-way softmax cross-entropy of the segmentation logits of every ground-truth RoI at every cell of its
  box (snapped outward to whole cells), summed over RoIs and cells and divided by the number of those cells; the
  context ring is never supervised. A batch without instances gives 0.

The released code also adds the L2 weight decay to the loss; here it is the optimiser's ``weight_decay``.
All in float32 whatever the outputs' dtype (mixed precision).
"""

from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.detection.anchors import AnchorGenerator
from pysalient.detection.box_coder import DeltaBoxCoder
from pysalient.heads.anchor_head import flatten_anchor_outputs
from pysalient.losses.box import smooth_l1_loss
from pysalient.losses.ohem import hardest_negatives_loss
from pysalient.models.s4net.config import SEGMENTATION_STRIDE, STRIDES, S4NetConfig
from pysalient.models.s4net.targets import anchor_targets, box_cell_weights, inclusive_boxes


class S4NetCriterion(nn.Module):
    """Losses of ``S4Net(images, targets)``'s training outputs.

    Args:
        config: the architecture (classes, anchors, loss hyper-parameters).
    """

    def __init__(self, config: S4NetConfig) -> None:
        super().__init__()
        self.num_logits = config.num_classes + 1
        self.anchors = AnchorGenerator(
            [[size] for size in config.anchor_sizes], list(config.anchor_ratios), list(STRIDES), legacy=True
        )
        self.coder = DeltaBoxCoder(legacy=True)
        self.positive_iou = float(config.positive_iou)
        self.ohem_negatives = int(config.ohem_negatives)
        self.cls_weight = float(config.cls_loss_weight)
        self.beta = 1.0 / float(config.smooth_l1_sigma) ** 2

    def forward(self, outputs: Dict[str, List[Tensor]], targets: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        """The three losses.

        Args:
            outputs: the training outputs of :class:`~pysalient.models.s4net.model.S4Net`.
            targets: the batch's targets (``boxes`` with exclusive right / bottom edges, ``labels``).

        Returns:
            ``loss_cls``, ``loss_box`` and ``loss_seg``, float32 scalars.
        """
        if "seg_logits" not in outputs:
            raise ValueError("S4NetCriterion needs the training outputs of S4Net: call network(images, targets)")
        logits_levels, deltas_levels = outputs["cls_logits"], outputs["bbox_deltas"]
        anchors = self.anchors(logits_levels)
        counts = [level.shape[0] for level in anchors]
        all_anchors = torch.cat(anchors)
        logits = flatten_anchor_outputs(logits_levels, self.num_logits).float()  # [B, N, K]
        deltas = flatten_anchor_outputs(deltas_levels, 4).float()  # [B, N, 4]
        loss_cls = logits.sum() * 0.0
        loss_box = deltas.sum() * 0.0
        for image, target in enumerate(targets):
            gt_boxes = inclusive_boxes(target["boxes"].to(all_anchors))
            classes, positive, box_targets = anchor_targets(
                all_anchors, gt_boxes, target["labels"], self.positive_iou, self.coder
            )
            cross_entropy = F.cross_entropy(logits[image], classes, reduction="none")
            box_losses = smooth_l1_loss(deltas[image], box_targets, self.beta).sum(dim=1)
            for level_ce, level_positive, level_box in zip(
                cross_entropy.split(counts), positive.split(counts), box_losses.split(counts)
            ):
                num_positive = level_positive.sum()
                positives = num_positive.clamp(min=1).float()
                positive_term = (level_ce * level_positive).sum() / positives
                negative_term = hardest_negatives_loss(level_ce, ~level_positive, self.ohem_negatives)
                loss_cls = loss_cls + self.cls_weight * (positive_term + negative_term)
                loss_box = loss_box + (level_box * level_positive).sum() / positives / 4.0
        batch = float(max(len(targets), 1))
        return {"loss_cls": loss_cls / batch, "loss_box": loss_box / batch, "loss_seg": self.seg_loss(outputs)}

    def seg_loss(self, outputs: Dict[str, List[Tensor]]) -> Tensor:
        """Cross-entropy of the RoIs' segmentation logits over the cells of their boxes."""
        seg_logits = outputs["seg_logits"][0].float()
        if seg_logits.shape[0] == 0:
            return seg_logits.sum() * 0.0
        map_hw = (int(seg_logits.shape[-2]), int(seg_logits.shape[-1]))
        weights = box_cell_weights(outputs["seg_rois"][0], map_hw, 1.0 / SEGMENTATION_STRIDE)
        cross_entropy = F.cross_entropy(seg_logits, outputs["seg_targets"][0].long(), reduction="none")
        return (cross_entropy * weights).sum() / weights.sum().clamp(min=1.0)


def build_criterion(config: S4NetConfig) -> S4NetCriterion:
    """The family's ``build_criterion`` hook."""
    return S4NetCriterion(config)
