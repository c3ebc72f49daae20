"""FCOS-style test-time post-processing: dense per-level predictions -> per-image detections.

Scriptable and exportable (``torch.export`` with data-dependent candidate counts: no branch depends on the data).
Per image and level (:func:`select_level`):

1. class probabilities ``p = sigmoid(logits)``; candidates are the (location, class) pairs with ``p > threshold``;
   when none passes, every pair with ``p >= max(p)`` (the fallback of RDPNet's FCOS: each level yields at least
   one candidate). Both cases are one expression, ``(p > threshold) | (p >= max(p))``;
2. ``score = p * sigmoid(centerness)`` (no square root), candidates in row-major (location, class) order;
3. at most ``pre_nms_top_n`` candidates per level, the highest scores, kept in row-major order;
4. boxes decoded from the distances, ``(x - l, y - t, x + r, y + b)``, and clipped to the valid image size.

Then per image over all levels (:class:`FCOSPostProcessor`): class-wise NMS and ``max_det`` (:func:`max_detections`).

``legacy=True`` is maskrcnn-benchmark's convention, the one of RDPNet's official code: clipping to
``[0, size - 1]``, NMS with ``+1`` areas that suppresses at IoU >= threshold (:func:`legacy_nms`, the native
``batched_nms(..., legacy=True)``), and kept
indices in ascending candidate order.

Differences from the official code: the fallback maximum is taken per image (the official one is taken over the
batch tensor, so one image's fallback depends on the others; identical for a batch of one, the official test
batch); when a level has more than ``pre_nms_top_n`` candidates the kept ones stay in row-major order (the
official ``topk(sorted=False)`` order is unspecified; the set is the same up to exact score ties).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient import ops
from pysalient.detection.box_coder import decode_distances
from pysalient.detection.boxes import clip_boxes
from pysalient.detection.locations import level_locations

MAX_DET_RULES = ("kthvalue", "topk")

Candidates = Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]  # boxes, scores, labels, levels, location indices


def select_level(
    logits: Tensor,
    distances: Tensor,
    centerness: Tensor,
    locations: Tensor,
    image_hw: List[int],
    threshold: float,
    pre_nms_top_n: int,
    legacy: bool = True,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Candidates of one image at one level.

    Args:
        logits: [C, H, W] class logits.
        distances: [4, H, W] distances (l, t, r, b) in input pixels (already positive).
        centerness: [1, H, W] centerness logits.
        locations: [H * W, 2] (x, y) of the cells (:func:`~pysalient.detection.locations.level_locations`).
        image_hw: ``[h, w]`` of the valid (resized, unpadded) image, for clipping.
        threshold: class-probability threshold (strict), with the at-least-one fallback.
        pre_nms_top_n: at most this many candidates (the highest scores); <= 0 keeps all.
        legacy: clip to ``[0, size - 1]`` (maskrcnn-benchmark) instead of ``[0, size]``.

    Returns:
        boxes float32 [K, 4], scores [K], labels int64 [K] (0-based class) and location indices int64 [K]
        (row-major cell index), in row-major (location, class) order.
    """
    num_classes = logits.shape[0]
    probabilities = logits.reshape(num_classes, -1).t().sigmoid()  # [HW, C]
    candidates = (probabilities > threshold) | (probabilities >= probabilities.max())
    scores_all = probabilities * centerness.reshape(-1).sigmoid()[:, None]
    pairs = torch.nonzero(candidates)
    location_index, labels = pairs[:, 0], pairs[:, 1]
    scores = scores_all[location_index, labels]
    if pre_nms_top_n > 0:
        best = torch.sort(scores, descending=True, stable=True).indices[:pre_nms_top_n]
        best = torch.sort(best).values
        location_index, labels, scores = location_index[best], labels[best], scores[best]
    points = locations[location_index]
    regression = distances.reshape(4, -1).t()[location_index]
    return clip_boxes(decode_distances(points, regression), image_hw, legacy), scores, labels, location_index


