"""The sample every pysalient dataset yields, and the dataset base class that seeds its transforms.

A sample is a plain dict (numpy, OpenCV convention)::

    {"image": uint8 [H, W, 3] BGR, "masks": bool [K, H, W], "labels": int64 [K] (0..C-1),
     "boxes": float32 [K, 4] (x1, y1, x2, y2), "image_id": int, "file_name": str}

Boxes are always the tight boxes of the masks, with exclusive right/bottom edges (as
:func:`pysalient.structures.masks_to_boxes`), so every transform only has to move pixels.

Reproducible augmentation: a dataset item can be requested with a plain index or with a key
``(index, seed, epoch)``. The transforms of that item receive ``np.random.default_rng([seed, epoch, index])``
(a plain index means seed 0, epoch 0), so an item's augmentation depends on nothing else: not on the
worker that loads it, the number of workers, or the items loaded before it. :func:`pysalient.data.build_loader`
issues such keys.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from torch.utils.data import Dataset

Sample = Dict[str, Any]
SampleKey = Union[int, Tuple[int, int, int]]


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight boxes of binary masks.

    Args:
        masks: bool [K, H, W].

    Returns:
        float32 [K, 4] (x1, y1, x2, y2), right/bottom exclusive; zeros for an empty mask.
    """
    count, height, width = masks.shape
    boxes = np.zeros((count, 4), dtype=np.float32)
    if count == 0:
        return boxes
    columns = masks.any(axis=1)  # [K, W]
    rows = masks.any(axis=2)  # [K, H]
    present = columns.any(axis=1)
    boxes[:, 0] = columns.argmax(axis=1)
    boxes[:, 1] = rows.argmax(axis=1)
    boxes[:, 2] = width - columns[:, ::-1].argmax(axis=1)
    boxes[:, 3] = height - rows[:, ::-1].argmax(axis=1)
    boxes[~present] = 0
    return boxes


def make_sample(image: np.ndarray, masks: np.ndarray, labels: np.ndarray, image_id: int, file_name: str) -> Sample:
    """Builds a sample, keeping only non-empty masks and deriving the boxes from them.

    Args:
        image: uint8 [H, W, 3] BGR.
        masks: bool [K, H, W].
        labels: int [K].
        image_id: the dataset's id of the image.
        file_name: the image's name in the dataset.
    """
    masks = np.asarray(masks, dtype=bool).reshape(-1, image.shape[0], image.shape[1])
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.shape[0] != masks.shape[0]:
        raise ValueError(f"{file_name}: {masks.shape[0]} masks but {labels.shape[0]} labels")
    keep = masks.reshape(masks.shape[0], masks.shape[1] * masks.shape[2]).any(axis=1)
    masks, labels = masks[keep], labels[keep]
    return {
        "image": image,
        "masks": masks,
        "labels": labels,
        "boxes": boxes_from_masks(masks),
        "image_id": int(image_id),
        "file_name": str(file_name),
    }


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator handed to the transforms of item ``index`` in ``epoch`` of a run seeded with ``seed``."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


class InstanceDataset(Dataset):
    """Base class of the instance-segmentation datasets: indexing, keys and seeded transforms.

    Subclasses set ``class_names`` (label -> name) and ``category_ids`` (label -> dataset category id) and
    implement :meth:`__len__` and :meth:`load_sample`.

    Args:
        transforms: applied to every sample; called as ``transforms(sample, rng)`` when it accepts a second
            argument (every :mod:`pysalient.data.transforms` object does), else ``transforms(sample)``.
    """

    class_names: Tuple[str, ...] = ("salient",)
    category_ids: Tuple[int, ...] = (1,)

    def __init__(self, transforms: Optional[Callable[..., Sample]] = None) -> None:
        self.transforms = transforms
        self._transforms_take_rng = transforms is not None and takes_rng(transforms)

    def __len__(self) -> int:
        raise NotImplementedError

    def load_sample(self, index: int) -> Sample:
        """The untransformed sample of item ``index`` (0 <= index < len)."""
        raise NotImplementedError

    def __getitem__(self, key: SampleKey) -> Sample:
        """Item ``key``: an index, or ``(index, seed, epoch)`` (see the module docstring)."""
        if isinstance(key, (tuple, list)):
            if len(key) != 3:
                raise TypeError(f"a dataset key is an index or (index, seed, epoch), got {key!r}")
            index, seed, epoch = (int(value) for value in key)
        else:
            index, seed, epoch = int(key), 0, 0
        length = len(self)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError(f"index {index} out of range for a dataset of {length} images")
        sample = self.load_sample(index)
        if self.transforms is not None:
            if self._transforms_take_rng:
                sample = self.transforms(sample, sample_rng(seed, epoch, index))
            else:
                sample = self.transforms(sample)
        return sample

    @property
    def num_classes(self) -> int:
        """Number of labels (1 in class-agnostic mode)."""
        return len(self.class_names)


def takes_rng(function: Callable[..., Any]) -> bool:
    """Whether a transform callable accepts a second positional argument (the generator)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # builtins without signatures: assume the plain form
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


def label_maps(category_ids: Sequence[int], class_agnostic: bool) -> Dict[int, int]:
    """Dataset category id -> contiguous label (sorted ids map to 0..C-1; every id to 0 if class-agnostic)."""
    ordered = sorted(category_ids)
    return {category: 0 if class_agnostic else label for label, category in enumerate(ordered)}
