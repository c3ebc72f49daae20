"""``ExportedModel``: a ``.ts`` or ``.pt2`` export behind the same ``predict`` API as a ``SalientModel``."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pysalient.engine.model import select_device
from pysalient.engine.sources import SourceImage, iterate_sources
from pysalient.export.formats import format_of_path
from pysalient.structures import Result


class ExportedModel:
    """Runs an exported model (TorchScript or AOTInductor) on images, returning :class:`Result` objects.

    The exported graph works on one image at a time and has its thresholds fixed at export time: ``predict``
    feeds the images one by one (``batch`` is accepted for API compatibility and ignored) and ``conf`` /
    ``max_det`` can only filter further what the graph returns.

    Args:
        path: a ``.ts`` or ``.pt2`` file written by ``SalientModel.export``.
        device: where to run. TorchScript exports can move to any device (default: where they were exported);
            AOTInductor packages only run on the device type they were compiled for (default: that one).

    Attributes:
        metadata: the ``pysalient.json`` stored in the file (see :func:`pysalient.export.contract.contract_metadata`).
        names: class index -> class name.
        name: the registry entry the export was made from.
        format: ``"torchscript"`` or ``"aoti"``.
        path: the file.
    """

    def __init__(self, path: Union[str, os.PathLike], device: Union[None, str, int, torch.device] = None) -> None:
        self.path = os.fspath(path)
        self.format = format_of_path(self.path).name
        requested = None if device is None else select_device(device)
        if self.format == "torchscript":
            from pysalient.export.torchscript import load_torchscript

            self._module, self.metadata = load_torchscript(self.path, requested)
            self._device = next((tensor.device for tensor in self._module.parameters()), torch.device("cpu"))
        else:
            from pysalient.export.aoti import load_aoti

            index = requested.index if requested is not None and requested.index is not None else -1
            self._module, self.metadata = load_aoti(self.path, index)
            compiled = torch.device(self.metadata["device"])
            if requested is not None and requested.type != compiled.type:
                raise ValueError(
                    f"{self.path} was compiled for {compiled.type} and only runs there; export it again with "
                    f"device={requested.type!r} to run on {requested}"
                )
            if requested is None and compiled.type == "cuda":
                requested = torch.device("cuda", torch.cuda.current_device())
            self._device = requested or compiled
        if self.metadata["format"] != self.format:
            raise ValueError(f"{self.path}: the file says it is a {self.metadata['format']} export, not {self.format}")
        self.names: Dict[int, str] = dict(enumerate(self.metadata["class_names"]))
        self.name: str = self.metadata["name"]

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self._device

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
            source: anything :func:`pysalient.engine.sources.iterate_sources` accepts (paths, arrays, ...).
            conf: keep detections whose final score is strictly above it (the graph already applied the exported
                threshold, ``metadata["thresholds"]["conf"]``, to the scores before mask rescoring).
            imgsz: must be None or the exported size (``metadata["imgsz"]``): the resize is inside the graph.
            batch: ignored; exported graphs take one image per call.
            device: only the device the model is on (``None``); load it elsewhere with ``pysalient.load(path,
                device=...)``.
            stream: return a generator instead of a list.
            max_det: keep at most this many detections (at most the exported ``max_det`` are returned anyway).

        Returns:
            One :class:`~pysalient.structures.Result` per image, at the original image size.
        """
        if imgsz is not None and imgsz != self.metadata["imgsz"]:
            raise ValueError(
                f"{self.path} was exported for imgsz={self.metadata['imgsz']}; re-export it to run at imgsz={imgsz}"
            )
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if device is not None and select_device(device) != self.device:
            raise ValueError(f"{self.path} is loaded on {self.device}; use pysalient.load(path, device=...) to move it")
        if max_det is not None and max_det < 1:
            raise ValueError(f"max_det must be >= 1, got {max_det}")
        results = self._predict_stream(iterate_sources(source), conf, max_det)
        return results if stream else list(results)

    __call__ = predict

    def _predict_stream(
        self, images: Iterator[SourceImage], conf: Optional[float], max_det: Optional[int]
    ) -> Iterator[Result]:
        for item in images:
            boxes, scores, labels, masks = self.run(item.image)
            keep = torch.ones_like(scores, dtype=torch.bool) if conf is None else scores > conf
            index = torch.nonzero(keep).flatten()
            if max_det is not None:
                index = index[:max_det]
            yield Result(
                masks=masks[index].to(torch.bool).cpu(),
                boxes=boxes[index].float().cpu(),
                scores=scores[index].float().cpu(),
                labels=labels[index].cpu(),
                names=self.names,
                orig_img=item.image,
                path=item.path,
            )

    def run(self, image: Union[np.ndarray, Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Runs the graph on one image.

        Args:
            image: BGR uint8 [H, W, 3], numpy (OpenCV convention) or tensor.

        Returns:
            The graph's outputs on the model's device: boxes float32 [K, 4], scores float32 [K], labels int64 [K],
            masks uint8 [K, H, W], by decreasing score.
        """
        tensor = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
        if tensor.dtype != torch.uint8 or tensor.dim() != 3 or tensor.shape[2] != 3:
            raise ValueError(f"expected a uint8 [H, W, 3] BGR image, got {tensor.dtype} {tuple(tensor.shape)}")
        low, high = self.metadata.get("input_size_range", [1, None])
        if min(tensor.shape[:2]) < low or (high is not None and max(tensor.shape[:2]) > high):
            raise ValueError(f"{self.path} accepts images with sides in [{low}, {high}], got {tuple(tensor.shape[:2])}")
        with torch.inference_mode():
            outputs = self._module(tensor.to(self.device))
        boxes, scores, labels, masks = outputs
        return boxes, scores, labels, masks

    def __repr__(self) -> str:
        return f"ExportedModel({self.name}, {self.format}, {len(self.names)} classes, device={self.device})"
