"""Sample transforms for training and testing: resize (multi-scale), flip, crop, compose.

Every transform is a callable ``transform(sample, rng) -> sample`` that returns a new sample (inputs are
not modified). Random transforms draw only from the ``np.random.Generator`` they are given and raise when
none is given: datasets hand each item a generator seeded from ``(seed, epoch, index)`` (see
:mod:`pysalient.data.sample`), which makes training augmentation reproducible and independent of the
number of loader workers. Deterministic transforms accept ``rng=None``.

After a geometric change, instances left without pixels are dropped and boxes are recomputed from the
masks (boxes always stay the tight boxes of their masks).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from pysalient import ops
from pysalient.data.sample import Sample, boxes_from_masks, takes_rng
from pysalient.utils.resize import fixed_hw, resized_hw

CROP_TYPES = ("relative", "relative_range", "absolute", "absolute_range")


class Transform:
    """Base class: ``__call__(sample, rng=None) -> sample``."""

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        raise NotImplementedError

    def _require_rng(self, rng: Optional[np.random.Generator]) -> np.random.Generator:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                f"{type(self).__name__} is random and needs an explicit np.random.Generator (got {rng!r}); "
                "datasets pass one seeded from (seed, epoch, index)"
            )
        return rng


class Compose(Transform):
    """Applies transforms in order, all drawing from the same generator.

    Args:
        transforms: transforms or plain ``sample -> sample`` callables.
    """

    def __init__(self, transforms: Sequence[Callable[..., Sample]]) -> None:
        self.transforms = list(transforms)
        self._takes_rng = [takes_rng(transform) for transform in self.transforms]

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        for transform, with_rng in zip(self.transforms, self._takes_rng):
            sample = transform(sample, rng) if with_rng else transform(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class ResizeShortestEdge(Transform):
    """Resizes so the shortest side is a chosen length and the longest at most ``max_size``.

    Output sizes follow detectron2's rule (:func:`pysalient.utils.resize.resized_hw`), images
    are resized by the Pillow-identical ``resize_image`` op and masks by centre-aligned nearest neighbour
    (Pillow's NEAREST, OpenCV's INTER_NEAREST_EXACT). With one short edge this is exactly the SparseInst
    test-time resize.

    Args:
        short_edges: candidate shortest-side lengths ("choice": one is drawn uniformly) or the inclusive
            (min, max) range ("range": an integer drawn uniformly in it).
        max_size: cap of the longest side.
        sample_style: "choice" or "range".
    """

    def __init__(self, short_edges: Union[int, Sequence[int]], max_size: int, sample_style: str = "choice") -> None:
        edges = (short_edges,) if isinstance(short_edges, (int, np.integer)) else tuple(short_edges)
        if not edges or not all(isinstance(edge, (int, np.integer)) and edge > 0 for edge in edges):
            raise ValueError(f"short_edges must be positive integers, got {short_edges!r}")
        if sample_style not in ("choice", "range"):
            raise ValueError(f"sample_style must be 'choice' or 'range', got {sample_style!r}")
        if sample_style == "range" and (len(edges) != 2 or edges[0] > edges[1]):
            raise ValueError(f"sample_style='range' needs short_edges=(min, max) with min <= max, got {edges}")
        if int(max_size) < 1:
            raise ValueError(f"max_size must be positive, got {max_size}")
        self.short_edges = tuple(int(edge) for edge in edges)
        self.max_size = int(max_size)
        self.sample_style = sample_style

    @property
    def is_random(self) -> bool:
        """Whether the short edge is drawn (False for a single "choice")."""
        return self.sample_style == "range" or len(self.short_edges) > 1

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        if not self.is_random:
            short = self.short_edges[0]
        elif self.sample_style == "choice":
            short = self.short_edges[int(self._require_rng(rng).integers(len(self.short_edges)))]
        else:
            short = int(self._require_rng(rng).integers(self.short_edges[0], self.short_edges[1] + 1))
        height, width = sample["image"].shape[:2]
        out_h, out_w = resized_hw(height, width, short, self.max_size)
        if (out_h, out_w) == (height, width):
            return dict(sample)
        image = ops.resize_image(torch.from_numpy(np.ascontiguousarray(sample["image"])), out_h, out_w).numpy()
        return _replace_pixels(sample, image, resize_masks_nearest(sample["masks"], out_h, out_w))

    def __repr__(self) -> str:
        style = self.sample_style
        return f"ResizeShortestEdge(short_edges={self.short_edges}, max_size={self.max_size}, sample_style={style!r})"


class ResizeFixed(Transform):
    """Resizes every image to ``size`` x ``size`` without keeping the aspect ratio (S4Net trains and tests so).

    Pixels by the Pillow-identical ``resize_image`` op (the test-time resize of :class:`pysalient.inputs.Preprocessor`
    in ``"fixed"`` mode), masks by centre-aligned nearest neighbour, boxes recomputed from the masks.

    Args:
        size: output height and width.
    """

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.size = int(size)

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        height, width = sample["image"].shape[:2]
        out_h, out_w = fixed_hw(height, width, self.size)
        if (out_h, out_w) == (height, width):
            return dict(sample)
        image = ops.resize_image(torch.from_numpy(np.ascontiguousarray(sample["image"])), out_h, out_w).numpy()
        return _replace_pixels(sample, image, resize_masks_nearest(sample["masks"], out_h, out_w))

    def __repr__(self) -> str:
        return f"ResizeFixed(size={self.size})"


class RandomFlip(Transform):
    """Mirrors the image, masks and boxes with probability ``prob``.

    Args:
        prob: flip probability.
        horizontal: left-right flip if True, else top-bottom.
    """

    def __init__(self, prob: float = 0.5, horizontal: bool = True) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = float(prob)
        self.horizontal = bool(horizontal)

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        if self._require_rng(rng).random() >= self.prob:
            return dict(sample)
        axis = 1 if self.horizontal else 0
        flipped = dict(sample)
        flipped["image"] = np.ascontiguousarray(np.flip(sample["image"], axis=axis))
        flipped["masks"] = np.ascontiguousarray(np.flip(sample["masks"], axis=axis + 1))
        boxes = np.asarray(sample["boxes"], dtype=np.float32).copy()
        # Exclusive right/bottom edges make the mirror of [x1, x2) exactly [W - x2, W - x1).
        size = sample["image"].shape[axis]
        first, second = (0, 2) if self.horizontal else (1, 3)
        boxes[:, first], boxes[:, second] = size - sample["boxes"][:, second], size - sample["boxes"][:, first]
        flipped["boxes"] = boxes
        return flipped

    def __repr__(self) -> str:
        return f"RandomFlip(prob={self.prob}, horizontal={self.horizontal})"


class RandomCrop(Transform):
    """Crops a random window (with probability ``prob``); instances left without pixels are dropped.

    Window size (detectron2's conventions), for an H x W image and ``crop_size`` = (a, b):
    "relative": (H*a, W*b); "relative_range": (H*U(a, 1), W*U(b, 1)); "absolute": (a, b) pixels;
    "absolute_range": both sides drawn as integers in [a, b]. Sizes are capped at the image size; the
    window position is uniform.

    Args:
        crop_type: one of :data:`CROP_TYPES`.
        crop_size: (a, b) as above; fractions in (0, 1] for the relative types.
        prob: probability of cropping at all (the official SparseInst recipe crops half of the images).
    """

    def __init__(
        self, crop_type: str = "relative_range", crop_size: Tuple[float, float] = (0.9, 0.9), prob: float = 1.0
    ) -> None:
        if crop_type not in CROP_TYPES:
            raise ValueError(f"crop_type must be one of {CROP_TYPES}, got {crop_type!r}")
        if len(crop_size) != 2:
            raise ValueError(f"crop_size needs two values, got {crop_size!r}")
        first, second = float(crop_size[0]), float(crop_size[1])
        if crop_type.startswith("relative") and not (0.0 < first <= 1.0 and 0.0 < second <= 1.0):
            raise ValueError(f"relative crop sizes must be in (0, 1], got {crop_size!r}")
        if crop_type.startswith("absolute") and (
            first < 1 or second < 1 or first != int(first) or second != int(second)
        ):
            raise ValueError(f"absolute crop sizes must be positive integers, got {crop_size!r}")
        if crop_type == "absolute_range" and first > second:
            raise ValueError(f"absolute_range needs min <= max, got {crop_size!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.crop_type = crop_type
        self.crop_size = (first, second)
        self.prob = float(prob)

    def crop_hw(self, height: int, width: int, rng: np.random.Generator) -> Tuple[int, int]:
        """The window size for an image of ``height`` x ``width``."""
        first, second = self.crop_size
        if self.crop_type == "relative":
            crop_h, crop_w = int(height * first + 0.5), int(width * second + 0.5)
        elif self.crop_type == "relative_range":
            fractions = rng.uniform(np.array([first, second]), 1.0)
            crop_h, crop_w = int(height * fractions[0] + 0.5), int(width * fractions[1] + 0.5)
        elif self.crop_type == "absolute":
            crop_h, crop_w = int(first), int(second)
        else:
            crop_h = int(rng.integers(min(height, int(first)), min(height, int(second)) + 1))
            crop_w = int(rng.integers(min(width, int(first)), min(width, int(second)) + 1))
        return min(max(crop_h, 1), height), min(max(crop_w, 1), width)

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        rng = self._require_rng(rng)
        if rng.random() >= self.prob:
            return dict(sample)
        height, width = sample["image"].shape[:2]
        crop_h, crop_w = self.crop_hw(height, width, rng)
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        image = np.ascontiguousarray(sample["image"][top : top + crop_h, left : left + crop_w])
        masks = np.ascontiguousarray(sample["masks"][:, top : top + crop_h, left : left + crop_w])
        return _replace_pixels(sample, image, masks)

    def __repr__(self) -> str:
        return f"RandomCrop(crop_type={self.crop_type!r}, crop_size={self.crop_size}, prob={self.prob})"


def resize_masks_nearest(masks: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Centre-aligned nearest-neighbour resize of masks (Pillow NEAREST / OpenCV INTER_NEAREST_EXACT).

    Output pixel i samples input pixel floor((i + 0.5) * in / out); OpenCV's plain INTER_NEAREST uses
    floor(i * in / out) instead, which shifts masks by up to half a pixel against the image.

    Args:
        masks: [K, H, W].
        out_h, out_w: output size.

    Returns:
        [K, out_h, out_w], same dtype.
    """
    height, width = masks.shape[1:]
    rows = np.minimum(((np.arange(out_h) + 0.5) * (height / out_h)).astype(np.int64), height - 1)
    columns = np.minimum(((np.arange(out_w) + 0.5) * (width / out_w)).astype(np.int64), width - 1)
    return masks[:, rows[:, None], columns[None, :]]


def _replace_pixels(sample: Sample, image: np.ndarray, masks: np.ndarray) -> Sample:
    # Geometry changed: drop instances with no pixel left and recompute boxes from the masks.
    keep = masks.reshape(masks.shape[0], masks.shape[1] * masks.shape[2]).any(axis=1)
    updated = dict(sample)
    updated["image"] = image
    updated["masks"] = masks[keep]
    updated["labels"] = np.asarray(sample["labels"])[keep]
    updated["boxes"] = boxes_from_masks(updated["masks"])
    return updated
