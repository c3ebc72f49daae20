"""``SalientModel``: the eager model ``pysalient.load`` returns: predict, evaluate, train, export, save."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from pysalient.engine.checkpoint import atomic_torch_save, model_checkpoint
from pysalient.engine.predictor import Detections, DeviceLike, Predictor
from pysalient.inputs import Preprocessor
from pysalient.layers.fold_norm import fold_conv_norms
from pysalient.models.family import FamilyConfig
from pysalient.models.registry import FamilySpec
from pysalient.utils.device import select_device

__all__ = ["SalientModel", "select_device"]


class SalientModel(Predictor):
    """A network of one family with its config and class names, behind the ``predict`` facade.

    ``predict`` runs the family's :class:`~pysalient.inputs.Preprocessor` on each image and the family's detector
    (``FamilySpec.build_detector``) on the padded batch: the two modules an export puts in its graph.

    Attributes:
        network: the ``nn.Module`` (eval mode).
        family: the family contract.
        config: the family's config.
        names: class index -> class name.
        name: the registry entry name.
        fused: True after :meth:`fuse` (batch norms folded into the convolutions: inference only).
    """

    def __init__(
        self, network: nn.Module, family: FamilySpec, config: FamilyConfig, class_names: Sequence[str], name: str
    ) -> None:
        self.network = network.eval()
        self.family = family
        self.config = config
        self.names: Dict[int, str] = dict(enumerate(class_names))
        self.name = name
        self.fused = False

    @property
    def device(self) -> torch.device:
        """Where the network's parameters live."""
        return next(self.network.parameters()).device

    @property
    def default_conf(self) -> float:
        """The config's default minimum score (``InferenceSpec.score_threshold``)."""
        return self.config.inference_spec().score_threshold

    @property
    def test_size(self) -> int:
        """The shortest side (both sides for a fixed-size family) images are resized to by default."""
        return self.config.input_spec().min_size

    def to(self, device: Union[str, int, torch.device]) -> SalientModel:
        """Moves the network; returns self."""
        self.network.to(select_device(device))
        return self

    def _prepare(self, imgsz: Optional[int], device: DeviceLike) -> None:
        if device is not None:
            self.to(device)

    def _detect_batch(
        self, images: Sequence[np.ndarray], conf: float, imgsz: Optional[int], max_det: Optional[int]
    ) -> List[Detections]:
        """Preprocesses each image, then runs the detector once per group of images of one padded size.

        Padding reaches global pooling in some networks (SparseInst's pyramid pooling), so images are only batched
        with images of the same padded size: every image sees exactly the input it would see alone, and results do
        not depend on ``batch``.
        """
        device = self.device
        preprocessor = Preprocessor(self.config.input_spec().replace(min_size=imgsz)).to(device)
        detector = self.family.build_detector(
            self.network, self.config, self.config.inference_spec().replace(max_det=max_det)
        )
        self.network.eval()
        threshold = torch.tensor(conf, dtype=torch.float32, device=device)
        groups: Dict[Tuple[int, int], List[int]] = {}
        inputs: List[Tuple[torch.Tensor, List[int]]] = []
        with torch.inference_mode():
            for index, image in enumerate(images):
                pixels, resized_hw = preprocessor(torch.from_numpy(np.ascontiguousarray(image)).to(device))
                inputs.append((pixels, resized_hw))
                groups.setdefault((int(pixels.shape[-2]), int(pixels.shape[-1])), []).append(index)
            results: List[Optional[Detections]] = [None] * len(images)
            for members in groups.values():
                batch = torch.stack([inputs[index][0] for index in members])
                sizes = [inputs[index][1] for index in members]
                outputs = [[int(images[index].shape[0]), int(images[index].shape[1])] for index in members]
                for index, detection in zip(members, detector(batch, sizes, outputs, threshold)):
                    results[index] = detection
        return [result for result in results if result is not None]

    def fuse(self) -> SalientModel:
        """Folds every batch norm into its convolution, in place, for faster inference; returns self.

        The outputs stay the same up to float rounding (see :func:`pysalient.layers.fold_conv_norms`): the
        FrozenBN ResNet-50 entries run about 5 % faster on a CPU. A fused model predicts, evaluates and exports;
        it cannot train or be saved as a checkpoint (its state dict has other keys): load the model again for
        that. Calling it twice is harmless.
        """
        fold_conv_norms(self.network)
        self.fused = True
        return self

    def _refuse_if_fused(self, action: str) -> None:
        if self.fused:
            raise ValueError(
                f"cannot {action} a fused model (fuse() folded its batch norms for inference): load it again "
                "with pysalient.load(...) to " + action
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
            ValueError: the model was fused (:meth:`fuse`).
        """
        self._refuse_if_fused("train")
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
        """Writes a deployable graph: uint8 BGR image (and the minimum score) in, boxes/scores/labels/masks out.

        Pre- and post-processing are inside the graph (see :mod:`pysalient.export.contract`) and the metadata
        (``pysalient.json``: class names, sizes, thresholds, versions) inside the file; ``pysalient.load(path)``
        runs it with the same ``predict`` API. The model itself is not changed.

        Args:
            format: ``"torchscript"`` (``.ts``, ``torch.jit.script``) or ``"aoti"`` (``.pt2``, ``torch.export`` with
                dynamic height and width + AOTInductor; compiling takes minutes) or ``"onnx"`` (``.onnx``, the same
                program as standard ONNX operators, run by ONNX Runtime / TensorRT; ``pip install pysalient[onnx]``).
            path: the file to write (atomically).
            imgsz: shortest side inside the graph (the config's test size when None).
            half: fp16 network, for GPUs (scores and boxes stay float32).
            **options: ``conf`` (the graph's default minimum score; callers may pass another at run time),
                ``max_det``, ``device``; for ``"aoti"`` and ``"onnx"`` also ``min_input_size`` / ``max_input_size`` (see
                :mod:`pysalient.export.formats`). Unsupported options fail before any work.

        Returns:
            The written path.
        """
        from pysalient.export.exporter import export_model  # torch.jit/torch.export machinery: import on use

        return export_model(self, format, path, imgsz=imgsz, half=half, **options)

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Writes a pysalient checkpoint (state dict + config + class names) atomically; returns the path.

        Raises:
            ValueError: the model was fused (:meth:`fuse`).
        """
        self._refuse_if_fused("save")
        checkpoint = model_checkpoint(
            self.network, self.family.name, self.name, self.config.to_dict(), list(self.names.values())
        )
        return str(atomic_torch_save(checkpoint, path))

    def __repr__(self) -> str:
        return f"SalientModel({self.name}, {len(self.names)} classes, device={self.device})"
