"""Test-time post-processing of anchor heads: per-anchor logits and deltas -> per-image detections.

Scriptable and exportable (``torch.export`` with data-dependent candidate counts). Per image:

1. scores of every anchor (rows in :class:`pysalient.detection.anchors.AnchorGenerator` order):

   - ``"softmax"`` heads (S4Net's 2-way background / object softmax, or background + C classes): the probability
     of the most likely non-background class (for two logits that is ``1 - p_background``, S4Net's score), one
     candidate per anchor with that class;
   - ``"sigmoid"`` heads (RetinaNet): every (anchor, class) pair is a candidate with its sigmoid probability;

2. candidates with a score above ``score_threshold`` (strictly; a negative threshold keeps all; with
   ``keep_level_max`` a level where none passes keeps its highest-scoring pairs, as RDPNet's FCOS), then at most
   ``pre_nms_top_n`` of them, the highest scores, either over all levels together (S4Net: 5000) or per level
   (RetinaNet: 1000 per level, ``per_level=True``);
3. boxes decoded from the deltas of their anchors (:class:`pysalient.detection.box_coder.DeltaBoxCoder`) and
   clipped to the valid image; boxes narrower or lower than ``min_size`` (``+1`` sizes with ``legacy``; the default
   1 drops the inverted boxes a legacy decoding gives for sizes below a pixel) are removed (py-faster-rcnn's
   ``_filter_boxes``);
4. class-wise NMS, and at most ``max_det`` detections, the highest scores.

Detections are returned by decreasing score (stable: ties keep the anchor order).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient import ops
from pysalient.detection.box_coder import DEFAULT_SCALE_CLAMP, DeltaBoxCoder
from pysalient.detection.boxes import clip_boxes

SCORE_MODES = ("softmax", "sigmoid")


def top_scores(scores: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` highest ``scores`` [N] (all of them when ``count`` <= 0 or >= N), by decreasing
    score, earlier indices first among ties."""
    order = torch.sort(scores, descending=True, stable=True).indices
    if count > 0:
        order = order[:count]
    return order


