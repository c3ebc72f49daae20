"""Turning every accepted ``source`` into BGR uint8 images (OpenCV convention).

Accepted: a path to an image or a video, a directory (its images and videos, sorted), a glob pattern, an http(s)
URL of an image or a video, a camera index (an int, or a string of digits such as ``"0"`` when no file of that
name exists), a numpy array (BGR, as OpenCV gives it), a PIL image, a torch tensor ([3, H, W] / [B, 3, H, W] RGB,
uint8 or float in [0, 1], the torchvision convention), or a list of any of these.

Image files are returned upright: the EXIF orientation of JPEG, PNG, WebP and TIFF files is applied, as a phone's
gallery does. Grayscale and alpha images are converted to 3-channel BGR, 16-bit images are scaled to 8 bits.
Videos and cameras give one :class:`SourceImage` per frame, decoded one at a time. URLs are downloaded to a
temporary file that is deleted once read; ``PYSALIENT_OFFLINE=1`` forbids downloading. Missing files, unreadable
files, videos or cameras that cannot be opened and empty images raise errors that name the source.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import urlparse

import cv2
import numpy as np
import torch

from pysalient.utils.video import (
    VIDEO_EXTENSIONS,
    capture_fps,
    capture_frame_count,
    is_video_path,
    open_camera,
    open_video,
    read_frames,
)

IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
URL_SCHEMES = ("http://", "https://")
DOWNLOAD_TIMEOUT_S = 30.0
# Keeps depth (16-bit) and grayscale as stored, drops alpha, and applies the EXIF orientation (IMREAD_UNCHANGED
# would ignore it).
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


@dataclass
class SourceImage:
    """One image to predict on: a picture, or one frame of a video or camera.

    Attributes:
        image: BGR uint8 [H, W, 3], C-contiguous.
        path: the file or URL it came from, or a description such as ``"numpy array"``, ``"clip.mp4 frame 12"``
            or ``"camera 0 frame 3"``.
        index: 0-based position of its source (file, URL, array, video, camera) among all the sources.
        count: number of sources.
        video: the video file, URL or ``"camera N"`` a frame belongs to; None for a still image.
        frame: 1-based number of the frame in its video; None for a still image.
        frames: frames in the video as its container says (None for still images, cameras and unknown counts).
        fps: frames per second of the video (None for still images, or when the video does not say).
    """

    image: np.ndarray
    path: str
    index: int = 0
    count: int = 1
    video: Optional[str] = None
    frame: Optional[int] = None
    frames: Optional[int] = None
    fps: Optional[float] = None

    @property
    def is_frame(self) -> bool:
        """Whether the image is a frame of a video or camera."""
        return self.video is not None


@dataclass(frozen=True)
class Source:
    """One entry of a resolved source, not read yet.

    Attributes:
        kind: ``"image"`` (file), ``"video"`` (file), ``"camera"``, ``"url"``, ``"array"``, ``"tensor"`` or ``"pil"``.
        name: the path, URL or description that results will carry.
        value: the path, URL, camera index or in-memory image.
    """

    kind: str
    name: str
    value: Any


def iterate_sources(source: Any) -> Iterator[SourceImage]:
    """Yields the images of ``source`` one at a time (files are read lazily, videos one frame at a time).

    Raises:
        FileNotFoundError, TypeError, ValueError, OSError: as :func:`resolve_sources`, or when a file, video,
            camera or URL cannot be read (the message names it).
    """
    entries = resolve_sources(source)
    for index, entry in enumerate(entries):
        yield from _READERS[entry.kind](entry, index, len(entries))


def resolve_sources(source: Any) -> List[Source]:
    """The entries of ``source`` (directories and globs expanded, lists flattened), without reading any file.

    Cheap enough to call before anything else, so that a mistyped path fails before a model is loaded or an
    output folder created.

    Raises:
        FileNotFoundError: a path that does not exist, or a directory or pattern without images or videos.
        TypeError: an unsupported type of source.
        ValueError: an empty path, a tensor of the wrong shape, or a negative camera index.
    """
    if isinstance(source, (list, tuple)):
        return [entry for item in source for entry in resolve_sources(item)]
    if isinstance(source, str) and not source.strip():
        raise ValueError(f"the source is an empty path {source!r}: name an image, video, directory, glob or URL")
    if isinstance(source, str) and source.lower().startswith(URL_SCHEMES):
        return [Source("url", source, source)]
    if isinstance(source, str) and source.isdigit() and not Path(source).exists():
        return [_camera(int(source))]
    if isinstance(source, (str, Path)):
        return [Source("video" if is_video_path(path) else "image", path, path) for path in expand_paths(str(source))]
    if isinstance(source, (int, np.integer)) and not isinstance(source, (bool, np.bool_)):
        return [_camera(int(source))]
    if isinstance(source, np.ndarray):
        return [Source("array", "numpy array", source)]
    if isinstance(source, torch.Tensor):
        return _tensor_entries(source)
    if _is_pil_image(source):
        return [Source("pil", "PIL image", source)]
    raise TypeError(
        f"unsupported source type {type(source).__name__}; expected a path, directory, glob, URL, camera index, "
        "list, numpy BGR array, PIL image or torch tensor"
    )


def expand_paths(source: str) -> List[str]:
    """The image and video files named by a file path, a directory or a glob pattern (sorted)."""
    path = Path(source)
    extensions = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in extensions and p.is_file())
        if not files:
            raise FileNotFoundError(f"no images or videos ({', '.join(extensions)}) in directory {source}")
        return files
    if path.is_file():
        return [source]
    if any(character in source for character in "*?["):
        files = sorted(p for p in glob.glob(source, recursive=True) if Path(p).suffix.lower() in extensions)
        if not files:
            raise FileNotFoundError(f"no images or videos match the pattern {source}")
        return files
    raise FileNotFoundError(f"image source not found: {source}")


def read_image(path: str, name: Optional[str] = None) -> np.ndarray:
    """Reads an image file as BGR uint8 [H, W, 3], turned upright by its EXIF orientation.

    Args:
        path: the file.
        name: what error messages call it (``path`` when None).

    Raises:
        ValueError: the file cannot be decoded.
    """
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, _DECODE_FLAGS) if data.size else None
    if image is None:
        raise ValueError(f"cannot decode image file {name or path} (corrupt or not an image)")
    return to_bgr_uint8(image, name or path)


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


def is_offline() -> bool:
    """Whether ``PYSALIENT_OFFLINE`` forbids network access (the rule of :func:`pysalient.engine.hub.is_offline`)."""
    return os.environ.get("PYSALIENT_OFFLINE", "0") not in ("", "0", "false", "False")


def download_to_temporary_file(url: str) -> Path:
    """Downloads ``url`` to a new temporary file (keeping the URL's image or video suffix); the caller deletes it.

    Raises:
        ValueError: ``PYSALIENT_OFFLINE`` is set.
        OSError: the download failed (the message names the URL and the reason).
    """
    if is_offline():
        raise ValueError(f"PYSALIENT_OFFLINE is set: offline mode forbids downloading the source {url}")
    suffix = Path(urlparse(url).path).suffix.lower()
    descriptor, temporary = tempfile.mkstemp(
        prefix="pysalient-source-", suffix=suffix if suffix in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS else ""
    )
    try:
        with os.fdopen(descriptor, "wb") as handle, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, handle)
    except OSError as error:  # URLError, HTTPError, timeouts, a full disk
        Path(temporary).unlink(missing_ok=True)
        raise OSError(f"cannot download {url}: {_download_failure(error)}") from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def _download_failure(error: OSError) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


# ------------------------------------------------------------------------------------------------ resolving
def _camera(index: int) -> Source:
    if index < 0:
        raise ValueError(f"camera indices are non-negative, got {index}")
    return Source("camera", f"camera {index}", index)


def _tensor_entries(source: torch.Tensor) -> List[Source]:
    batch = source if source.dim() == 4 else source.unsqueeze(0)
    if source.dim() not in (3, 4) or batch.shape[1] not in (1, 3):
        raise ValueError(f"tensor sources must be [3, H, W] or [B, 3, H, W] RGB, got shape {tuple(source.shape)}")
    return [Source("tensor", f"tensor {index}", image) for index, image in enumerate(batch)]


# -------------------------------------------------------------------------------------------------- reading
def _read_image_file(entry: Source, index: int, count: int) -> Iterator[SourceImage]:
    yield SourceImage(read_image(entry.value), entry.name, index, count)


def _read_video_file(entry: Source, index: int, count: int) -> Iterator[SourceImage]:
    yield from _frames(open_video(entry.value), entry.name, index, count)


def _read_camera(entry: Source, index: int, count: int) -> Iterator[SourceImage]:
    yield from _frames(open_camera(entry.value), entry.name, index, count)


def _read_url(entry: Source, index: int, count: int) -> Iterator[SourceImage]:
    path = download_to_temporary_file(entry.value)
    try:
        if is_video_path(path):
            yield from _frames(open_video(str(path)), entry.name, index, count)
            return
        image = read_image(str(path), name=entry.name)
    finally:
        path.unlink(missing_ok=True)
    yield SourceImage(image, entry.name, index, count)


def _read_array(entry: Source, index: int, count: int) -> Iterator[SourceImage]:
    yield SourceImage(to_bgr_uint8(entry.value, entry.name), entry.name, index, count)


def _read_tensor(entry: Source, index: int, count: int) -> Iterator[SourceImage]:
    yield SourceImage(_tensor_to_bgr(entry.value), entry.name, index, count)


def _read_pil(entry: Source, index: int, count: int) -> Iterator[SourceImage]:
    rgb = np.asarray(entry.value.convert("RGB"))
    yield SourceImage(to_bgr_uint8(rgb[:, :, ::-1], entry.name), entry.name, index, count)


def _frames(capture: cv2.VideoCapture, name: str, index: int, count: int) -> Iterator[SourceImage]:
    fps, frames = capture_fps(capture), capture_frame_count(capture)
    for number, frame in enumerate(read_frames(capture, name), start=1):
        yield SourceImage(
            to_bgr_uint8(frame, name),
            f"{name} frame {number}",
            index,
            count,
            video=name,
            frame=number,
            frames=frames,
            fps=fps,
        )


_READERS: Dict[str, Callable[[Source, int, int], Iterator[SourceImage]]] = {
    "image": _read_image_file,
    "video": _read_video_file,
    "camera": _read_camera,
    "url": _read_url,
    "array": _read_array,
    "tensor": _read_tensor,
    "pil": _read_pil,
}


FLOAT_RANGE_TOLERANCE = 1e-3  # float tensors may pass [0, 1] by rounding error (normalised images); more is a mistake


def _tensor_to_bgr(image: torch.Tensor) -> np.ndarray:
    if image.is_floating_point():
        if image.numel() and not bool(torch.isfinite(image).all()):
            raise ValueError("tensor source has NaN or infinite pixels")
        if image.numel() and (image.min() < -FLOAT_RANGE_TOLERANCE or image.max() > 1 + FLOAT_RANGE_TOLERANCE):
            raise ValueError(
                f"float tensor sources must be in [0, 1] (RGB), got values in [{float(image.min()):g}, "
                f"{float(image.max()):g}]: divide 0..255 images by 255, or pass a uint8 tensor"
            )
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
