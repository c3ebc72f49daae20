"""Training criterion of SparseInst (Cheng et al., CVPR'22, Sec. 3.3-3.4): matching, then four losses.

After the bipartite matching (:class:`~pysalient.models.sparseinst.matcher.SparseInstMatcher`):

* ``loss_ce``: sigmoid focal loss (alpha 0.25, gamma 2) on the class logits of ALL queries, one-hot targets
  for matched queries and all-zero targets (background) for the others, summed / number of instances, x 2;
* ``loss_dice``: dice loss ``1 - 2<s, t> / (|s|^2 + |t|^2 + 1e-4)`` of matched masks, summed / number of
  instances, x 2;
* ``loss_mask``: pixel binary cross-entropy of matched masks, mean over their pixels, x 5;
* ``loss_objectness``: binary cross-entropy of matched objectness logits against the (detached) IoU of the
  binarised masks (prediction sigmoid >= 0.4, target > 0.5), mean over matched queries, x 1.

Masks are compared at stride 4 against bilinearly resized targets; "number of instances" is max(total
targets, 1), averaged over distributed workers. Weights and exponents are those of the official
``Base-SparseInst.yaml`` and live in :class:`SparseInstLossConfig` (the architecture config,
:class:`~pysalient.models.sparseinst.config.SparseInstConfig`, holds no training hyper-parameters).

Differences from the official ``SparseInstCriterion`` (hustvl/SparseInst ``sparseinst/loss.py``), marked
``DEVIATION`` below: a batch without instances trains (the official one crashes indexing with float
matches); targets are resized once and shared with the matcher; losses are computed in float32 whatever the
prediction dtype (mixed precision); the matcher's extra checks (see its module docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.losses import dice_loss, mean_over_workers, sigmoid_focal_loss
from pysalient.models.sparseinst.matcher import Matches, SparseInstMatcher, resize_target_masks

IOU_PRED_THRESHOLD = 0.4  # official compute_mask_iou: sigmoid(pred) >= 0.4 counts as foreground
IOU_TARGET_THRESHOLD = 0.5  # ... and a resized target > 0.5
DICE_EPS = 1e-4  # official dice_loss: added to the denominator after both squared norms
IOU_EPS = 1e-6


@dataclass(frozen=True)
class SparseInstLossConfig:
    """Loss weights and matching exponents (official ``MODEL.SPARSE_INST.LOSS`` / ``MATCHER`` defaults).

    Attributes:
        class_weight: weight of ``loss_ce``.
        mask_dice_weight: weight of ``loss_dice``.
        mask_pixel_weight: weight of ``loss_mask`` (pixel BCE).
        objectness_weight: weight of ``loss_objectness``.
        focal_alpha, focal_gamma: focal loss parameters (Lin et al., ICCV'17); alpha < 0 disables balancing.
        matcher_alpha, matcher_beta: exponents of the dice and class terms of the matching score.
    """

    class_weight: float = 2.0
    mask_dice_weight: float = 2.0
    mask_pixel_weight: float = 5.0
    objectness_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    matcher_alpha: float = 0.8
    matcher_beta: float = 0.2

    def __post_init__(self) -> None:
        names = ("class_weight", "mask_dice_weight", "mask_pixel_weight", "objectness_weight", "focal_gamma")
        negative = [name for name in names + ("matcher_alpha", "matcher_beta") if getattr(self, name) < 0]
        if negative or self.focal_alpha > 1:
            raise ValueError(f"invalid SparseInstLossConfig: {negative} must be >= 0 and focal_alpha <= 1")


class SparseInstCriterion(nn.Module):
    """Matches predictions to targets and returns the weighted SparseInst losses.

    Args:
        num_classes: C, class logits per query.
        config: weights and exponents; the official defaults when omitted.
    """

    def __init__(self, num_classes: int, config: Optional[SparseInstLossConfig] = None) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.config = config if config is not None else SparseInstLossConfig()
        self.matcher = SparseInstMatcher(self.config.matcher_alpha, self.config.matcher_beta)

    def forward(
        self,
        outputs: Dict[str, Tensor],
        targets: Sequence[Dict[str, Tensor]],
        input_hw: Optional[Tuple[int, int]] = None,
    ) -> Dict[str, Tensor]:
        """Computes the losses of one batch.

        Args:
            outputs: the model's ``pred_logits`` [B, N, C], ``pred_masks`` [B, N, h, w] (mask logits at stride 4
                of the padded batch) and ``pred_scores`` [B, N, 1] (objectness logits).
            targets: B dicts with ``labels`` int64 [K_i] in [0, C) and ``masks`` [K_i, H_i, W_i] (bool, uint8 or
                float) in the padded input frame: either at the padded size or at the image size, top-left
                aligned as the image is in the padded batch (the official detectron2 bitmasks).
            input_hw: (H, W) of the padded input batch; defaults to 4 x (h, w).

        Returns:
            ``loss_ce``, ``loss_dice``, ``loss_mask``, ``loss_objectness``: weighted scalar float32 tensors, all
            connected to the graph of the predictions (zero-valued when the batch has no instance).

        Raises:
            ValueError: from the matcher, for non-finite predictions or bad labels (the message names the image).
        """
        if len(targets) != outputs["pred_logits"].shape[0]:
            raise ValueError(f"got {len(targets)} targets for a batch of {outputs['pred_logits'].shape[0]} images")
        pred_masks = outputs["pred_masks"]
        device = pred_masks.device
        labels = [target["labels"].to(device=device, dtype=torch.int64) for target in targets]
        with torch.no_grad():
            # DEVIATION: resized once here and shared with the matcher (the official code resizes twice).
            target_masks = resize_target_masks(
                [target["masks"].to(device) for target in targets], tuple(pred_masks.shape[-2:]), input_hw
            )
        matches = self.matcher.match(outputs["pred_logits"], pred_masks, labels, target_masks)
        counts = [int(image_labels.shape[0]) for image_labels in labels]
        num_instances = mean_over_workers(sum(counts), device)
        batch_index, pred_index, target_index = _matched_indices(matches, counts, device)
        matched_labels = torch.cat(labels)[target_index] if labels else target_index
        losses = {
            "loss_ce": self.config.class_weight
            * self.class_loss(outputs["pred_logits"], batch_index, pred_index, matched_labels, num_instances)
        }
        dice, pixel, objectness = self.mask_losses(
            pred_masks, outputs["pred_scores"], target_masks, batch_index, pred_index, target_index, num_instances
        )
        losses["loss_dice"] = self.config.mask_dice_weight * dice
        losses["loss_mask"] = self.config.mask_pixel_weight * pixel
        losses["loss_objectness"] = self.config.objectness_weight * objectness
        return losses

    def class_loss(
        self, pred_logits: Tensor, batch_index: Tensor, pred_index: Tensor, matched_labels: Tensor, num_instances: float
    ) -> Tensor:
        """Unweighted focal loss over all B x N x C logits / ``num_instances``; unmatched queries learn background.

        Args:
            pred_logits: [B, N, C] class logits.
            batch_index, pred_index: [M] image and query of each matched prediction.
            matched_labels: [M] class of the target each one is matched to.
            num_instances: normaliser (see :func:`pysalient.losses.mean_over_workers`).
        """
        logits = pred_logits.float()  # DEVIATION: float32 under mixed precision
        one_hot = torch.zeros_like(logits)
        one_hot[batch_index, pred_index, matched_labels] = 1.0
        return sigmoid_focal_loss(logits, one_hot, self.config.focal_alpha, self.config.focal_gamma) / num_instances

    def mask_losses(
        self,
        pred_masks: Tensor,
        pred_scores: Tensor,
        target_masks: Tensor,
        batch_index: Tensor,
        pred_index: Tensor,
        target_index: Tensor,
        num_instances: float,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Unweighted dice, pixel BCE and IoU-objectness losses of the M matched predictions.

        Args:
            pred_masks: [B, N, h, w] mask logits.
            pred_scores: [B, N, 1] objectness logits.
            target_masks: [sum K_i, h, w] resized targets in [0, 1].
            batch_index, pred_index: [M] image and query of each matched prediction.
            target_index: [M] row of ``target_masks`` each one is matched to.
            num_instances: normaliser of the dice loss.

        Returns:
            (dice, pixel, objectness) scalars; zeros connected to ``pred_masks`` / ``pred_scores`` when M = 0.
        """
        if batch_index.numel() == 0:
            # DEVIATION: the official criterion crashes before reaching its own early return for this case.
            # Multiplying by zero keeps every parameter in the graph, so DDP and backward() still work.
            mask_zero = pred_masks.float().sum() * 0.0
            return mask_zero, mask_zero.clone(), pred_scores.float().sum() * 0.0
        masks = pred_masks[batch_index, pred_index].flatten(1).float()  # [M, h*w]
        targets = target_masks[target_index].flatten(1)
        dice = dice_loss(masks, targets, DICE_EPS).sum() / num_instances
        pixel = F.binary_cross_entropy_with_logits(masks, targets, reduction="mean")
        with torch.no_grad():
            ious = mask_iou(masks, targets)
        scores = pred_scores[batch_index, pred_index, 0].float()
        objectness = F.binary_cross_entropy_with_logits(scores, ious, reduction="mean")
        return dice, pixel, objectness


