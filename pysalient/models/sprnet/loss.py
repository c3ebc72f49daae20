"""SPRNet's training criterion: RetinaNet's focal and smooth-L1 losses plus the on-class mask BCE (1 : 1 : 1, B15).

* ``loss_cls``: sigmoid focal loss (alpha 0.25, gamma 2) over every anchor that is not ignored, one-hot targets of
  the positives' classes; anchors are matched by IoU with negatives below 0.4, positives at or above 0.5, ignored
  between, plus each ground truth's best anchors (detectron2's low-quality matches, B28);
* ``loss_box``: smooth L1 (beta 0.1) of the positives' deltas (weights 1, 1, 1, 1; B27);

both summed and divided by ``max(1, positives of the batch)`` (averaged over distributed workers, as torchvision
and keras-retinanet normalise; detectron2 uses an exponential moving average of that count instead);

* ``loss_mask``: binary cross-entropy of the sampled pixels' 32 x 32 logits of their ground truth's class channel
  only (the paper's "on-class mask loss"), mean over pixels and cells; 0 when no pixel was sampled (B14).

All in float32 whatever the outputs' dtype (mixed precision).
"""

from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.detection.anchors import AnchorGenerator
from pysalient.detection.box_coder import DeltaBoxCoder
from pysalient.detection.boxes import box_iou
from pysalient.detection.matcher import IoUMatcher
from pysalient.heads.anchor_head import flatten_anchor_outputs
from pysalient.losses.box import smooth_l1_loss
from pysalient.losses.focal import sigmoid_focal_loss
from pysalient.losses.normalizer import mean_over_workers
from pysalient.models.sprnet.config import STRIDES, SPRNetConfig


def on_class_mask_loss(logits: Tensor, targets: Tensor, labels: Tensor) -> Tensor:
    """Mean BCE of ``logits`` [S, K, M, M] channel ``labels`` [S] against ``targets`` [S, M, M] (0 when S = 0)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    channel = labels[:, None, None, None].expand(-1, 1, logits.shape[2], logits.shape[3])
    chosen = torch.gather(logits.float(), 1, channel)[:, 0]
    return F.binary_cross_entropy_with_logits(chosen, targets.float(), reduction="mean")


class SPRNetCriterion(nn.Module):
    """Losses of ``SPRNet(images, targets)``'s training outputs.

    Args:
        config: the architecture (classes, anchors, loss hyper-parameters).
    """

    def __init__(self, config: SPRNetConfig) -> None:
        super().__init__()
        self.num_classes = int(config.num_classes)
        self.anchors = AnchorGenerator(
            config.level_anchor_sizes(), list(config.anchor_ratios), list(STRIDES), offset=config.anchor_offset
        )
        self.matcher = IoUMatcher(
            list(config.iou_thresholds), [0, -1, 1], allow_low_quality_matches=config.allow_low_quality_matches
        )
        self.coder = DeltaBoxCoder()
        self.alpha = float(config.focal_alpha)
        self.gamma = float(config.focal_gamma)
        self.beta = float(config.smooth_l1_beta)
        self.weights = {
            "loss_cls": float(config.cls_loss_weight),
            "loss_box": float(config.box_loss_weight),
            "loss_mask": float(config.mask_loss_weight),
        }

    def forward(self, outputs: Dict[str, List[Tensor]], targets: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        """The three weighted losses.

        Args:
            outputs: the training outputs of :class:`~pysalient.models.sprnet.model.SPRNet`.
            targets: the batch's targets (``boxes`` with exclusive right / bottom edges, ``labels`` 0-based).

        Returns:
            ``loss_cls``, ``loss_box`` and ``loss_mask``, float32 scalars.
        """
        if "mask_logits" not in outputs:
            raise ValueError("SPRNetCriterion needs the training outputs of SPRNet: call network(images, targets)")
        logits_levels, deltas_levels = outputs["cls_logits"], outputs["bbox_deltas"]
        anchors = torch.cat(self.anchors(logits_levels))
        logits = flatten_anchor_outputs(logits_levels, self.num_classes).float()  # [B, N, K]
        deltas = flatten_anchor_outputs(deltas_levels, 4).float()  # [B, N, 4]
        focal = logits.sum() * 0.0
        box = deltas.sum() * 0.0
        positives = 0
        for image, target in enumerate(targets):
            gt_boxes = target["boxes"].to(anchors)
            matches, match_labels = self.matcher(box_iou(gt_boxes, anchors))
            positive = match_labels == 1
            valid = match_labels >= 0
            classes = torch.zeros_like(logits[image])
            if gt_boxes.shape[0] > 0:
                positive_rows = torch.nonzero(positive).flatten()
                classes[positive_rows, target["labels"].to(torch.int64)[matches[positive_rows]]] = 1.0
                box_targets = self.coder.encode(anchors[positive_rows], gt_boxes[matches[positive_rows]])
                box = box + smooth_l1_loss(deltas[image][positive_rows], box_targets, self.beta).sum()
            focal = focal + sigmoid_focal_loss(logits[image][valid], classes[valid], self.alpha, self.gamma)
            positives += int(positive.sum())
        normalizer = mean_over_workers(positives, logits.device)
        mask = on_class_mask_loss(outputs["mask_logits"][0], outputs["mask_targets"][0], outputs["mask_labels"][0])
        losses = {"loss_cls": focal / normalizer, "loss_box": box / normalizer, "loss_mask": mask}
        return {name: value * self.weights[name] for name, value in losses.items()}


def build_criterion(config: SPRNetConfig) -> SPRNetCriterion:
    """The family's ``build_criterion`` hook."""
    return SPRNetCriterion(config)
