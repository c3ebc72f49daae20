"""SparseInst inference: raw per-query predictions to scored, binary instance masks at the original size.

Follows the official ``SparseInst.inference``: score = sqrt(sigmoid(class) * sigmoid(objectness)) (the
geometric mean of class probability and objectness), best class per query, a strict class threshold, mask
rescoring by "maskness" (the mean mask probability over the pixels above the mask threshold), and masks
interpolated as probabilities to the padded size, cropped to the image and interpolated to the original
size. The fused native
``upsample_masks`` op does the interpolation, thresholding, tight boxes and maskness in one pass.

Beyond the official code (which does neither), results are sorted by score and capped at ``max_det``, and
queries whose mask is empty are dropped; ``sort=False, max_det=-1`` gives the official order (and the official
count whenever no mask is empty).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from pysalient import ops


def postprocess_single(
    pred_logits: Tensor,
    pred_masks: Tensor,
    pred_scores: Tensor,
    padded_hw: Tuple[int, int],
    image_hw: Tuple[int, int],
    output_hw: Tuple[int, int],
    conf: float = 0.005,
    mask_threshold: float = 0.45,
    max_det: int = 100,
    sort: bool = True,
) -> Dict[str, Tensor]:
    """Post-processes the predictions of one image.

    Args:
        pred_logits: [N, K] class logits.
        pred_masks: [N, h, w] mask logits over the padded input (h, w = padded size / 4).
        pred_scores: [N, 1] objectness logits.
        padded_hw: size of the padded network input.
        image_hw: size of the resized image inside the padded input (the rest is padding).
        output_hw: size of the returned masks, normally the original image size.
        conf: keep queries whose score is strictly above it (before mask rescoring, as official).
        mask_threshold: binarisation threshold of mask probabilities.
        max_det: keep at most this many instances; -1 keeps all.
        sort: sort by descending final score (stable, so ties keep query order).

    Returns:
        ``masks`` bool [M, Ho, Wo], ``boxes`` float [M, 4] xyxy tight boxes of the masks in output pixels,
        ``scores`` float [M], ``labels`` int64 [M].
    """
    probabilities = torch.sqrt(pred_logits.sigmoid() * pred_scores.sigmoid())
    scores, labels = probabilities.max(dim=-1)
    keep = torch.nonzero(scores > conf).flatten()
    scores, labels = scores[keep], labels[keep]
    masks, boxes, maskness = ops.upsample_masks(
        pred_masks[keep], list(padded_hw), list(image_hw), list(output_hw), mask_threshold
    )
    scores = scores * maskness.to(scores.dtype)
    # A query whose mask has no pixel above the threshold (its box is all zeros) is not an instance: the
    # official code keeps it with a rescored score of 0; we drop it so results never hold empty masks.
    non_empty = torch.nonzero(boxes[:, 2] > boxes[:, 0]).flatten()
    if sort:
        order = non_empty[torch.sort(scores[non_empty], descending=True, stable=True).indices]
    else:
        order = non_empty
    if max_det >= 0:
        order = order[:max_det]
    return {
        "masks": masks[order].to(torch.bool),
        "boxes": boxes[order],
        "scores": scores[order],
        "labels": labels[order],
    }


def postprocess(
    outputs: Dict[str, Tensor],
    image_sizes: Sequence[Tuple[int, int]],
    padded_hw: Tuple[int, int],
    original_sizes: Sequence[Tuple[int, int]],
    conf: float = 0.005,
    mask_threshold: float = 0.45,
    max_det: int = 100,
    sort: bool = True,
) -> List[Dict[str, Tensor]]:
    """Post-processes a batch; see :func:`postprocess_single`.

    Args:
        outputs: the :class:`~pysalient.models.sparseinst.SparseInst` outputs for B images.
        image_sizes: B resized sizes (before padding), as returned by ``pad_and_batch``.
        padded_hw: the size of the padded batch.
        original_sizes: B sizes of the masks to return, normally the images' original sizes.
        conf, mask_threshold, max_det, sort: as :func:`postprocess_single`.

    Returns:
        One dict per image with ``masks``, ``boxes``, ``scores``, ``labels``.
    """
    batch = outputs["pred_logits"].shape[0]
    if len(image_sizes) != batch or len(original_sizes) != batch:
        raise ValueError(
            f"got {len(image_sizes)} image sizes and {len(original_sizes)} original sizes for a batch of {batch}"
        )
    return [
        postprocess_single(
            outputs["pred_logits"][index],
            outputs["pred_masks"][index],
            outputs["pred_scores"][index],
            padded_hw,
            image_sizes[index],
            original_sizes[index],
            conf=conf,
            mask_threshold=mask_threshold,
            max_det=max_det,
            sort=sort,
        )
        for index in range(batch)
    ]
