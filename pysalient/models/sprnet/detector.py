"""SPRNet inference: RetinaNet detections, then one reconstructed mask per kept detection, pasted into its box.

:class:`SPRNetDetector` is the family's detector of the contract (``FamilySpec.build_detector``): eager ``predict``
runs it on a padded batch and the exported graphs on a batch of one.

The paper decodes "the pixels with the highest 100 scores" and mentions no NMS; this follows the report's B22, the
standard RetinaNet post-processing (as keras-maskrcnn and detectron2): per level the candidates of a sigmoid class
probability above 0.05 (a level where none passes keeps its best, as RDPNet's FCOS, so that ``conf = 0`` always
returns detections; detectron2 returns none), at most 1000 of them; deltas decoded and boxes clipped to the image;
class-wise NMS at 0.5; 100 detections (:class:`pysalient.detection.AnchorPostProcessor`). Boxes narrower or lower
than one input pixel after clipping (anchors in the padding clip to such slivers) are dropped before NMS: they
cover no pixel centre and would paste empty masks (detectron2 drops only the empty ones, ``Boxes.nonempty()``).
``conf`` (the minimum score) then filters the detections, and only the survivors' pixels (the cell of the anchor
each detection comes from) go through the fusion and the decoder; the channel of the detection's class (B23) is
pasted as probabilities into its box at the output size with detectron2's paste (:func:`pysalient.ops.paste_masks`,
bilinear, ``>= 0.5``; B24).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient import ops
from pysalient.detection.anchor_postprocess import AnchorPostProcessor
from pysalient.detection.boxes import scale_boxes
from pysalient.models.family import InferenceSpec
from pysalient.models.sprnet.config import SPRNetConfig

Detections = Tuple[Tensor, Tensor, Tensor, Tensor]  # boxes f32 [K, 4], scores f32 [K], labels i64 [K], masks u8


class SPRNetDetector(nn.Module):
    """SPRNet network + post-processing + mask reconstruction, scriptable and exportable.

    Args:
        network: an :class:`~pysalient.models.sprnet.model.SPRNet`.
        config: candidate settings (score threshold, top-n per level).
        inference: NMS IoU, mask threshold and detection cap (its ``score_threshold`` is the callers' default).
    """

    def __init__(self, network: nn.Module, config: SPRNetConfig, inference: InferenceSpec) -> None:
        super().__init__()
        self.network = network
        nms_threshold = config.nms_threshold if inference.nms_threshold is None else inference.nms_threshold
        self.postprocess = AnchorPostProcessor(
            config.num_classes,
            score_mode="sigmoid",
            score_threshold=config.candidate_threshold,
            pre_nms_top_n=config.pre_nms_top_n,
            per_level=True,
            nms_threshold=nms_threshold,
            max_det=inference.max_det,
            legacy=False,
            min_size=1.0,
            keep_level_max=True,
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
            conf: float32 0-d tensor, minimum score of a returned instance.

        Returns:
            Per image: boxes float32 [K, 4] (x1, y1, x2, y2 in output pixels), scores float32 [K], labels int64 [K]
            (0-based) and masks uint8 [K, H, W], by decreasing score.
        """
        outputs = self.network(images)
        logits, deltas, features = outputs["cls_logits"], outputs["bbox_deltas"], outputs["features"]
        anchors = self.network.anchors(logits)
        detections = self.postprocess.detect_with_anchors(logits, deltas, anchors, image_sizes)
        kept: List[Tuple[Tensor, Tensor, Tensor]] = []
        batch: List[Tensor] = []
        rows: List[Tensor] = []
        for index, (boxes, scores, labels, anchor_rows) in enumerate(detections):
            passed = torch.nonzero(scores >= conf.to(scores.device, scores.dtype)).flatten()
            kept.append((boxes[passed], scores[passed], labels[passed]))
            rows.append(anchor_rows[passed])
            batch.append(torch.full_like(anchor_rows[passed], index))
        mask_logits = self.network.mask_logits(features, torch.cat(batch), torch.cat(rows))
        results: List[Detections] = []
        start = 0
        for index, (boxes, scores, labels) in enumerate(kept):
            count = boxes.shape[0]
            image_logits = mask_logits[start : start + count].float()
            start += count
            channel = labels[:, None, None, None].expand(count, 1, image_logits.shape[2], image_logits.shape[3])
            probabilities = torch.gather(image_logits, 1, channel)[:, 0].sigmoid()
            output_hw = output_sizes[index]
            output_boxes = scale_boxes(boxes, image_sizes[index], output_hw)
            masks = ops.paste_masks(probabilities, output_boxes, output_hw[0], output_hw[1], self.mask_threshold)
            results.append((output_boxes, scores.to(torch.float32), labels, masks.to(torch.uint8)))
        return results


def build_detector(network: nn.Module, config: SPRNetConfig, inference: InferenceSpec) -> SPRNetDetector:
    """The family's ``build_detector`` hook."""
    return SPRNetDetector(network, config, inference)
