"""``ExportedModel``: a ``.ts``, ``.pt2`` or ``.onnx`` export behind the same
:class:`~pysalient.engine.predictor.Predictor` API (``predict``, ``evaluate``) as a ``SalientModel``."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pysalient.engine.predictor import Detections, DeviceLike, Predictor
from pysalient.export.formats import format_of_path
from pysalient.models.family import check_conf
from pysalient.utils.device import select_device


class ExportedModel(Predictor):
    """Runs an exported model (TorchScript, AOTInductor or ONNX Runtime) on images, returning :class:`Result` objects.

    The exported graph works on one image at a time and takes ``conf`` as a run-time input, applied inside the
    graph exactly as eager ``predict`` applies it; ``predict`` feeds the images one by one (``batch`` only sets how
    many are read ahead). ``max_det`` can only lower the exported cap; ``imgsz`` must be the exported size.
    Training, exporting and saving need the eager model: they raise a ValueError saying so.

    Args:
        path: a ``.ts``, ``.pt2`` or ``.onnx`` file written by ``SalientModel.export``.
        device: where to run. TorchScript exports can move to any device (default: where they were exported);
            AOTInductor packages only run on the device type they were compiled for (default: that one); ONNX
            models run on ONNX Runtime's CPU provider, or its CUDA provider (default when available).

    Attributes:
        metadata: the ``pysalient.json`` stored in the file (see :func:`pysalient.export.contract.contract_metadata`).
        names: class index -> class name.
        name: the registry entry the export was made from.
        format: ``"torchscript"``, ``"aoti"`` or ``"onnx"``.
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
        elif self.format == "onnx":
            from pysalient.export.onnx import load_onnx

            self._module, self.metadata = load_onnx(self.path, requested)
            self._device = self._module.device
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

    @property
    def default_conf(self) -> float:
        """The minimum score the export was made with (``metadata["conf"]``)."""
        return float(self.metadata.get("conf", self.metadata["thresholds"]["conf"]))

    @property
    def test_size(self) -> int:
        """The size the graph resizes images to (``metadata["imgsz"]``)."""
        return int(self.metadata["imgsz"])

    def _prepare(self, imgsz: Optional[int], device: DeviceLike) -> None:
        if imgsz is not None and imgsz != self.metadata["imgsz"]:
            raise ValueError(
                f"{self.path} was exported for imgsz={self.metadata['imgsz']}; re-export it to run at imgsz={imgsz}"
            )
        if device is not None and select_device(device) != self.device:
            raise ValueError(f"{self.path} is loaded on {self.device}; use pysalient.load(path, device=...) to move it")

    def _detect_batch(
        self, images: Sequence[np.ndarray], conf: float, imgsz: Optional[int], max_det: Optional[int]
    ) -> List[Detections]:
        results = []
        for image in images:
            boxes, scores, labels, masks = self.run(image, conf)
            if max_det is not None:
                boxes, scores, labels, masks = boxes[:max_det], scores[:max_det], labels[:max_det], masks[:max_det]
            results.append((boxes, scores, labels, masks))
        return results

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """Not possible: an export holds no trainable network."""
        raise self._unsupported(
            "train", "an exported graph holds no trainable network; train the checkpoint it came from"
        )

    def export(self, *args: Any, **kwargs: Any) -> Any:
        """Not possible: export the checkpoint the graph came from instead."""
        raise self._unsupported("export", "it is already an export; export the checkpoint it was made from")

    def save(self, *args: Any, **kwargs: Any) -> Any:
        """Not possible: the file is already the saved model."""
        raise self._unsupported("save", f"it is already saved as {self.path}; copy that file")

    def to(self, device: Any) -> Any:
        """Not possible: load the file again with ``pysalient.load(path, device=...)``."""
        raise self._unsupported("move", "use pysalient.load(path, device=...) to load it on another device")

    def run(
        self, image: Union[np.ndarray, Tensor], conf: Optional[float] = None
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Runs the graph on one image.

        Args:
            image: BGR uint8 [H, W, 3], numpy (OpenCV convention) or tensor.
            conf: minimum score of a returned instance, in [0, 1] (the exported default when None).

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
        threshold = self.default_conf if conf is None else check_conf(conf)
        with torch.inference_mode():
            if int(self.metadata.get("format_version", 1)) >= 2:
                outputs = self._module(tensor.to(self.device), torch.tensor(threshold, device=self.device))
            else:  # a version-1 graph takes the image only and applied its exported threshold before rescoring
                outputs = self._module(tensor.to(self.device))
                keep = torch.nonzero(outputs[1] >= threshold).flatten()
                outputs = tuple(output[keep] for output in outputs)
        boxes, scores, labels, masks = outputs
        return boxes, scores, labels, masks

    def __repr__(self) -> str:
        return f"ExportedModel({self.name}, {self.format}, {len(self.names)} classes, device={self.device})"
