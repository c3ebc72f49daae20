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

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Writes a pysalient checkpoint (state dict + config + class names) atomically; returns the path."""
        checkpoint = model_checkpoint(
            self.network, self.family.name, self.name, self.config.to_dict(), list(self.names.values())
        )
        return str(atomic_torch_save(checkpoint, path))

    def __repr__(self) -> str:
        return f"SalientModel({self.name}, {len(self.names)} classes, device={self.device})"
