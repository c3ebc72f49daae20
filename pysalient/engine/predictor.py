"""``Predictor``: what eager models (:class:`~pysalient.engine.model.SalientModel`) and exported ones
(:class:`~pysalient.engine.exported.ExportedModel`) share: ``predict`` with its argument checks and its stream/batch
loop, ``evaluate``, ``names`` and ``device``.

A subclass implements :meth:`Predictor._detect_batch` (images in, one ``(boxes, scores, labels, masks)`` tuple per
image out) and the operations it cannot do raise one clear ``ValueError``.

``conf`` means one thing everywhere: the minimum score of a returned instance, applied last (a family's internal
candidate rules, such as a pre-NMS threshold or a top-k, are config values). ``predict`` defaults to the model's
default (:data:`pysalient.models.family.DEFAULT_CONF` for every shipped family; the CLI and the C++ runtime use
the same value), ``evaluate`` to :data:`pysalient.models.family.EVALUATION_CONF` (0: AP needs the low-score tail).
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

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
    ) -> Union[List[Result], Iterator[Result]]:
        """Segments the salient instances of every image in ``source``.

        Args:
            source: a path, directory, glob, list, numpy BGR array, PIL image or tensor (see
                :mod:`pysalient.utils.image_io`).
            conf: minimum score of a returned instance, in [0, 1] (:attr:`default_conf` when None).
            imgsz: shortest side the images are resized to (the model's test size when None).
            batch: images per forward pass; results do not depend on it (only images whose padded sizes agree
                share a forward pass).
            device: where to run; the model's current device when None.
            stream: return a generator that yields results as they are computed (constant memory).
            max_det: at most this many instances per image (the model's cap when None).

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
        results = self._predict_stream(iterate_sources(source), conf, imgsz, batch, max_det)
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
    ) -> Dict[str, float]:
        """COCO mask and box AP on a COCO-json dataset (see :func:`pysalient.engine.evaluator.evaluate_model`).

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

        Returns:
            ``AP, AP50, AP70, AP75, APs, APm, APl`` (masks) and ``bbox_AP ...`` (boxes) in percent.
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
        self, images: Iterator[SourceImage], conf: float, imgsz: Optional[int], batch: int, max_det: Optional[int]
    ) -> Iterator[Result]:
        while chunk := list(itertools.islice(images, batch)):
            detections = self._detect_batch([item.image for item in chunk], conf, imgsz, max_det)
            for item, (boxes, scores, labels, masks) in zip(chunk, detections):
                yield Result(
                    masks=masks.to(torch.bool).cpu(),
                    boxes=boxes.float().cpu(),
                    scores=scores.float().cpu(),
                    labels=labels.cpu(),
                    names=self.names,
                    orig_img=item.image,
                    path=item.path,
                )

    def _unsupported(self, operation: str, reason: str) -> ValueError:
        return ValueError(f"{self!r} cannot {operation}: {reason}")


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
