"""SparseInst training hooks of the family registry: the criterion and the batch collation.

The data pipeline (:mod:`pysalient.data`) yields samples already resized and augmented, in the OpenCV
convention; :func:`prepare_batch` only does what the official ``SparseInst.preprocess_inputs`` does after
detectron2's mapper: channel order, normalisation with the config's mean / std, zero padding to a multiple of
``size_divisibility``, and ground-truth masks in the same padded frame.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pysalient.models.sparseinst.config import SparseInstConfig
from pysalient.models.sparseinst.loss import SparseInstCriterion
from pysalient.models.sparseinst.preprocess import pad_and_batch


def build_criterion(config: SparseInstConfig) -> SparseInstCriterion:
    """The official SparseInst losses (weights of ``Base-SparseInst.yaml``) for ``config.num_classes`` classes."""
    return SparseInstCriterion(config.num_classes)


def prepare_batch(
    samples: Sequence[Mapping[str, Any]], config: SparseInstConfig, device: Union[str, torch.device]
) -> Tuple[Tensor, List[Dict[str, Tensor]]]:
    """Collates data samples into the network input and the criterion targets.

    Args:
        samples: data samples (see :mod:`pysalient.data`): ``image`` uint8 [H, W, 3] BGR (already resized),
            ``masks`` bool [K, H, W] and ``labels`` int64 [K] in ``[0, num_classes)``.
        config: gives the channel order, the normalisation and the padding multiple.
        device: where the returned tensors live.

    Returns:
        ``images`` float32 [B, 3, Hp, Wp] normalised and zero-padded at the bottom and right (Hp, Wp multiples
        of ``config.size_divisibility``), and per image ``{"labels": int64 [K], "masks": bool [K, Hp, Wp]}``
        with each mask where its image sits in the padded batch (top left).

    Raises:
        ValueError: an empty batch, or a sample whose image, masks and labels disagree (the message names its
            position in the batch and its ``file_name`` when present).
    """
    if len(samples) == 0:
        raise ValueError("prepare_batch got an empty batch")
    device = torch.device(device)
    mean = torch.tensor(config.pixel_mean, dtype=torch.float32, device=device).reshape(3, 1, 1)
    std = torch.tensor(config.pixel_std, dtype=torch.float32, device=device).reshape(3, 1, 1)
    normalized: List[Tensor] = []
    for index, sample in enumerate(samples):
        image, masks, labels = _checked_arrays(sample, index, config.num_classes)
        if config.input_format == "RGB":
            image = image[:, :, ::-1]  # the samples are BGR (OpenCV); the official models take RGB
        pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).to(torch.float32)
        normalized.append((pixels - mean) / std)  # float32 (x - mean) / std, the order of the official normaliser
    batch, _ = pad_and_batch(normalized, config.size_divisibility)
    padded_h, padded_w = int(batch.shape[-2]), int(batch.shape[-1])
    targets: List[Dict[str, Tensor]] = []
    for sample in samples:
        masks = torch.from_numpy(np.ascontiguousarray(sample["masks"])).to(device=device, dtype=torch.bool)
        padded = torch.zeros((masks.shape[0], padded_h, padded_w), dtype=torch.bool, device=device)
        padded[:, : masks.shape[1], : masks.shape[2]] = masks
        labels = torch.as_tensor(np.asarray(sample["labels"]), dtype=torch.int64).to(device)
        targets.append({"labels": labels, "masks": padded})
    return batch, targets


def _checked_arrays(sample: Mapping[str, Any], index: int, num_classes: int) -> Tuple[np.ndarray, Any, Any]:
    """The sample's image, masks and labels after checking that they describe one consistent image."""
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
    return image, masks, labels