def legacy_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Class-wise NMS with maskrcnn-benchmark's convention, kept indices in ascending order.

    Boxes cover pixels x1..x2 inclusive (areas and intersections with ``+1``), a box is suppressed by a
    higher-scored kept box of the same label when their IoU is >= ``iou_threshold``, boxes are visited by
    decreasing score (stable for ties) and the kept indices are returned in ascending order (detections keep their
    candidate order), as the official CPU and CUDA kernels do. Runs the native ``batched_nms(..., legacy=True)``
    (exportable with a data-dependent candidate count).

    Args:
        boxes: [N, 4] float32.
        scores: [N].
        labels: [N] int64 classes.
        iou_threshold: IoU from which the lower-scored box is dropped.

    Returns:
        int64 [K] kept indices, ascending.
    """
    return torch.sort(ops.batched_nms(boxes, scores, labels, iou_threshold, legacy=True)).values


def max_detections(scores: Tensor, max_det: int, rule: str = "kthvalue") -> Tensor:
    """Indices (ascending) of the detections kept by the cap ``max_det``.

    Args:
        scores: [N].
        max_det: the cap; <= 0 keeps everything.
        rule: ``"kthvalue"`` (official FCOS: keep every score >= the ``max_det``-th largest, so ties may keep more)
            or ``"topk"`` (exactly ``min(N, max_det)``, the highest scores, earlier indices first among ties).

    Returns:
        int64 [K] indices into ``scores``, ascending.
    """
    if max_det <= 0:
        return torch.arange(scores.shape[0], device=scores.device)
    ranked = torch.sort(scores, descending=True, stable=True)
    if rule == "topk":
        return torch.sort(ranked.indices[:max_det]).values
    # The max_det-th largest score is kthvalue(n - max_det + 1); when n <= max_det it is the smallest score.
    floor = torch.cat([scores.new_full([1], -float("inf")), ranked.values[:max_det]])[-1]
    return torch.nonzero(scores >= floor).flatten()


class FCOSPostProcessor(nn.Module):
    """Per-level selection, decoding, NMS and the detection cap of an FCOS head (scriptable, exportable).

    Args:
        strides: stride of each level (RDPNet 8, 16, 32, 64, 128).
        score_threshold: candidate threshold on the class probability (FCOS ``INFERENCE_TH`` 0.05).
        pre_nms_top_n: candidates per level (1000).
        nms_threshold: NMS IoU (RDPNet ISOD 0.6).
        max_det: detections per image (100).
        legacy: maskrcnn-benchmark box conventions (clip to size - 1, +1 NMS at >=; see the module docstring);
            False uses torchvision's NMS and clips to the size.
        max_det_rule: ``"kthvalue"`` (official) or ``"topk"``, see :func:`max_detections`.
    """

    def __init__(
        self,
        strides: List[int],
        score_threshold: float = 0.05,
        pre_nms_top_n: int = 1000,
        nms_threshold: float = 0.6,
        max_det: int = 100,
        legacy: bool = True,
        max_det_rule: str = "kthvalue",
    ) -> None:
        super().__init__()
        if max_det_rule not in MAX_DET_RULES:
            raise ValueError(f"max_det_rule must be one of {MAX_DET_RULES}, got {max_det_rule!r}")
        self.strides: List[int] = [int(stride) for stride in strides]
        self.score_threshold = float(score_threshold)
        self.pre_nms_top_n = int(pre_nms_top_n)
        self.nms_threshold = float(nms_threshold)
        self.max_det = int(max_det)
        self.legacy = bool(legacy)
        self.max_det_rule = max_det_rule

    def candidates(
        self, logits: List[Tensor], distances: List[Tensor], centerness: List[Tensor], image_sizes: List[List[int]]
    ) -> List[Candidates]:
        """Every image's candidates before NMS, levels concatenated finest first.

        Args:
            logits, distances, centerness: per level [B, C, H_l, W_l], [B, 4, H_l, W_l], [B, 1, H_l, W_l].
            image_sizes: per image ``[h, w]`` of the valid image.

        Returns:
            Per image: boxes float32 [N, 4], scores [N], labels int64 [N], levels int64 [N] (0 = finest) and
            location indices int64 [N].
        """
        results: List[Candidates] = []
        for image, image_hw in enumerate(image_sizes):
            boxes: List[Tensor] = []
            scores: List[Tensor] = []
            labels: List[Tensor] = []
            levels: List[Tensor] = []
            indices: List[Tensor] = []
            for level, level_logits in enumerate(logits):
                points = level_locations(
                    level_logits.shape[-2], level_logits.shape[-1], self.strides[level], level_logits.device
                )
                level_boxes, level_scores, level_labels, level_indices = select_level(
                    level_logits[image].float(),
                    distances[level][image].float(),
                    centerness[level][image].float(),
                    points,
                    image_hw,
                    self.score_threshold,
                    self.pre_nms_top_n,
                    self.legacy,
                )
                boxes.append(level_boxes)
                scores.append(level_scores)
                labels.append(level_labels)
                levels.append(torch.full_like(level_labels, level))
                indices.append(level_indices)
            results.append(
                (torch.cat(boxes), torch.cat(scores), torch.cat(labels), torch.cat(levels), torch.cat(indices))
            )
        return results

    def select(self, boxes: Tensor, scores: Tensor, labels: Tensor) -> Tensor:
        """Indices (ascending) of one image's candidates that survive NMS and the cap ``max_det``."""
        if self.legacy:
            keep = legacy_nms(boxes, scores, labels, self.nms_threshold)
        else:
            keep = torch.sort(ops.batched_nms(boxes, scores, labels, self.nms_threshold)).values
        return keep[max_detections(scores[keep], self.max_det, self.max_det_rule)]

    def forward(
        self, logits: List[Tensor], distances: List[Tensor], centerness: List[Tensor], image_sizes: List[List[int]]
    ) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Detections of every image: boxes float32 [K, 4] (input pixels of the resized image), scores float32 [K]
        and labels int64 [K] (0-based), in candidate order (level, then row-major location)."""
        detections: List[Tuple[Tensor, Tensor, Tensor]] = []
        for boxes, scores, labels, _, _ in self.candidates(logits, distances, centerness, image_sizes):
            keep = self.select(boxes, scores, labels)
            detections.append((boxes[keep], scores[keep], labels[keep]))
        return detections
