"""S4Net inference: anchor proposals as the final detections, their segmentation, masks at the output size.

:class:`S4NetDetector` is the family's detector of the contract (``FamilySpec.build_detector``): eager ``predict``
runs it on a padded batch and the exported graphs on a batch of one.

Follows the released test path: foreground probability ``1 - p_background`` of every anchor, deltas decoded (``dw``,
``dh`` clamped at 20) and clipped to the image, the top 5000 over all levels, NMS at 0.4 (``+1`` sizes), 20 boxes,
no score threshold (:class:`pysalient.detection.AnchorPostProcessor`); the segmentation branch on those boxes; the
foreground probability of each RoI over the whole stride-8 map resized to the original image, multiplied by the box
rectangle in original pixels (``int(x1) <= x < int(x2) + 1``) and compared with 0.5
(:func:`pysalient.ops.resize_masks_in_boxes`, fused: no full-size float map).

Differences from the released code: the resize is bilinear (align_corners=False, one interpolation from the part of
the map that covers the resized image), where the release uses OpenCV's Lanczos-4; both interpolate the same 40 x 40
probabilities, Lanczos with a wider, sharper kernel that overshoots near edges (benchmarks/RESULTS.md measures the
AP difference on SynthSIS). Boxes inverted by the decoding (sizes below one pixel) are dropped before NMS; the
release keeps them. NMS suppresses at IoU >= 0.4 (TensorFlow's at > 0.4). ``conf`` (the minimum score) is
applied to the 20 boxes before the segmentation branch (each RoI is segmented independently, so kept masks are
unchanged and a high ``conf`` costs nothing), labels are 0-based, and returned boxes have exclusive right and bottom
edges (the inclusive pixel box plus one, clipped to the image) like every pysalient family.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient import ops
from pysalient.detection.anchor_postprocess import AnchorPostProcessor
from pysalient.detection.boxes import scale_boxes
from pysalient.models.family import InferenceSpec
from pysalient.models.s4net.config import S4NetConfig

Detections = Tuple[Tensor, Tensor, Tensor, Tensor]  # boxes f32 [K, 4], scores f32 [K], labels i64 [K], masks u8


def exclusive_boxes(boxes: Tensor, output_hw: List[int]) -> Tensor:
    """Inclusive pixel boxes [K, 4] -> right / bottom edges plus one, clipped to ``output_hw`` (h, w)."""
    x2 = torch.clamp(boxes[:, 2] + 1, max=output_hw[1])
    y2 = torch.clamp(boxes[:, 3] + 1, max=output_hw[0])
    return torch.stack([boxes[:, 0], boxes[:, 1], x2, y2], dim=1)


class S4NetDetector(nn.Module):
    """S4Net network + post-processing, scriptable and exportable.

    Args:
        network: an :class:`~pysalient.models.s4net.model.S4Net`.
        config: proposal settings (top-n, the box clamp).
        inference: NMS IoU, mask threshold and box cap (its ``score_threshold`` is the callers' default).
    """

    def __init__(self, network: nn.Module, config: S4NetConfig, inference: InferenceSpec) -> None:
        super().__init__()
        self.network = network
        nms_threshold = config.nms_threshold if inference.nms_threshold is None else inference.nms_threshold
        self.postprocess = AnchorPostProcessor(
            config.num_classes + 1,
            score_mode="softmax",
            score_threshold=-1.0,
            pre_nms_top_n=config.pre_nms_top_n,
            per_level=False,
            nms_threshold=nms_threshold,
            max_det=inference.max_det,
            scale_clamp=config.scale_clamp,
            legacy=True,
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
            Per image: boxes float32 [K, 4] (x1, y1, x2, y2 in output pixels, right / bottom exclusive), scores
            float32 [K], labels int64 [K] (0-based) and masks uint8 [K, H, W], by decreasing score.
        """
        outputs = self.network(images)
        logits, deltas = outputs["cls_logits"], outputs["bbox_deltas"]
        anchors = self.network.anchors(logits)
        detections = self.postprocess(logits, deltas, anchors, image_sizes)
        kept: List[Tuple[Tensor, Tensor, Tensor]] = []
        rois: List[Tensor] = []
        for index, (boxes, scores, labels) in enumerate(detections):
            passed = torch.nonzero(scores >= conf.to(scores.device, scores.dtype)).flatten()
            boxes, scores, labels = boxes[passed], scores[passed], labels[passed]
            kept.append((boxes, scores, labels))
            rois.append(torch.cat([torch.full_like(boxes[:, :1], float(index)), boxes], dim=1))
        seg_features = outputs["seg_features"][0]
        seg_logits = self.network.segmentation(seg_features, torch.cat(rois).to(seg_features.dtype))
        foreground = torch.softmax(seg_logits.float(), dim=1)[:, 1]
        padded_hw = [int(images.shape[-2]), int(images.shape[-1])]
        results: List[Detections] = []
        start = 0
        for index, (boxes, scores, labels) in enumerate(kept):
            count = boxes.shape[0]
            probabilities = foreground[start : start + count]
            start += count
            output_hw = output_sizes[index]
            output_boxes = scale_boxes(boxes, image_sizes[index], output_hw)
            masks = ops.resize_masks_in_boxes(
                probabilities, output_boxes, padded_hw, image_sizes[index], output_hw, self.mask_threshold
            )
            results.append((exclusive_boxes(output_boxes, output_hw), scores.to(torch.float32), labels, masks))
        return results


def build_detector(network: nn.Module, config: S4NetConfig, inference: InferenceSpec) -> S4NetDetector:
    """The family's ``build_detector`` hook."""
    return S4NetDetector(network, config, inference)
