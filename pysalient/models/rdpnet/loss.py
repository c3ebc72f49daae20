"""RDPNet's training criterion: the FCOS losses plus the mask loss, each of weight 1 (the official total).

* ``loss_cls``, ``loss_reg``, ``loss_centerness``: :class:`pysalient.heads.FCOSLoss` (focal / (positives + images),
  centerness-weighted ``-log((I + 1) / (U + 1))``, centerness BCE), on the five levels with FCOS' size ranges;
* ``loss_mask``: binary cross-entropy with logits of the positive proposals' 32 x 32 mask logits (the channel of
  their class) against their targets, mean over every cell (:mod:`pysalient.models.rdpnet.targets`). A batch
  without positives gives 0.

All in float32 whatever the outputs' dtype (mixed precision).
"""

from __future__ import annotations

from typing import Dict, List

import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.heads.fcos_loss import FCOSLoss
from pysalient.models.rdpnet.config import RDPNetConfig
from pysalient.models.rdpnet.model import STRIDES


class RDPNetCriterion(nn.Module):
    """Losses of ``RDPNet(images, targets)``'s training outputs.

    Args:
        config: the architecture (number of classes).
    """

    def __init__(self, config: RDPNetConfig) -> None:
        super().__init__()
        self.fcos = FCOSLoss(STRIDES, config.num_classes, legacy=True)

    def forward(self, outputs: Dict[str, List[Tensor]], targets: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        """The four losses.

        Args:
            outputs: the training outputs of :class:`~pysalient.models.rdpnet.model.RDPNet` (``cls_logits``,
                ``bbox_reg``, ``centerness`` per level, ``mask_logits`` [P, 32, 32] and ``mask_targets``
                [P, 32, 32] as one-element lists).
            targets: the batch's targets (``boxes``, ``labels``).

        Returns:
            ``loss_cls``, ``loss_reg``, ``loss_centerness`` and ``loss_mask``, float32 scalars.
        """
        if "mask_logits" not in outputs:
            raise ValueError("RDPNetCriterion needs the training outputs of RDPNet: call network(images, targets)")
        losses = self.fcos(outputs["cls_logits"], outputs["bbox_reg"], outputs["centerness"], targets)
        mask_logits = outputs["mask_logits"][0].float()
        mask_targets = outputs["mask_targets"][0]
        if mask_logits.shape[0] == 0:
            losses["loss_mask"] = mask_logits.sum() * 0.0
        else:
            losses["loss_mask"] = F.binary_cross_entropy_with_logits(mask_logits, mask_targets)
        return losses


def build_criterion(config: RDPNetConfig) -> RDPNetCriterion:
    """The family's ``build_criterion`` hook."""
    return RDPNetCriterion(config)
