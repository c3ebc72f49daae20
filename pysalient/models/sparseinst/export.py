"""The SparseInst piece of the export contract (:mod:`pysalient.export.contract`): network + post-processing.

The shared contract resizes, normalises and pads the image; :class:`SparseInstDetector` runs the network on the
padded batch and :func:`~pysalient.models.sparseinst.postprocess.postprocess_single` (the same function eager
``predict`` uses) with thresholds fixed at export time, so an exported model returns what eager ``predict`` does.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from pysalient.export.contract import ExportPieces
from pysalient.models.sparseinst.config import SparseInstConfig
from pysalient.models.sparseinst.postprocess import postprocess_single


class SparseInstDetector(nn.Module):
    """SparseInst network + post-processing for ONE padded image, scriptable and exportable.

    Args:
        network: a :class:`~pysalient.models.sparseinst.SparseInst` (float32 or float16 parameters).
        conf: keep queries whose score is strictly above it (before mask rescoring, as eager ``predict``).
        mask_threshold: binarisation threshold of mask probabilities.
        max_det: at most this many detections (-1: all).
    """

    def __init__(self, network: nn.Module, conf: float, mask_threshold: float, max_det: int) -> None:
        super().__init__()
        self.network = network
        self.conf = float(conf)
        self.mask_threshold = float(mask_threshold)
        self.max_det = int(max_det)

    def forward(
        self, batch: Tensor, image_hw: List[int], output_hw: List[int]
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detects the instances of one image.

        Args:
            batch: [1, 3, Hp, Wp] normalised, zero-padded image in the network's dtype.
            image_hw: (h, w) of the resized image inside the padding.
            output_hw: (H, W) of the returned masks (the input image size).

        Returns:
            boxes float32 [K, 4], scores float32 [K], labels int64 [K], masks uint8 [K, H, W], by decreasing score.
        """
        outputs = self.network(batch)
        # Scores are computed in float32 whatever the network dtype, so fp16 exports keep float32 outputs and the
        # class threshold is compared at the same precision as in eager predict; mask logits stay in the network
        # dtype because upsample_masks computes in float32 internally.
        result = postprocess_single(
            outputs["pred_logits"][0].float(),
            outputs["pred_masks"][0],
            outputs["pred_scores"][0].float(),
            (batch.shape[2], batch.shape[3]),
            (image_hw[0], image_hw[1]),
            (output_hw[0], output_hw[1]),
            self.conf,
            self.mask_threshold,
            self.max_det,
            True,
        )
        return (
            result["boxes"].to(torch.float32),
            result["scores"].to(torch.float32),
            result["labels"],
            result["masks"].to(torch.uint8),
        )


def build_export_module(
    network: nn.Module,
    config: SparseInstConfig,
    imgsz: Optional[int] = None,
    conf: Optional[float] = None,
    max_det: Optional[int] = None,
) -> ExportPieces:
    """The SparseInst pieces of the export contract.

    Args:
        network: the SparseInst network to export (already in the export dtype and device).
        config: its config: channel order, normalisation, resize cap, padding and thresholds.
        imgsz: shortest side inside the graph; ``config.min_size_test`` when None.
        conf: score threshold inside the graph; ``config.cls_threshold`` when None.
        max_det: detections kept per image; ``config.max_det`` when None.

    Returns:
        An :class:`~pysalient.export.contract.ExportPieces`.
    """
    min_size = config.min_size_test if imgsz is None else int(imgsz)
    threshold = config.cls_threshold if conf is None else float(conf)
    kept = config.max_det if max_det is None else int(max_det)
    return ExportPieces(
        detector=SparseInstDetector(network, threshold, config.mask_threshold, kept),
        channel_order=config.input_format,
        pixel_mean=tuple(config.pixel_mean),
        pixel_std=tuple(config.pixel_std),
        min_size=min_size,
        max_size=config.max_size_test,  # eager predict keeps this cap whatever imgsz is
        size_divisibility=config.size_divisibility,
        conf=threshold,
        mask_threshold=config.mask_threshold,
        max_det=kept,
    )
