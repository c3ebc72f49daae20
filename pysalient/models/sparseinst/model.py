"""SparseInst: sparse instance activation for real-time instance segmentation (Cheng et al., CVPR'22).

backbone (C3-C5) -> instance context encoder (stride 8) -> IAM decoder -> N (class, objectness, mask)
predictions, no NMS. The module tree and parameter names are the official ``SparseInst`` meta-architecture's
(``backbone.*``, ``encoder.*``, ``decoder.*``), so ``load_state_dict`` takes an official state dict as is
(see :mod:`pysalient.models.sparseinst.convert` for detectron2 checkpoint files).

Differences from the official module: the forward takes an already normalised and padded batch (the
official one takes detectron2 dicts and also runs the loss or the post-processing); pre-processing is the shared
:mod:`pysalient.inputs` pipeline, post-processing the family detector (:mod:`.detector`) and the loss a separate
module (:mod:`.loss`).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from torch import Tensor, nn

from pysalient.backbones import build_backbone
from pysalient.models.sparseinst.config import SparseInstConfig
from pysalient.models.sparseinst.decoder import DECODERS
from pysalient.models.sparseinst.encoder import InstanceContextEncoder


class SparseInst(nn.Module):
    """The SparseInst network: image batch in, raw per-query predictions out.

    Args:
        config: architecture; see :class:`SparseInstConfig`.
    """

    def __init__(self, config: SparseInstConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, **config.backbone_kwargs())
        in_channels = [self.backbone.out_channels[name] for name in ("res3", "res4", "res5")]
        self.encoder = InstanceContextEncoder(
            in_channels,
            channels=config.encoder_channels,
            ppm_channels=config.resolved_ppm_channels,
            ppm_sizes=config.ppm_sizes,
        )
        self.decoder = DECODERS[config.decoder](
            config.encoder_channels,
            num_queries=config.num_queries,
            num_classes=config.num_classes,
            kernel_dim=config.kernel_dim,
            inst_convs=config.inst_convs,
            inst_dim=config.inst_dim,
            mask_convs=config.mask_convs,
            mask_dim=config.mask_dim,
            groups=config.groups,
            scale_factor=config.scale_factor,
        )

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict[str, Tensor]:
        """Runs the network on a normalised, zero-padded batch.

        Args:
            images: [B, 3, H, W] from :mod:`pysalient.inputs` (``config.input_spec()``); H and W multiples of
                ``size_divisibility`` (other sizes run, but the official model was only ever fed those).
            targets: training targets (see :class:`~pysalient.models.registry.FamilySpec`). SparseInst samples
                nothing from them (the bipartite matching is in the criterion), so they are accepted and unused.

        Returns:
            ``pred_logits`` [B, N, K] class logits, ``pred_masks`` [B, N, H/4, W/4] mask logits over the whole
            padded area, ``pred_scores`` [B, N, 1] objectness logits.
        """
        features = self.backbone(images)
        return self.decoder(self.encoder(features))


def build_sparseinst(config: SparseInstConfig) -> SparseInst:
    """A randomly initialised :class:`SparseInst` (official initialisation) for ``config``."""
    return SparseInst(config)
