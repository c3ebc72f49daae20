"""Video files and cameras read frame by frame, and annotated videos written back (OpenCV's video I/O).

Frames are BGR uint8 [H, W, 3] (OpenCV convention). Reading is lazy: one frame is decoded at a time, so a video of
any length is read in constant memory. Written videos are MPEG-4 Part 2 (``mp4v`` in ``.mp4``), which every
OpenCV build with FFmpeg (``opencv-python-headless`` included) can write and read; when that codec is missing,
Motion-JPEG in ``.avi`` is used instead.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import cv2
import numpy as np

VIDEO_EXTENSIONS = (".avi", ".flv", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv")
# (suffix, FourCC) pairs tried in order by VideoSink.
WRITER_CODECS = ((".mp4", "mp4v"), (".avi", "MJPG"))
# CAP_PROP_FRAME_COUNT is an estimate some containers leave at 0 or at garbage; beyond this it is "unknown".
_MAX_FRAME_COUNT = 2**31


def is_video_path(path: Union[str, Path]) -> bool:
    """Whether ``path`` has a video extension (see :data:`VIDEO_EXTENSIONS`)."""
    return Path(str(path)).suffix.lower() in VIDEO_EXTENSIONS


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    # A failed open makes OpenCV log several warnings on stderr; the error raised instead says it in one line.
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def open_video(path: str) -> cv2.VideoCapture:
    """Opens a video file for reading.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file exists but OpenCV cannot open it (corrupt, or a codec it cannot decode).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    with _quiet_opencv():
        capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise ValueError(f"cannot open video file {path} (corrupt, or a codec OpenCV cannot decode)")
    return capture


def open_camera(index: int) -> cv2.VideoCapture:
    """Opens camera ``index`` (0 is the first webcam) for reading.

    Raises:
        OSError: there is no such camera, or it is in use.
    """
    with _quiet_opencv():
        capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        capture.release()
        raise OSError(f"cannot open camera {index}: no such device, it is in use, or access is denied")
    return capture


def capture_fps(capture: cv2.VideoCapture) -> Optional[float]:
    """Frames per second of an open capture, None when the container or camera does not say."""
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    return fps if np.isfinite(fps) and fps > 0 else None


def capture_frame_count(capture: cv2.VideoCapture) -> Optional[int]:
    """Number of frames of an open video file (the container's figure), None when unknown (cameras)."""
    count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return int(count) if np.isfinite(count) and 0 < count < _MAX_FRAME_COUNT else None


def read_frames(capture: cv2.VideoCapture, name: str) -> Iterator[np.ndarray]:
    """Yields the frames of ``capture`` (BGR uint8 [H, W, 3]) one at a time, then releases it.

    The capture is released too when the consumer stops early (the generator is closed or collected).

    Raises:
        ValueError: not a single frame could be decoded from ``name``.
    """
    decoded = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            decoded += 1
            yield frame
    finally:
        capture.release()
    if decoded == 0:
        raise ValueError(f"no frame could be decoded from {name}")


class VideoSink:
    """Writes frames of one size into a video file, choosing the first codec of :data:`WRITER_CODECS` that works.

    Args:
        stem: the file to write without its suffix (``runs/predict/exp/clip`` gives ``clip.mp4``).
        fps: frames per second of the written video.
        size: (width, height) of every frame.

    Attributes:
        path: the file being written (its suffix says which codec was chosen).
    """

    def __init__(self, stem: Union[str, Path], fps: float, size: Tuple[int, int]) -> None:
        if not fps > 0:
            raise ValueError(f"a video needs a positive frame rate, got {fps}")
        self.size = (int(size[0]), int(size[1]))
        self.path, self._writer = self._open(Path(stem), float(fps))

    def _open(self, stem: Path, fps: float) -> Tuple[Path, cv2.VideoWriter]:
        stem.parent.mkdir(parents=True, exist_ok=True)
        for suffix, codec in WRITER_CODECS:
            path = stem.with_name(stem.name + suffix)
            with _quiet_opencv():
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, self.size)
            if writer.isOpened():
                return path, writer
            writer.release()
            path.unlink(missing_ok=True)
        tried = ", ".join(f"{codec} {suffix}" for suffix, codec in WRITER_CODECS)
        raise OSError(f"cannot write a video next to {stem}: OpenCV can write none of {tried}")

    def write(self, frame: np.ndarray) -> None:
        """Appends a BGR uint8 [H, W, 3] frame of the sink's size."""
        height, width = frame.shape[:2]
        if (width, height) != self.size:
            raise ValueError(
                f"{self.path}: frame of {height}x{width} in a video of {self.size[1]}x{self.size[0]} frames"
            )
        self._writer.write(np.ascontiguousarray(frame))

    def release(self) -> None:
        """Finishes the file (safe to call twice)."""
        self._writer.release()
