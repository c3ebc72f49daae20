"""Training collation shared by every family: data samples -> the padded network input and per-image targets.

The data pipeline yields samples already resized and augmented, in the OpenCV convention (see
:mod:`pysalient.data.sample`). :func:`collate` only does what the official pipelines do after their mappers: the
family's channel order and normalisation (:meth:`pysalient.inputs.Preprocessor.normalize`, the module eager
predict and the exports run), zero padding to a multiple of ``size_divisibility``
(:func:`pysalient.inputs.pad_and_batch`), and the targets in the same padded frame (images sit at the top left, so
boxes keep their coordinates).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pysalient.data.sample import boxes_from_masks
from pysalient.inputs import InputSpec, Preprocessor, pad_and_batch


def collate(
    samples: Sequence[Mapping[str, Any]], input_spec: InputSpec, num_classes: int, device: Union[str, torch.device]
) -> Tuple[Tensor, List[Dict[str, Tensor]]]:
    """Collates data samples into the network input and the targets ``network(images, targets)`` takes.

    Args:
        samples: data samples: ``image`` uint8 [H, W, 3] BGR (already resized), ``masks`` bool [K, H, W], ``labels``
            int64 [K] in ``[0, num_classes)``, optionally ``boxes`` float32 [K, 4] (x1, y1, x2, y2; the tight boxes
            of the masks when absent) and ``file_name``.
        input_spec: the family's input description (channel order, mean / std, padding multiple).
        num_classes: the labels must lie in ``[0, num_classes)``.
        device: where the returned tensors live.

    Returns:
        ``images`` float32 [B, 3, Hp, Wp], normalised and zero-padded at the bottom and right (Hp, Wp multiples of
        ``input_spec.size_divisibility``, at least ``input_spec.min_padded_size``), and per image ``{"labels":
        int64 [K], "boxes": float32 [K, 4], "masks": bool [K, Hp, Wp]}`` with each mask where its image sits in the
        padded batch (top left).

    Raises:
        ValueError: an empty batch, or a sample whose image, masks, boxes and labels disagree (the message names its
            position in the batch and its ``file_name`` when present).
    """
    if len(samples) == 0:
        raise ValueError("collate got an empty batch")
    device = torch.device(device)
    preprocessor = Preprocessor(input_spec).to(device)
    normalized: List[Tensor] = []
    checked = [_checked_arrays(sample, index, num_classes) for index, sample in enumerate(samples)]
    for image, _, _, _ in checked:
        normalized.append(preprocessor.normalize(torch.from_numpy(np.ascontiguousarray(image)).to(device)))
    batch, _ = pad_and_batch(normalized, input_spec.size_divisibility, input_spec.min_padded_size)
    padded_h, padded_w = int(batch.shape[-2]), int(batch.shape[-1])
    targets: List[Dict[str, Tensor]] = []
    for _, masks, labels, boxes in checked:
        mask_tensor = torch.from_numpy(np.ascontiguousarray(masks)).to(device=device, dtype=torch.bool)
        padded = torch.zeros((mask_tensor.shape[0], padded_h, padded_w), dtype=torch.bool, device=device)
        padded[:, : mask_tensor.shape[1], : mask_tensor.shape[2]] = mask_tensor
        targets.append(
            {
                "labels": torch.as_tensor(labels, dtype=torch.int64).to(device),
                "boxes": torch.as_tensor(boxes, dtype=torch.float32).to(device),
                "masks": padded,
            }
        )
    return batch, targets


def _checked_arrays(
    sample: Mapping[str, Any], index: int, num_classes: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sample's image, masks, labels and boxes after checking that they describe one consistent image."""
    where = f"sample {index}" + (f" ({sample['file_name']})" if sample.get("file_name") else "")
    missing = [key for key in ("image", "masks", "labels") if key not in sample]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    image, masks, labels = np.asarray(sample["image"]), np.asarray(sample["masks"]), np.asarray(sample["labels"])
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where}: image must be uint8 [H, W, 3] (BGR), got {image.dtype} {image.shape}")
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"{where}: masks must be [K, H, W] with (H, W) = {image.shape[:2]}, got {masks.shape}")
    if labels.shape != (masks.shape[0],):
        raise ValueError(f"{where}: labels must be [K] with K = {masks.shape[0]} masks, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels must lie in [0, {num_classes}), got {sorted(set(labels.tolist()))}")
    boxes = sample.get("boxes")
    boxes = boxes_from_masks(masks.astype(bool)) if boxes is None else np.asarray(boxes, dtype=np.float32)
    if boxes.shape != (masks.shape[0], 4):
        raise ValueError(f"{where}: boxes must be [K, 4] with K = {masks.shape[0]} masks, got shape {boxes.shape}")
    return image, masks, labels, boxes