class AnchorPostProcessor(nn.Module):
    """Scores, candidate selection, decoding, clipping, NMS and the detection cap of an anchor head.

    Args:
        num_logits: logits per anchor of the head (softmax: background + classes; sigmoid: classes).
        score_mode: ``"softmax"`` (logit 0 is the background) or ``"sigmoid"``.
        score_threshold: candidates need a score above it (strictly); negative: no threshold (S4Net).
        pre_nms_top_n: candidates kept before NMS (<= 0: all).
        per_level: apply ``score_threshold`` and ``pre_nms_top_n`` per level rather than over all levels.
        nms_threshold: NMS IoU (S4Net 0.4).
        max_det: detections per image (S4Net 20).
        weights: the box coder's delta weights.
        scale_clamp: the box coder's clamp of ``dw`` and ``dh``.
        legacy: the ``+1`` pixel convention in decoding, clipping (to ``size - 1``) and NMS (suppression at IoU
            ``>=``), as py-faster-rcnn and S4Net's released code.
        min_size: boxes need a width and a height of at least this after clipping (0 keeps every box).
        keep_level_max: a level without a score above ``score_threshold`` keeps its highest-scoring candidates
            (ties included), so that ``conf = 0`` always returns detections.
    """

    def __init__(
        self,
        num_logits: int,
        score_mode: str = "softmax",
        score_threshold: float = -1.0,
        pre_nms_top_n: int = 5000,
        per_level: bool = False,
        nms_threshold: float = 0.4,
        max_det: int = 20,
        weights: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
        scale_clamp: float = DEFAULT_SCALE_CLAMP,
        legacy: bool = True,
        min_size: float = 1.0,
        keep_level_max: bool = False,
    ) -> None:
        super().__init__()
        if score_mode not in SCORE_MODES:
            raise ValueError(f"AnchorPostProcessor: score_mode must be one of {SCORE_MODES}, got {score_mode!r}")
        if num_logits < (2 if score_mode == "softmax" else 1):
            raise ValueError(f"AnchorPostProcessor: a {score_mode} head needs more logits per anchor, got {num_logits}")
        if not 0 < nms_threshold <= 1 or max_det < 1:
            raise ValueError(
                f"AnchorPostProcessor: need nms_threshold in (0, 1] and max_det >= 1, got {nms_threshold} and {max_det}"
            )
        self.num_logits = int(num_logits)
        self.softmax = score_mode == "softmax"
        self.score_threshold = float(score_threshold)
        self.pre_nms_top_n = int(pre_nms_top_n)
        self.per_level = bool(per_level)
        self.nms_threshold = float(nms_threshold)
        self.max_det = int(max_det)
        self.legacy = bool(legacy)
        self.min_size = float(min_size)
        self.keep_level_max = bool(keep_level_max)
        self.coder = DeltaBoxCoder(weights, scale_clamp, legacy=legacy)

    def level_candidates(self, logits: Tensor, deltas: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """One image's candidates on one level.

        Args:
            logits: [A * K, H, W].
            deltas: [A * 4, H, W].

        Returns:
            scores float32 [N], labels int64 [N] (0-based class), anchor indices int64 [N] (rows of the level), by
            anchor order.
        """
        height, width = logits.shape[-2], logits.shape[-1]
        rows = logits.reshape(-1, self.num_logits, height, width).permute(2, 3, 0, 1).reshape(-1, self.num_logits)
        rows = rows.float()
        if self.softmax:
            probabilities = torch.softmax(rows, dim=1)[:, 1:]
            scores, labels = probabilities.max(dim=1)
            anchors = torch.arange(scores.shape[0], device=scores.device)
        else:
            probabilities = rows.sigmoid().reshape(-1)
            anchors = torch.arange(probabilities.shape[0], device=rows.device) // self.num_logits
            labels = torch.arange(probabilities.shape[0], device=rows.device) % self.num_logits
            scores = probabilities
        if self.score_threshold >= 0:
            passing = scores > self.score_threshold
            if self.keep_level_max:  # one expression for both cases: no branch on the data (export)
                passing = passing | (scores >= scores.max())
            passed = torch.nonzero(passing).flatten()
            scores, labels, anchors = scores[passed], labels[passed], anchors[passed]
        return scores, labels, anchors

    def forward(
        self, logits: List[Tensor], deltas: List[Tensor], anchors: List[Tensor], image_sizes: List[List[int]]
    ) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Detections of every image.

        Args:
            logits: per level [B, A * K, H_l, W_l].
            deltas: per level [B, A * 4, H_l, W_l].
            anchors: per level [H_l * W_l * A, 4] (:class:`~pysalient.detection.anchors.AnchorGenerator`).
            image_sizes: per image ``[h, w]`` of the valid image inside the padding, for clipping.

        Returns:
            Per image: boxes float32 [K, 4] (input pixels), scores float32 [K] and labels int64 [K] (0-based), by
            decreasing score.
        """
        detections: List[Tuple[Tensor, Tensor, Tensor]] = []
        for boxes, scores, labels, _ in self.detect_with_anchors(logits, deltas, anchors, image_sizes):
            detections.append((boxes, scores, labels))
        return detections

    def detect_with_anchors(
        self, logits: List[Tensor], deltas: List[Tensor], anchors: List[Tensor], image_sizes: List[List[int]]
    ) -> List[Tuple[Tensor, Tensor, Tensor, Tensor]]:
        """:meth:`forward` plus the anchor each detection comes from.

        Returns:
            Per image: boxes float32 [K, 4], scores float32 [K], labels int64 [K] and anchor indices int64 [K]
            (rows of the levels' anchors concatenated in level order, as ``torch.cat(anchors)``), by decreasing
            score.
        """
        detections: List[Tuple[Tensor, Tensor, Tensor, Tensor]] = []
        for image, image_hw in enumerate(image_sizes):
            scores_all: List[Tensor] = []
            labels_all: List[Tensor] = []
            boxes_all: List[Tensor] = []
            indices_all: List[Tensor] = []
            first_row = 0
            for level, level_logits in enumerate(logits):
                scores, labels, rows = self.level_candidates(level_logits[image], deltas[level][image])
                if self.per_level:
                    best = top_scores(scores, self.pre_nms_top_n)
                    scores, labels, rows = scores[best], labels[best], rows[best]
                level_deltas = deltas[level][image]
                height, width = level_deltas.shape[-2], level_deltas.shape[-1]
                level_deltas = level_deltas.reshape(-1, 4, height, width).permute(2, 3, 0, 1).reshape(-1, 4)
                boxes = self.coder.decode(level_deltas[rows].float(), anchors[level][rows])
                scores_all.append(scores)
                labels_all.append(labels)
                boxes_all.append(boxes)
                indices_all.append(rows + first_row)
                first_row = first_row + anchors[level].shape[0]
            scores, labels, boxes = torch.cat(scores_all), torch.cat(labels_all), torch.cat(boxes_all)
            indices = torch.cat(indices_all)
            if not self.per_level:
                best = top_scores(scores, self.pre_nms_top_n)
                scores, labels, boxes, indices = scores[best], labels[best], boxes[best], indices[best]
            boxes = clip_boxes(boxes, image_hw, self.legacy)
            if self.min_size > 0:
                offset = 1.0 if self.legacy else 0.0
                widths, heights = boxes[:, 2] - boxes[:, 0] + offset, boxes[:, 3] - boxes[:, 1] + offset
                large = torch.nonzero((widths >= self.min_size) & (heights >= self.min_size)).flatten()
                scores, labels, boxes, indices = scores[large], labels[large], boxes[large], indices[large]
            keep = torch.sort(ops.batched_nms(boxes, scores, labels, self.nms_threshold, legacy=self.legacy)).values
            # by decreasing score, ties in candidate order: the same in eager and compiled graphs, whichever NMS
            # strategy (per class, or shifted boxes) ran
            keep = keep[torch.sort(scores[keep], descending=True, stable=True).indices][: self.max_det]
            detections.append((boxes[keep], scores[keep], labels[keep], indices[keep]))
        return detections
