"""SparseInst: sparse instance activation for real-time instance segmentation (Cheng et al., CVPR'22).

backbone (C3-C5) -> instance context encoder (stride 8) -> IAM decoder -> N (class, objectness, mask)
predictions, no NMS. The module tree and parameter names are the official ``SparseInst`` meta-architecture's
(``backbone.*``, ``encoder.*``, ``decoder.*``), so ``load_state_dict`` takes an official state dict as is
(see :mod:`pysalient.models.sparseinst.convert` for detectron2 checkpoint files).

Differences from the official module: the forward takes an already normalised and padded batch (the
official one takes detectron2 dicts and also runs the loss or the post-processing); pre- and
post-processing live in :mod:`.preprocess` and :mod:`.postprocess`; the loss is a separate module.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from pysalient.backbones import build_backbone
from pysalient.models.sparseinst.config import SparseInstConfig
from pysalient.models.sparseinst.decoder import DECODERS
from pysalient.models.sparseinst.encoder import InstanceContextEncoder


class SparseInst(nn.Module):
    """The SparseInst network: image batch in, raw per-query predictions out.

    Args:
        config: architecture; see :class:`SparseInstConfig`.

    Attributes:
        pixel_mean, pixel_std: [3, 1, 1] normalisation in ``config.input_format`` order, 0-255 range.
            Non-persistent buffers (the official state dict has none) that follow ``.to(device)``.
    """

    def __init__(self, config: SparseInstConfig) -> None:
        super().__init__()
        self.config = config
        self.size_divisibility = config.size_divisibility
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
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).reshape(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).reshape(3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        """Runs the network on a normalised, zero-padded batch.

        Args:
            images: [B, 3, H, W], normalised with ``pixel_mean`` / ``pixel_std``; H and W multiples of
                ``size_divisibility`` (other sizes run, but the official model was only ever fed those).

        Returns:
            ``pred_logits`` [B, N, K] class logits, ``pred_masks`` [B, N, H/4, W/4] mask logits over the whole
            padded area, ``pred_scores`` [B, N, 1] objectness logits.
        """
        features = self.backbone(images)
        return self.decoder(self.encoder(features))

    def normalize(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] or [3, H, W] float pixels (0-255, ``input_format`` order) -> normalised, same shape."""
        return (images - self.pixel_mean) / self.pixel_std


def build_sparseinst(config: SparseInstConfig) -> SparseInst:
    """A randomly initialised :class:`SparseInst` (official initialisation) for ``config``."""
    return SparseInst(config)
