"""``Predictor``: what eager models (:class:`~pysalient.engine.model.SalientModel`) and exported ones
(:class:`~pysalient.engine.exported.ExportedModel`) share: ``predict`` with its argument checks, its stream/batch
loop, its timing (``verbose``) and its outputs (``save*``, written by :mod:`pysalient.engine.saving`), ``evaluate``,
``names`` and ``device``.

A subclass implements :meth:`Predictor._detect_batch` (images in, one ``(boxes, scores, labels, masks)`` tuple per
image out) and the operations it cannot do raise one clear ``ValueError``.

``conf`` means one thing everywhere: the minimum score of a returned instance, applied last (a family's internal
candidate rules, such as a pre-NMS threshold or a top-k, are config values). ``predict`` defaults to the model's
default (:data:`pysalient.models.family.DEFAULT_CONF` for every shipped family; the CLI and the C++ runtime use
the same value), ``evaluate`` to :data:`pysalient.models.family.EVALUATION_CONF` (0: AP needs the low-score tail).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pysalient.engine.saving import PredictionWriter
from pysalient.models.family import EVALUATION_CONF, check_conf
from pysalient.structures import Result
from pysalient.utils.image_io import SourceImage, iterate_sources

DeviceLike = Union[None, str, int, torch.device]
Detections = Tuple[Tensor, Tensor, Tensor, Tensor]


class Predictor:
    """Base of every object ``pysalient.load`` returns.

    Attributes:
        names: class index -> class name.
        name: the registry entry the model is (or was exported from).
    """

    names: Dict[int, str]
    name: str

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        raise NotImplementedError

    @property
    def default_conf(self) -> float:
        """The minimum score ``predict`` applies when ``conf`` is None."""
        raise NotImplementedError

    @property
    def test_size(self) -> int:
        """The size images are resized to when ``imgsz`` is None (shortest side, or both sides when fixed)."""
        raise NotImplementedError

    def predict(
        self,
        source: Any,
        conf: Optional[float] = None,
        imgsz: Optional[int] = None,
        batch: int = 1,
        device: DeviceLike = None,
        stream: bool = False,
        max_det: Optional[int] = None,
        save: bool = False,
        save_masks: bool = False,
        save_txt: bool = False,
        save_json: bool = False,
        save_dir: Union[None, str, os.PathLike] = None,
        verbose: bool = False,
    ) -> Union[List[Result], Iterator[Result]]:
        """Segments the salient instances of every image (or video frame) in ``source``.

        Args:
            source: a path (image or video), directory, glob, http(s) URL, camera index, list, numpy BGR array, PIL
                image or tensor (see :mod:`pysalient.utils.image_io`); a video gives one result per frame.
            conf: minimum score of a returned instance, in [0, 1] (:attr:`default_conf` when None).
            imgsz: shortest side the images are resized to (the model's test size when None).
            batch: images per forward pass; results do not depend on it (only images whose padded sizes agree
                share a forward pass).
            device: where to run; the model's current device when None.
            stream: return a generator that yields results as they are computed (constant memory, also for
                videos); a camera never ends, so it needs ``stream=True``.
            max_det: at most this many instances per image (the model's cap when None).
            save: write each image's overlay as ``<stem>.jpg``, and the frames of a video or camera as one
                annotated video ``<video stem>.mp4`` (``.avi`` where mp4 cannot be written) at its frame rate.
            save_masks: write each instance mask as a 0/255 PNG ``masks/<stem>_<i>.png`` (i: the instance's
                position in the result).
            save_txt: write ``labels/<stem>.txt``, one line ``class x1 y1 x2 y2 score`` per instance: the class
                index, the box corners divided by the image width (x) and height (y), so in [0, 1], and the
                score, separated by spaces (see :func:`pysalient.engine.saving.label_lines`).
            save_json: write ``predictions.json``: COCO-like images, annotations (RLE masks) and categories.
            save_dir: the folder of what is saved; None means a new ``runs/predict/exp``, ``exp2``... in the working
                directory. It is created only when something is written; each result's ``save_dir`` names it.
            verbose: print one line per image: its number, source, size, instance count and the time spent
                reading it (decoding, downloading), in inference (resizing, the network and mask pasting: the
                model's ``_detect_batch``, divided among the images of a batch) and in postprocess (building the
                Result and saving).

        Returns:
            One :class:`~pysalient.structures.Result` per image (masks at the original size), sorted by decreasing
            score, as a list or, with ``stream=True``, a generator.

        Raises:
            ValueError: an argument out of range (named in the message).
        """
        conf = self.default_conf if conf is None else check_conf(conf)
        _check_positive_int(batch, "batch")
        if imgsz is not None:
            _check_positive_int(imgsz, "imgsz")
        if max_det is not None:
            _check_positive_int(max_det, "max_det")
        self._prepare(imgsz, device)
        writer = PredictionWriter(self.names, save_dir, overlays=save, masks=save_masks, txt=save_txt, json=save_json)
        results = self._predict_stream(
            iterate_sources(source), conf, imgsz, batch, max_det, writer if writer.enabled else None, verbose
        )
        return results if stream else list(results)

    __call__ = predict

    def evaluate(
        self,
        data: Union[str, os.PathLike],
        image_root: Union[None, str, os.PathLike] = None,
        imgsz: Optional[int] = None,
        batch: int = 4,
        conf: Optional[float] = None,
        save_json: Union[None, str, os.PathLike] = None,
        class_agnostic: Optional[bool] = None,
        verbose: bool = False,
        max_dets: Sequence[int] = (1, 10, 100),
    ) -> Dict[str, float]:
        """COCO mask and box AP and AR on a COCO-json dataset (see :func:`pysalient.engine.evaluator.evaluate_model`).

        Args:
            data: the COCO instances json of the ground truth.
            image_root: folder of the images (found next to the json when None).
            imgsz: test-time shortest side (the model's test size when None).
            batch: images per forward pass.
            conf: minimum score; :data:`~pysalient.models.family.EVALUATION_CONF` (0) when None, so that AP sees
                every instance the family's own candidate rules produce, as the official evaluations do.
            save_json: where to write the detections as a COCO results json, if anywhere.
            class_agnostic: ignore categories; None means only for a one-class model on a multi-class dataset.
            verbose: print pycocotools' summary tables.
            max_dets: detections per image of the average recalls ``AR@N`` (COCOeval ``maxDets``; InstanceFCN's
                proposal protocol is ``(10, 100, 1000)``); counts above 100 predict that many instances per image.

        Returns:
            ``AP, AP50, AP70, AP75, APs, APm, APl, AR@N`` (masks) and ``bbox_AP ...`` (boxes) in percent.
        """
        from pysalient.engine.evaluator import evaluate_model  # pycocotools: imported on use

        return evaluate_model(
            self,
            data,
            image_root=image_root,
            imgsz=imgsz,
            conf=EVALUATION_CONF if conf is None else conf,
            batch=batch,
            out_json=save_json,
            class_agnostic=class_agnostic,
            verbose=verbose,
            max_dets=max_dets,
        )

    # ------------------------------------------------------------------------------------ subclass hooks
    def _prepare(self, imgsz: Optional[int], device: DeviceLike) -> None:
        """Checks what only the subclass can (``imgsz``, ``device``) and moves the model if it may."""

    def _detect_batch(
        self, images: Sequence[np.ndarray], conf: float, imgsz: Optional[int], max_det: Optional[int]
    ) -> List[Detections]:
        """Per BGR uint8 [H, W, 3] image: boxes [K, 4], scores [K], labels [K], masks uint8 [K, H, W]."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- helpers
    def _predict_stream(
        self,
        images: Iterator[SourceImage],
        conf: float,
        imgsz: Optional[int],
        batch: int,
        max_det: Optional[int],
        writer: Optional[PredictionWriter] = None,
        verbose: bool = False,
    ) -> Iterator[Result]:
        try:
            while chunk := _read_chunk(images, batch):
                start = time.perf_counter()
                detections = self._detect_batch([item.image for item, _ in chunk], conf, imgsz, max_det)
                if verbose and self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)  # else the GPU's time would count as postprocess
                inference_ms = _elapsed_ms(start) / len(chunk)
                for (item, read_ms), detection in zip(chunk, detections):
                    start = time.perf_counter()
                    result = self._make_result(item, detection, writer)
                    if verbose:
                        print(progress_line(item, result, read_ms, inference_ms, _elapsed_ms(start)), flush=True)
                    yield result
        finally:
            if writer is not None:
                writer.close()

    def _make_result(self, item: SourceImage, detection: Detections, writer: Optional[PredictionWriter]) -> Result:
        boxes, scores, labels, masks = detection
        result = Result(
            masks=masks.to(torch.bool).cpu(),
            boxes=boxes.float().cpu(),
            scores=scores.float().cpu(),
            labels=labels.cpu(),
            names=self.names,
            orig_img=item.image,
            path=item.path,
        )
        if writer is not None:
            writer.write(result, item)
            result.save_dir = None if writer.save_dir is None else str(writer.save_dir)
        return result

    def _unsupported(self, operation: str, reason: str) -> ValueError:
        return ValueError(f"{self!r} cannot {operation}: {reason}")


def progress_line(item: SourceImage, result: Result, read_ms: float, inference_ms: float, post_ms: float) -> str:
    """The ``verbose`` line of one image.

    ``image 1/3 a.jpg: 480x640 2 instances, 3.1ms read, 40.2ms inference, 3.0ms postprocess``; a frame reads
    ``video 1/1 (frame 12/300) clip.mp4: ...`` (``(frame 12)`` when the frame count is unknown, as for cameras).
    """
    if item.is_frame:
        of_total = f"/{item.frames}" if item.frames else ""
        where = f"video {item.index + 1}/{item.count} (frame {item.frame}{of_total}) {item.video}"
    else:
        where = f"image {item.index + 1}/{item.count} {item.path}"
    height, width = result.image_size
    count = len(result)
    return (
        f"{where}: {height}x{width} {count} instance{'' if count == 1 else 's'}, {read_ms:.1f}ms read, "
        f"{inference_ms:.1f}ms inference, {post_ms:.1f}ms postprocess"
    )


def _read_chunk(images: Iterator[SourceImage], size: int) -> List[Tuple[SourceImage, float]]:
    """Up to ``size`` images, each with the milliseconds its reading took."""
    chunk = []
    for _ in range(size):
        start = time.perf_counter()
        item = next(images, None)
        if item is None:
            break
        chunk.append((item, _elapsed_ms(start)))
    return chunk


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
