"""SparseInst inference: raw per-query predictions to scored, binary instance masks at the requested sizes.

:class:`SparseInstDetector` is the family's detector of the contract (:class:`pysalient.models.registry.FamilySpec`):
eager ``predict`` runs it on a padded batch, the exported graphs on a batch of one, so both give the same results.

Follows the official ``SparseInst.inference``: score = sqrt(sigmoid(class) * sigmoid(objectness)) (the geometric
mean of class probability and objectness), best class per query, candidates strictly above the official class
threshold (``candidate_threshold``), mask rescoring by "maskness" (the mean mask probability over the pixels above
the mask threshold, at the decoder's resolution), and masks interpolated as probabilities to the padded size,
cropped to the image and interpolated to the output size (the fused native ``upsample_masks`` op).

Beyond the official code: ``conf``, the minimum FINAL (rescored) score of a returned instance, is applied before
the masks are interpolated to full size (so a high ``conf`` costs nothing); results are sorted by score and capped
at ``max_det``; queries whose full-size mask is empty are dropped. ``conf=0, sort=False, max_det=-1`` gives the
official instances in the official order (and count, whenever no mask is empty).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient import ops
from pysalient.models.family import InferenceSpec
from pysalient.models.sparseinst.config import SparseInstConfig

Detections = Tuple[Tensor, Tensor, Tensor, Tensor]  # boxes f32 [K, 4], scores f32 [K], labels i64 [K], masks u8


class SparseInstDetector(nn.Module):
    """SparseInst network + post-processing, scriptable and exportable.

    Args:
        network: a :class:`~pysalient.models.sparseinst.SparseInst` (float32 or float16 parameters).
        config: gives the candidate threshold.
        inference: mask threshold and detection cap (its ``score_threshold`` is the callers' default ``conf``).
    """

    def __init__(self, network: nn.Module, config: SparseInstConfig, inference: InferenceSpec) -> None:
        super().__init__()
        self.network = network
        self.candidate_threshold = float(config.candidate_threshold)
        self.mask_threshold = float(inference.mask_threshold)
        self.max_det = int(inference.max_det)

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
            Per image: boxes float32 [K, 4] (tight boxes of the masks, right/bottom exclusive), scores float32 [K],
            labels int64 [K], masks uint8 [K, H, W], by decreasing score.
        """
        outputs = self.network(images)
        padded_hw = [images.shape[2], images.shape[3]]
        results: List[Detections] = []
        for index in range(len(image_sizes)):
            # Scores in float32 whatever the network dtype (fp16 exports keep float32 outputs and compare the
            # thresholds at eager precision); upsample_masks computes in float32 internally.
            results.append(
                postprocess_single(
                    outputs["pred_logits"][index].float(),
                    outputs["pred_masks"][index],
                    outputs["pred_scores"][index].float(),
                    padded_hw,
                    image_sizes[index],
                    output_sizes[index],
                    conf,
                    self.candidate_threshold,
                    self.mask_threshold,
                    self.max_det,
                    True,
                )
            )
        return results


def postprocess_single(
    pred_logits: Tensor,
    pred_masks: Tensor,
    pred_scores: Tensor,
    padded_hw: List[int],
    image_hw: List[int],
    output_hw: List[int],
    conf: Tensor,
    candidate_threshold: float = 0.005,
    mask_threshold: float = 0.45,
    max_det: int = 100,
    sort: bool = True,
) -> Detections:
    """Post-processes the predictions of one image.

    Args:
        pred_logits: [N, K] class logits.
        pred_masks: [N, h, w] mask logits over the padded input (h, w = padded size / 4).
        pred_scores: [N, 1] objectness logits.
        padded_hw: size of the padded network input.
        image_hw: size of the resized image inside the padded input (the rest is padding).
        output_hw: size of the returned masks, normally the original image size.
        conf: 0-d tensor; keep instances whose final (rescored) score is at least it.
        candidate_threshold: queries whose score before rescoring is not strictly above it are dropped first
            (the official ``CLS_THRESHOLD``).
        mask_threshold: binarisation threshold of mask probabilities (strict).
        max_det: keep at most this many instances; -1 keeps all.
        sort: sort by descending final score (stable, so ties keep query order).

    Returns:
        boxes float32 [M, 4] xyxy tight boxes of the masks in output pixels, scores float32 [M], labels int64 [M],
        masks uint8 [M, Ho, Wo].
    """
    probabilities = torch.sqrt(pred_logits.sigmoid() * pred_scores.sigmoid())
    scores, labels = probabilities.max(dim=-1)
    candidates = torch.nonzero(scores > candidate_threshold).flatten()
    logits = pred_masks[candidates]
    # Mask rescoring of the official code, at the decoder's resolution; the 1e-6 keeps an empty mask at 0.
    mask_probabilities = logits.float().sigmoid()
    above = (mask_probabilities > mask_threshold).to(mask_probabilities.dtype)
    maskness = (mask_probabilities * above).sum((1, 2)) / (above.sum((1, 2)) + 1e-6)
    scores = scores[candidates] * maskness.to(scores.dtype)
    passed = torch.nonzero(scores >= conf.to(scores.device, scores.dtype)).flatten()
    scores, labels = scores[passed], labels[candidates][passed]
    masks, boxes, _ = ops.upsample_masks(logits[passed], padded_hw, image_hw, output_hw, mask_threshold)
    # A query whose mask has no pixel above the threshold (its box is all zeros) is not an instance: the
    # official code keeps it with a rescored score of 0; we drop it so results never hold empty masks.
    order = torch.nonzero(boxes[:, 2] > boxes[:, 0]).flatten()
    if sort:
        order = order[torch.sort(scores[order], descending=True, stable=True).indices]
    if max_det >= 0:
        order = order[:max_det]
    return (
        boxes[order].to(torch.float32),
        scores[order].to(torch.float32),
        labels[order],
        masks[order].to(torch.uint8),
    )


def build_detector(network: nn.Module, config: SparseInstConfig, inference: InferenceSpec) -> SparseInstDetector:
    """The family's ``build_detector`` hook."""
    return SparseInstDetector(network, config, inference)
