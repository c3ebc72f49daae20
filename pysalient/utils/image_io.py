"""Turning every accepted ``source`` into BGR uint8 images (OpenCV convention).

Accepted: a path to an image, a directory (its images, sorted), a glob pattern, a list of any of these,
a numpy array (BGR, as OpenCV gives it), a PIL image, or a torch tensor ([3, H, W] / [B, 3, H, W] RGB, uint8 or
float in [0, 1], the torchvision convention). Grayscale and alpha images are converted to 3-channel BGR,
16-bit images are scaled to 8 bits; unreadable files and empty images raise errors that name the source.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List

import cv2
import numpy as np
import torch

IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")


@dataclass
class SourceImage:
    """One image to predict on.

    Attributes:
        image: BGR uint8 [H, W, 3], C-contiguous.
        path: the file it came from, or a description such as ``"array 0"``.
    """

    image: np.ndarray
    path: str


def iterate_sources(source: Any) -> Iterator[SourceImage]:
    """Yields the images of ``source`` one at a time (files are read lazily)."""
    if isinstance(source, (list, tuple)):
        for item in source:
            yield from iterate_sources(item)
    elif isinstance(source, (str, Path)):
        for path in expand_paths(str(source)):
            yield SourceImage(read_image(path), path)
    elif isinstance(source, np.ndarray):
        yield SourceImage(to_bgr_uint8(source, "numpy array"), "numpy array")
    elif isinstance(source, torch.Tensor):
        batch = source if source.dim() == 4 else source.unsqueeze(0)
        if source.dim() not in (3, 4) or batch.shape[1] not in (1, 3):
            raise ValueError(f"tensor sources must be [3, H, W] or [B, 3, H, W] RGB, got shape {tuple(source.shape)}")
        for index, image in enumerate(batch):
            yield SourceImage(_tensor_to_bgr(image), f"tensor {index}")
    elif _is_pil_image(source):
        yield SourceImage(to_bgr_uint8(np.asarray(source.convert("RGB"))[:, :, ::-1], "PIL image"), "PIL image")
    else:
        raise TypeError(
            f"unsupported source type {type(source).__name__}; expected a path, directory, glob, list, numpy BGR "
            "array, PIL image or torch tensor"
        )


def expand_paths(source: str) -> List[str]:
    """The image files named by a file path, a directory or a glob pattern (sorted)."""
    path = Path(source)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in directory {source}")
        return files
    if path.is_file():
        return [source]
    if any(character in source for character in "*?["):
        files = sorted(p for p in glob.glob(source, recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"no images match the pattern {source}")
        return files
    raise FileNotFoundError(f"image source not found: {source}")


def read_image(path: str) -> np.ndarray:
    """Reads an image file as BGR uint8 [H, W, 3]; raises ValueError when it cannot be decoded."""
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"cannot decode image file {path} (corrupt or not an image)")
    return to_bgr_uint8(image, path)


def to_bgr_uint8(image: np.ndarray, name: str) -> np.ndarray:
    """Normalises an OpenCV-style array to BGR uint8 [H, W, 3].

    Grayscale [H, W] / [H, W, 1] is replicated, BGRA drops its alpha channel, uint16 is scaled by 1/257.
    """
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: images must be uint8 (or uint16) arrays, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.size else image[:, :, None].repeat(3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected an [H, W, 3] BGR image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: empty image of size {image.shape[0]}x{image.shape[1]}")
    return np.ascontiguousarray(image)


def _tensor_to_bgr(image: torch.Tensor) -> np.ndarray:
    if image.is_floating_point():
        image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    elif image.dtype != torch.uint8:
        raise ValueError(f"tensor sources must be uint8 or float in [0, 1], got {image.dtype}")
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    return to_bgr_uint8(array[:, :, ::-1] if array.shape[2] == 3 else array, "tensor")


def _is_pil_image(source: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(source, Image.Image)
