"""Training losses of the FCOS head (the conference version, as RDPNet's maskrcnn-benchmark fork trains it).

* ``loss_cls``: sigmoid focal loss (alpha 0.25, gamma 2) of every (point, class) pair against one-hot targets of
  the positives, summed and divided by ``num_positives + num_images``;
* ``loss_reg``: IoU loss ``-log((I + 1) / (U + 1))`` of the positives' (l, t, r, b), weighted by their centerness
  targets (sum of weighted losses / sum of weights);
* ``loss_centerness``: binary cross-entropy of the centerness logits of the positives, mean over positives.

Targets come from :func:`pysalient.detection.fcos_targets.fcos_targets` (size ranges per level, smallest box
wins, no centre sampling). Without positives the regression and centerness losses are 0 (with gradients of 0, so
distributed training sees every parameter used). Losses are computed in float32 whatever the predictions' dtype.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.detection.fcos_targets import FCOS_SIZE_RANGES, centerness_targets, fcos_targets
from pysalient.detection.locations import locations
from pysalient.losses import iou_loss, sigmoid_focal_loss


def flatten_levels(predictions: List[Tensor]) -> Tensor:
    """Per-level maps [B, K, H_l, W_l] -> [B, sum_l H_l W_l, K], row-major within each level, levels in order."""
    return torch.cat(
        [level.permute(0, 2, 3, 1).reshape(level.shape[0], -1, level.shape[1]) for level in predictions], 1
    )


def _ltrb_as_boxes(distances: Tensor) -> Tensor:
    """(l, t, r, b) [P, 4] as the box (-l, -t, r, b) around its point: IoUs of boxes of one point are unchanged."""
    return torch.stack([-distances[:, 0], -distances[:, 1], distances[:, 2], distances[:, 3]], dim=1)


class FCOSLoss(nn.Module):
    """FCOS targets and losses of one batch.

    Args:
        strides: stride of each level (8, 16, 32, 64, 128).
        num_classes: foreground classes of the head.
        size_ranges: per-level ranges of ``max(l, t, r, b)`` (FCOS defaults).
        focal_alpha, focal_gamma: focal loss parameters.
        legacy: maskrcnn-benchmark's ``+1`` box areas when choosing among overlapping boxes.
    """

    def __init__(
        self,
        strides: Sequence[int],
        num_classes: int,
        size_ranges: Sequence[Tuple[float, float]] = FCOS_SIZE_RANGES,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        legacy: bool = True,
    ) -> None:
        super().__init__()
        if len(size_ranges) < len(strides):
            raise ValueError(f"FCOSLoss: {len(strides)} strides but {len(size_ranges)} size ranges")
        self.strides = [int(stride) for stride in strides]
        self.num_classes = int(num_classes)
        self.size_ranges = [(float(low), float(high)) for low, high in size_ranges]
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        self.legacy = bool(legacy)

    def targets(self, logits: List[Tensor], targets: List[Dict[str, Tensor]]) -> Tuple[Tensor, Tensor]:
        """Point labels int64 [B, N] (-1 background) and distance targets float32 [B, N, 4] of the batch."""
        points = locations(logits, self.strides)
        labels: List[Tensor] = []
        distances: List[Tensor] = []
        for target in targets:
            point_labels, point_distances, _ = fcos_targets(
                points, target["boxes"], target["labels"], self.size_ranges, self.legacy
            )
            labels.append(point_labels)
            distances.append(point_distances)
        return torch.stack(labels), torch.stack(distances)

    def forward(
        self,
        logits: List[Tensor],
        distances: List[Tensor],
        centerness: List[Tensor],
        targets: List[Dict[str, Tensor]],
    ) -> Dict[str, Tensor]:
        """The three FCOS losses.

        Args:
            logits: per level class logits [B, num_classes, H_l, W_l].
            distances: per level predicted (l, t, r, b) [B, 4, H_l, W_l] (positive, input pixels).
            centerness: per level centerness logits [B, 1, H_l, W_l].
            targets: per image ``boxes`` float [K, 4] and ``labels`` int64 [K] (0-based).

        Returns:
            ``loss_cls``, ``loss_reg`` and ``loss_centerness``, float32 scalars.
        """
        if len(targets) != logits[0].shape[0]:
            raise ValueError(f"FCOSLoss: {logits[0].shape[0]} images but {len(targets)} targets")
        point_labels, target_distances = self.targets(logits, targets)
        flat_logits = flatten_levels(logits).float()
        flat_distances = flatten_levels(distances).float()
        flat_centerness = flatten_levels(centerness).float()[..., 0]
        positive = point_labels >= 0
        num_positives = int(positive.sum())
        one_hot = torch.zeros_like(flat_logits)
        one_hot[positive, point_labels[positive]] = 1.0
        focal = sigmoid_focal_loss(flat_logits, one_hot, self.focal_alpha, self.focal_gamma)
        loss_cls = focal / float(num_positives + len(targets))
        if num_positives == 0:
            zero = flat_distances.sum() * 0.0 + flat_centerness.sum() * 0.0
            return {"loss_cls": loss_cls, "loss_reg": zero, "loss_centerness": zero.clone()}
        predicted = flat_distances[positive]
        wanted = target_distances[positive]
        weights = centerness_targets(wanted)
        ious = iou_loss(_ltrb_as_boxes(predicted), _ltrb_as_boxes(wanted), mode="log", smooth=1.0)
        loss_reg = (ious * weights).sum() / weights.sum()
        loss_centerness = F.binary_cross_entropy_with_logits(flat_centerness[positive], weights)
        return {"loss_cls": loss_cls, "loss_reg": loss_reg, "loss_centerness": loss_centerness}
