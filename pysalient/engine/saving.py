"""Writing predictions to disk, for ``Predictor.predict(save=...)`` and ``pysalient predict`` alike.

One folder (``save_dir``, by default a new ``runs/predict/exp``, ``exp2``... created on the first write only) holds:

- ``<stem>.jpg``: the overlay of each image (:meth:`~pysalient.structures.Result.plot`); the frames of a video or
  camera go into one annotated video ``<video stem>.mp4`` (or ``.avi``, see :class:`~pysalient.utils.video.VideoSink`)
  at the source's frame rate (:data:`DEFAULT_FPS` when it does not say);
- ``masks/<stem>_<i>.png``: instance ``i`` of each image as a 0/255 uint8 PNG of the image's size;
- ``labels/<stem>.txt``: one line per instance, ``class x1 y1 x2 y2 score`` (see :func:`label_lines`);
- ``predictions.json``: COCO-like ``images`` / ``annotations`` (RLE masks) / ``categories``.

Stems are the source file names without their suffix (a video frame adds ``_<frame number>``); a name seen
before gets ``_2``, ``_3``... and descriptions such as ``"numpy array"`` become ``numpy_array``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Union
from urllib.parse import urlparse

import cv2
import numpy as np

from pysalient.engine.run_files import new_run_dir
from pysalient.structures import Result
from pysalient.utils.atomic import atomic_write_bytes, atomic_write_json
from pysalient.utils.image_io import URL_SCHEMES, SourceImage
from pysalient.utils.video import VideoSink

PathLike = Union[str, os.PathLike]

DEFAULT_PROJECT = Path("runs") / "predict"
DEFAULT_NAME = "exp"
OVERLAY_SUFFIX = ".jpg"
MASKS_DIR = "masks"
LABELS_DIR = "labels"
PREDICTIONS_FILE = "predictions.json"
DEFAULT_FPS = 30.0
_UNSAFE_CHARACTERS = re.compile(r'[\s\\/:*?"<>|]+')


def label_lines(result: Result, decimals: int = 6) -> List[str]:
    """The ``save_txt`` lines of a result: ``class x1 y1 x2 y2 score`` per instance, in the Result's order.

    ``class`` is the label index (an int, see ``names``); ``x1 y1 x2 y2`` the box corners divided by the image
    width (x) and height (y), in [0, 1]; ``score`` the confidence. Numbers are separated by one space.

    Args:
        result: detections of one image.
        decimals: digits after the point of the coordinates and score.

    Returns:
        One string per instance (no newline).
    """
    height, width = result.image_size
    scale = np.array([width, height, width, height], dtype=np.float64)
    boxes = np.clip(result.boxes.detach().cpu().double().numpy() / scale, 0.0, 1.0)
    lines = []
    for label, box, score in zip(result.labels.tolist(), boxes, result.scores.tolist()):
        numbers = " ".join(f"{value:.{decimals}f}" for value in (*box, score))
        lines.append(f"{int(label)} {numbers}")
    return lines


def describe_outputs(
    save_dir: PathLike, overlays: bool = False, masks: bool = False, txt: bool = False, json: bool = False
) -> str:
    """``"overlays in D, masks in D/masks, labels in D/labels, detections in D/predictions.json"`` for what is on."""
    folder = Path(save_dir)
    parts = []
    if overlays:
        parts.append(f"overlays in {folder}")
    if masks:
        parts.append(f"masks in {folder / MASKS_DIR}")
    if txt:
        parts.append(f"labels in {folder / LABELS_DIR}")
    if json:
        parts.append(f"detections in {folder / PREDICTIONS_FILE}")
    return ", ".join(parts) if parts else f"nothing saved (folder {folder})"


def source_stem(source: SourceImage) -> str:
    """The file-name stem of a source's outputs before de-duplication (a video's for its frames)."""
    name = source.video if source.is_frame else source.path
    if name.lower().startswith(URL_SCHEMES):
        name = urlparse(name).path
    return _UNSAFE_CHARACTERS.sub("_", Path(name).stem).strip("_") or "image"


class PredictionWriter:
    """Writes the outputs of a sequence of predictions (see the module docstring for the layout).

    Call :meth:`write` once per result, then :meth:`close` (or use it as a context manager): that finishes the
    annotated videos and writes ``predictions.json``.

    Args:
        names: class index -> class name (the ``categories`` of the json).
        save_dir: the output folder, created when first written to; None: a new ``runs/predict/expN`` (relative to
            the working directory) created on the first write.
        overlays: write overlays (images) and annotated videos (frames).
        masks: write one PNG per instance mask.
        txt: write one label file per image.
        json: write ``predictions.json``.
    """

    def __init__(
        self,
        names: Mapping[int, str],
        save_dir: Optional[PathLike] = None,
        overlays: bool = False,
        masks: bool = False,
        txt: bool = False,
        json: bool = False,
    ) -> None:
        self.names = dict(names)
        self.overlays, self.masks, self.txt, self.json = overlays, masks, txt, json
        self._requested_dir = None if save_dir is None else Path(save_dir)
        self._save_dir: Optional[Path] = None
        self._stems: Dict[Tuple[int, str], str] = {}
        self._used_stems: Set[str] = set()
        self._sink: Optional[VideoSink] = None
        self._sink_key: Optional[Tuple[int, str]] = None
        self.videos: List[Path] = []
        self._images: List[Dict[str, Any]] = []
        self._annotations: List[Dict[str, Any]] = []

    @property
    def enabled(self) -> bool:
        """Whether anything is to be written."""
        return self.overlays or self.masks or self.txt or self.json

    @property
    def save_dir(self) -> Optional[Path]:
        """The output folder once something was written to it (None before)."""
        return self._save_dir

    def describe(self) -> str:
        """Where the outputs went, as :func:`describe_outputs` says it."""
        folder = self._save_dir or self._requested_dir or DEFAULT_PROJECT / DEFAULT_NAME
        return describe_outputs(folder, self.overlays, self.masks, self.txt, self.json)

    def write(self, result: Result, source: SourceImage) -> None:
        """Writes the outputs of one result; ``source`` is the image it was predicted on."""
        stem = self._stem(source)
        overlay = None
        if self.overlays:
            overlay = self._write_frame(result, source) if source.is_frame else self._write_overlay(result, stem)
        if self.masks:
            self._write_masks(result, stem)
        if self.txt:
            text = "".join(line + "\n" for line in label_lines(result))
            atomic_write_bytes(self._folder() / LABELS_DIR / f"{stem}.txt", text.encode("utf-8"), durable=False)
        if self.json:
            self._record(result, source, overlay)

    def close(self) -> None:
        """Finishes the annotated video being written and writes ``predictions.json`` (if asked for)."""
        self._release_sink()
        if self.json and self._images:
            categories = [{"id": label + 1, "name": name} for label, name in sorted(self.names.items())]
            data = {"images": self._images, "annotations": self._annotations, "categories": categories}
            atomic_write_json(self._folder() / PREDICTIONS_FILE, data)

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- helpers
    def _folder(self) -> Path:
        if self._save_dir is None:
            if self._requested_dir is None:
                self._save_dir = new_run_dir(DEFAULT_PROJECT, DEFAULT_NAME)
            else:
                self._requested_dir.mkdir(parents=True, exist_ok=True)
                self._save_dir = self._requested_dir
        return self._save_dir

    def _stem(self, source: SourceImage) -> str:
        key = (source.index, source.video if source.is_frame else source.path)
        if key not in self._stems:
            base = source_stem(source)
            stem, number = base, 1
            while stem in self._used_stems:
                number += 1
                stem = f"{base}_{number}"
            self._used_stems.add(stem)
            self._stems[key] = stem
        stem = self._stems[key]
        return f"{stem}_{source.frame}" if source.is_frame else stem

    def _write_overlay(self, result: Result, stem: str) -> str:
        name = stem + OVERLAY_SUFFIX
        result.save(str(self._folder() / name))
        return name

    def _write_frame(self, result: Result, source: SourceImage) -> str:
        key = (source.index, str(source.video))
        if self._sink is None or self._sink_key != key:
            self._release_sink()
            height, width = result.image_size
            stem = self._stems[key]
            self._sink = VideoSink(self._folder() / stem, source.fps or DEFAULT_FPS, (width, height))
            self._sink_key = key
            self.videos.append(self._sink.path)
        self._sink.write(result.plot())
        return self._sink.path.name

    def _release_sink(self) -> None:
        if self._sink is not None:
            self._sink.release()
            self._sink, self._sink_key = None, None

    def _write_masks(self, result: Result, stem: str) -> None:
        folder = self._folder() / MASKS_DIR
        for index, mask in enumerate(result.masks.detach().cpu().numpy()):
            encoded_ok, encoded = cv2.imencode(".png", mask.astype(np.uint8) * 255)
            if not encoded_ok:
                raise OSError(f"cannot encode mask {index} of {result.path} as PNG")
            atomic_write_bytes(folder / f"{stem}_{index}.png", encoded.tobytes(), durable=False)

    def _record(self, result: Result, source: SourceImage, overlay: Optional[str]) -> None:
        self._folder()  # the json is written at close(); its folder exists from the first result on
        image_id = len(self._images) + 1
        height, width = result.image_size
        entry: Dict[str, Any] = {"id": image_id, "file_name": source.video or source.path}
        if source.is_frame:
            entry["frame"] = source.frame
        entry.update({"height": height, "width": width})
        if overlay is not None:
            entry["overlay"] = overlay
        self._images.append(entry)
        for annotation in result.to_coco(image_id):
            self._annotations.append({"id": len(self._annotations) + 1, **annotation})
