"""InstanceFCN's training criterion (the paper's Eq. 1 with the report's A6 / A7 normalisation).

* ``loss_objectness``: binary cross-entropy of the sampled windows' objectness logits (the 256 per image, 1:1),
  mean over windows (and classes);
* ``loss_mask``: binary cross-entropy of the positive windows' assembled m x m logits against their targets, mean
  over the positives' on-map cells (cells off the map weigh 0); 0 when no window was positive.

Weights 1 : 1. All in float32 whatever the outputs' dtype (mixed precision).
"""

from __future__ import annotations

from typing import Dict, List

import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.models.instancefcn.config import InstanceFCNConfig


class InstanceFCNCriterion(nn.Module):
    """Losses of ``InstanceFCN(images, targets)``'s training outputs.

    Args:
        config: the loss weights.
    """

    def __init__(self, config: InstanceFCNConfig) -> None:
        super().__init__()
        self.weights = {
            "loss_objectness": float(config.objectness_loss_weight),
            "loss_mask": float(config.mask_loss_weight),
        }

    def forward(self, outputs: Dict[str, List[Tensor]], targets: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        """The two weighted losses.

        Args:
            outputs: the training outputs of :class:`~pysalient.models.instancefcn.model.InstanceFCN`.
            targets: the batch's targets (unused: the network sampled and labelled its windows).

        Returns:
            ``loss_objectness`` and ``loss_mask``, float32 scalars.
        """
        if "window_logits" not in outputs:
            raise ValueError(
                "InstanceFCNCriterion needs the training outputs of InstanceFCN: call network(images, targets)"
            )
        window_logits = outputs["window_logits"][0].float()
        if window_logits.numel():
            objectness = F.binary_cross_entropy_with_logits(window_logits, outputs["window_targets"][0].float())
        else:
            objectness = outputs["objectness"][0].float().sum() * 0.0
        mask_logits = outputs["mask_logits"][0].float()
        weights = outputs["mask_weights"][0]
        if mask_logits.shape[0]:
            per_cell = F.binary_cross_entropy_with_logits(
                mask_logits, outputs["mask_targets"][0].float(), reduction="none"
            )
            mask = (per_cell * weights).sum() / weights.sum().clamp(min=1.0)
        else:
            mask = outputs["score_maps"][0].float().sum() * 0.0
        losses = {"loss_objectness": objectness, "loss_mask": mask}
        return {name: value * self.weights[name] for name, value in losses.items()}


def build_criterion(config: InstanceFCNConfig) -> InstanceFCNCriterion:
    """The family's ``build_criterion`` hook."""
    return InstanceFCNCriterion(config)
