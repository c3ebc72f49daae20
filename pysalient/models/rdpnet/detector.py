"""RDPNet inference: FCOS detections, masks of the detections, pasted at the output size.

:class:`RDPNetDetector` is the family's detector of the contract (``FamilySpec.build_detector``): eager
``predict`` runs it on a padded batch and the exported graphs on a batch of one.

Follows the official test path (RDPNET.md sections 5 and 6): FCOS post-processing with maskrcnn-benchmark's
conventions (:class:`pysalient.detection.FCOSPostProcessor` with ``legacy=True``: candidates above 0.05 with the
per-level fallback, top 1000 per level, decoding, clipping to the valid image minus one pixel, +1 NMS at IoU >= 0.6,
the kthvalue top-100 rule), the mask decoder on the detections in resized-image coordinates, boxes rescaled to the
output frame by float32 ratios, masks pasted with the official ``Masker(0.5, padding=1)``
(``ops.paste_masks(..., legacy=True, padding=1)``).

Beyond the official code: ``conf`` (the minimum final score) is applied after post-processing and before the mask
decoder (RoIs are decoded independently, so the kept masks are unchanged and a high ``conf`` costs nothing), results
are sorted by decreasing score (stable: ties keep the official order), labels are 0-based, and the fallback maximum
of the candidate rule is per image (the official one spans the batch).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient import ops
from pysalient.detection.boxes import scale_boxes
from pysalient.detection.postprocess import FCOSPostProcessor
from pysalient.models.family import InferenceSpec
from pysalient.models.rdpnet.config import RDPNetConfig

Detections = Tuple[Tensor, Tensor, Tensor, Tensor]  # boxes f32 [K, 4], scores f32 [K], labels i64 [K], masks u8


class RDPNetDetector(nn.Module):
    """RDPNet network + post-processing, scriptable and exportable.

    Args:
        network: an :class:`~pysalient.models.rdpnet.model.RDPNet`.
        config: candidate threshold and per-level top-k.
        inference: NMS IoU, mask threshold and detection cap (its ``score_threshold`` is the callers' default).
    """

    def __init__(self, network: nn.Module, config: RDPNetConfig, inference: InferenceSpec) -> None:
        super().__init__()
        self.network = network
        nms_threshold = config.nms_threshold if inference.nms_threshold is None else inference.nms_threshold
        self.postprocess = FCOSPostProcessor(
            list(network.strides),
            score_threshold=config.candidate_threshold,
            pre_nms_top_n=config.pre_nms_top_n,
            nms_threshold=nms_threshold,
            max_det=inference.max_det,
            legacy=True,
            max_det_rule="kthvalue",
        )
        self.mask_threshold = float(inference.mask_threshold)

    def forward(
        self, images: Tensor, image_sizes: List[List[int]], output_sizes: List[List[int]], conf: Tensor
    ) -> List[Detections]:
        """Detects the instances of a padded batch.

        Args:
            images: [B, 3, Hp, Wp] normalised, zero-padded images in the network's dtype.
            image_sizes: per image, ``[h, w]`` of the resized image inside the padding.
            output_sizes: per image, ``[H, W]`` of the returned masks (normally the original image size).
            conf: float32 0-d tensor, minimum final score of a returned instance.

        Returns:
            Per image: boxes float32 [K, 4] (x1, y1, x2, y2 in output pixels), scores float32 [K], labels int64 [K]
            (0-based) and masks uint8 [K, H, W], by decreasing score.
        """
        outputs = self.network(images)
        detections = self.postprocess(outputs["cls_logits"], outputs["bbox_reg"], outputs["centerness"], image_sizes)
        kept: List[Tuple[Tensor, Tensor, Tensor]] = []
        rois: List[Tensor] = []
        for index, (boxes, scores, labels) in enumerate(detections):
            passed = torch.nonzero(scores >= conf.to(scores.device, scores.dtype)).flatten()
            order = passed[torch.sort(scores[passed], descending=True, stable=True).indices]
            boxes, scores, labels = boxes[order], scores[order], labels[order]
            kept.append((boxes, scores, labels))
            rois.append(torch.cat([torch.full_like(boxes[:, :1], float(index)), boxes], dim=1))
        features = outputs["features"]
        all_rois = torch.cat(rois).to(features[0].dtype)
        logits = self.network.mask_head(features, all_rois)
        results: List[Detections] = []
        start = 0
        for index, (boxes, scores, labels) in enumerate(kept):
            count = boxes.shape[0]
            image_logits = logits[start : start + count]
            start += count
            # The channel of each detection's class (channel 0 is the official, untrained background).
            channel = (labels + 1)[:, None, None, None].expand(count, 1, image_logits.shape[2], image_logits.shape[3])
            probabilities = torch.gather(image_logits.float(), 1, channel)[:, 0].sigmoid()
            output_hw = output_sizes[index]
            output_boxes = scale_boxes(boxes, image_sizes[index], output_hw)
            masks = ops.paste_masks(
                probabilities, output_boxes, output_hw[0], output_hw[1], self.mask_threshold, legacy=True, padding=1
            )
            results.append((output_boxes, scores.to(torch.float32), labels, masks.to(torch.uint8)))
        return results


def build_detector(network: nn.Module, config: RDPNetConfig, inference: InferenceSpec) -> RDPNetDetector:
    """The family's ``build_detector`` hook."""
    return RDPNetDetector(network, config, inference)
