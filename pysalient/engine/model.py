"""``SalientModel``: the object ``pysalient.load`` returns (predict now; train/evaluate/export later)."""

from __future__ import annotations

import itertools
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import torch
from torch import nn

from pysalient.engine.checkpoint import atomic_torch_save, model_checkpoint
from pysalient.engine.sources import SourceImage, iterate_sources
from pysalient.models.registry import FamilySpec
from pysalient.structures import Result


def select_device(device: Union[None, str, int, torch.device]) -> torch.device:
    """``None`` -> CUDA if available else CPU; ints mean CUDA indices; strings as ``torch.device``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, int):
        device = f"cuda:{device}"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available in this torch build")
    return resolved


class SalientModel:
    """A network of one family with its config and class names, behind the ``predict`` facade.

    Attributes:
        network: the ``nn.Module`` (eval mode).
        family: how the family builds, loads and runs its networks.
        config: the family's config object.
        names: class index -> class name.
        name: the registry entry name.
    """

    def __init__(
        self, network: nn.Module, family: FamilySpec, config: Any, class_names: Sequence[str], name: str
    ) -> None:
        self.network = network.eval()
        self.family = family
        self.config = config
        self.names: Dict[int, str] = dict(enumerate(class_names))
        self.name = name

    @property
    def device(self) -> torch.device:
        """Where the network's parameters live."""
        return next(self.network.parameters()).device

    def to(self, device: Union[str, int, torch.device]) -> SalientModel:
        """Moves the network; returns self."""
        self.network.to(select_device(device))
        return self

    def predict(
        self,
        source: Any,
        conf: Optional[float] = None,
        imgsz: Optional[int] = None,
        batch: int = 1,
        device: Union[None, str, int, torch.device] = None,
        stream: bool = False,
        max_det: Optional[int] = None,
    ) -> Union[List[Result], Iterator[Result]]:
        """Segments the salient instances of every image in ``source``.

        Args:
            source: a path, directory, glob, list, numpy BGR array, PIL image or tensor (see
                :mod:`pysalient.engine.sources`).
            conf: minimum class score (the config's ``cls_threshold`` when None).
            imgsz: shortest side the images are resized to (the config's test size when None).
            batch: images per forward pass; images of different sizes are padded into one batch.
            device: where to run (moves the model); the model's current device when None.
            stream: return a generator that yields results as they are computed (constant memory).
            max_det: at most this many instances per image (the config's ``max_det`` when None).

        Returns:
            One :class:`~pysalient.structures.Result` per image (masks at the original size), as a list or,
            with ``stream=True``, a generator.
        """
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if imgsz is not None and imgsz < 1:
            raise ValueError(f"imgsz must be >= 1, got {imgsz}")
        if device is not None:
            self.to(device)
        conf = float(self.config.cls_threshold if conf is None else conf)
        max_det = int(self.config.max_det if max_det is None else max_det)
        results = self._predict_stream(iterate_sources(source), conf, imgsz, batch, max_det)
        return results if stream else list(results)

    __call__ = predict

    def _predict_stream(
        self, images: Iterator[SourceImage], conf: float, imgsz: Optional[int], batch: int, max_det: int
    ) -> Iterator[Result]:
        self.network.eval()
        while chunk := list(itertools.islice(images, batch)):
            detections = self.family.detect(self.network, [item.image for item in chunk], conf, imgsz, max_det)
            for item, detection in zip(chunk, detections):
                yield Result(
                    masks=detection["masks"].cpu(),
                    boxes=detection["boxes"].float().cpu(),
                    scores=detection["scores"].float().cpu(),
                    labels=detection["labels"].cpu(),
                    names=self.names,
                    orig_img=item.image,
                    path=item.path,
                )

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
            imgsz: test-time shortest side (the config's test size when None).
            batch: images per forward pass.
            conf: score threshold (the config's ``cls_threshold``, the official evaluation setting, when None).
            save_json: where to write the detections as a COCO results json, if anywhere.
            class_agnostic: ignore categories; None means only for a one-class model on a multi-class dataset.
            verbose: print pycocotools' summary tables.

        Returns:
            ``AP, AP50, AP70, AP75, APs, APm, APl`` (masks) and ``bbox_AP ...`` (boxes) in percent.
        """
        from pysalient.engine.evaluator import evaluate_model

        return evaluate_model(
            self,
            data,
            image_root=image_root,
            imgsz=imgsz,
            conf=conf,
            batch=batch,
            out_json=save_json,
            class_agnostic=class_agnostic,
            verbose=verbose,
        )

    def train(
        self, data: Union[str, os.PathLike], val: Union[None, str, os.PathLike] = None, **overrides: Any
    ) -> os.PathLike[str]:
        """Trains the network in place, starting from its current weights (see :mod:`pysalient.engine.trainer`).

        Args:
            data: COCO instances json of the training set.
            val: COCO json to validate on during and after training (None: no validation).
            **overrides: :class:`~pysalient.engine.train_config.TrainConfig` fields (``epochs=12``, ``batch=8``,
                ``lr=1e-4``, ``image_root=...``, ``resume=True``...); the device defaults to the model's.

        Returns:
            The run directory (``pathlib.Path``, e.g. ``runs/train/exp``) holding checkpoints and logs.

        Raises:
            pysalient.engine.trainer.TrainingInterrupted: Ctrl-C stopped training (``last.pth`` saved first).
        """
        from pysalient.engine.trainer import train_model  # the trainer pulls in the data pipeline: import on use

        return train_model(self, data, val, **overrides)

    def export(
        self,
        format: str,
        path: Union[str, os.PathLike],
        imgsz: Optional[int] = None,
        half: bool = False,
        **options: Any,
    ) -> str:
        """Writes a deployable graph: uint8 BGR image in, boxes/scores/labels/masks at its size out.

        Pre- and post-processing are inside the graph (see :mod:`pysalient.export.contract`) and the metadata
        (``pysalient.json``: class names, sizes, thresholds, versions) inside the file; ``pysalient.load(path)``
        runs it with the same ``predict`` API. The model itself is not changed.

        Args:
            format: ``"torchscript"`` (``.ts``, ``torch.jit.script``) or ``"aoti"`` (``.pt2``, ``torch.export`` with
                dynamic height and width + AOTInductor; compiling takes minutes).
            path: the file to write (atomically).
            imgsz: shortest side inside the graph (the config's test size when None).
            half: fp16 network, for GPUs (scores and boxes stay float32).
            **options: ``conf``, ``max_det``, ``device``; for ``"aoti"`` also ``min_input_size`` /
                ``max_input_size`` (see :mod:`pysalient.export.formats`). Unsupported options fail before any work.

        Returns:
            The written path.
        """
        from pysalient.export.exporter import export_model  # torch.jit/torch.export machinery: import on use

        return export_model(self, format, path, imgsz=imgsz, half=half, **options)

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Writes a pysalient checkpoint (state dict + config + class names) atomically; returns the path."""
        checkpoint = model_checkpoint(
            self.network, self.family.name, self.name, self.config.to_dict(), list(self.names.values())
        )
        return str(atomic_torch_save(checkpoint, path))

    def __repr__(self) -> str:
        return f"SalientModel({self.name}, {len(self.names)} classes, device={self.device})"