def mask_iou(mask_logits: Tensor, targets: Tensor) -> Tensor:
    """IoU of binarised masks, the objectness target (official ``compute_mask_iou``).

    Args:
        mask_logits: [M, P] predicted mask logits.
        targets: [M, P] soft targets in [0, 1].

    Returns:
        [M] IoU of ``sigmoid(mask_logits) >= 0.4`` with ``targets > 0.5``; 0 when both are empty.
    """
    predicted = (mask_logits.sigmoid() >= IOU_PRED_THRESHOLD).float()
    target = (targets > IOU_TARGET_THRESHOLD).float()
    intersection = (predicted * target).sum(-1)
    union = predicted.sum(-1) + target.sum(-1) - intersection
    return intersection / (union + IOU_EPS)


def _matched_indices(matches: Matches, counts: List[int], device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """Flattens per-image matches into [M] (image, query, row of the batch's target list), one copy to ``device``."""
    columns: List[Tensor] = []
    offset = 0
    for image, ((rows, cols), count) in enumerate(zip(matches, counts)):
        columns.append(torch.stack([torch.full_like(rows, image), rows, cols + offset]))
        offset += count
    flat = torch.cat(columns, dim=1) if columns else torch.zeros((3, 0), dtype=torch.int64)
    flat = flat.to(device)
    return flat[0], flat[1], flat[2]
