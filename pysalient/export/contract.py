"""The export contract shared by every family: one BGR uint8 image in, detections at its size out.

An exported model is an :class:`ExportContract`: it takes ONE image, uint8 ``[H, W, 3]`` in **BGR** order (what
OpenCV gives a C++ program), and the minimum score ``conf`` (a float32 0-d tensor; TorchScript graphs default to
the exported value), and does everything inside the graph:

1. the family's :class:`~pysalient.inputs.Preprocessor` (the module eager ``predict`` runs): resize by the
   family's :class:`~pysalient.inputs.InputSpec` rule (shortest edge or fixed size; the size rule is
   :func:`pysalient.utils.resize.resized_hw` itself in TorchScript, its exact symbolic variant under
   ``torch.export``), Pillow-identical pixels, channel order, normalisation, zero padding;
2. a cast to the network dtype (fp16 exports);
3. the family's detector (``FamilySpec.build_detector``, the module eager ``predict`` runs): network +
   post-processing with ``conf`` applied before masks are pasted at the input resolution.

K, the resized size and the output sizes are all dynamic. It returns ``(boxes float32 [K, 4] xyxy, scores float32
[K], labels int64 [K], masks uint8 [K, H, W])``, sorted by decreasing score.

Metadata travels inside each artifact as the JSON text ``pysalient.json`` (TorchScript extra file; AOTInductor
package metadata under the same key), see :func:`contract_metadata` for its keys.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from pysalient.inputs import InputSpec, Preprocessor
from pysalient.models.family import InferenceSpec

METADATA_KEY = "pysalient.json"
# 2: the graph takes (image, conf) and applies conf to the final score; 1: (image) with the threshold baked in.
METADATA_FORMAT_VERSION = 2
INPUT_CHANNEL_ORDER = "BGR"
OUTPUT_NAMES = ("boxes", "scores", "labels", "masks")


class ExportContract(nn.Module):
    """The exported module: uint8 BGR image [H, W, 3] (+ conf) -> (boxes, scores, labels, masks) at [H, W].

    Args:
        preprocessor: the family's input pipeline.
        detector: the family's detector (``FamilySpec.build_detector``).
        conf: the default minimum score (used by TorchScript graphs called with the image only).
        dtype: dtype of the network input (``torch.float16`` for fp16 exports); normalisation is float32.
    """

    def __init__(
        self, preprocessor: Preprocessor, detector: nn.Module, conf: float, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        if dtype not in (torch.float32, torch.float16):
            raise ValueError(f"export dtype must be float32 or float16, got {dtype}")
        self.preprocessor = preprocessor
        self.detector = detector
        self.half = dtype == torch.float16
        self.register_buffer("default_conf", torch.tensor(float(conf), dtype=torch.float32))

    def forward(self, image: Tensor, conf: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detects the salient instances of one image.

        Args:
            image: uint8 [H, W, 3], BGR.
            conf: float32 0-d tensor in [0, 1], the minimum score of a returned instance; the exported default
                when None.

        Returns:
            boxes float32 [K, 4] (x1, y1, x2, y2) in input pixels, scores float32 [K], labels int64 [K] and
            masks uint8 [K, H, W] (1 = instance), sorted by decreasing score.
        """
        threshold = self.default_conf if conf is None else conf
        if torch.jit.is_scripting():
            if image.dim() != 3 or image.shape[2] != 3 or image.dtype != torch.uint8:
                raise ValueError("pysalient export: the input must be one uint8 [H, W, 3] BGR image")
            value = float(threshold.item())
            if not (value >= 0.0 and value <= 1.0):  # also rejects NaN
                raise ValueError("pysalient export: conf must lie in [0, 1]")
        else:
            _check_traced_image(image)
        height, width = image.shape[0], image.shape[1]
        pixels, resized_hw = self.preprocessor(image)
        batch = pixels.unsqueeze(0)
        if self.half:
            batch = batch.to(torch.float16)
        return self.detector(batch, [resized_hw], [[height, width]], threshold.to(torch.float32))[0]


def _check_traced_image(image: Tensor) -> None:
    # torch._check (not if/raise) so that torch.export records the conditions instead of specialising on them.
    torch._check(image.dim() == 3, lambda: f"pysalient export: expected a uint8 [H, W, 3] image, got {image.shape}")
    torch._check(image.shape[2] == 3, lambda: f"pysalient export: expected 3 (BGR) channels, got {image.shape}")
    torch._check(image.dtype == torch.uint8, lambda: f"pysalient export: expected uint8 pixels, got {image.dtype}")


def contract_metadata(
    *,
    family: str,
    name: str,
    class_names: Sequence[str],
    input_spec: InputSpec,
    inference: InferenceSpec,
    export_format: str,
    half: bool,
    device: torch.device,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The ``pysalient.json`` description stored inside an exported artifact.

    Keys (all JSON types): ``format_version`` (2), ``format`` (``"torchscript"`` / ``"aoti"``), ``family``,
    ``name``, ``pysalient_version``, ``ops_version`` (``pysalient._C.__version__`` of the op library, or null),
    ``torch_version``, ``class_names`` (label -> name), ``input`` (``{"dtype": "uint8", "layout": "HWC",
    "channel_order": "BGR"}``), ``resize`` (``"shortest_edge"`` / ``"fixed"``), ``imgsz`` (shortest side, or both
    sides when fixed, inside the graph), ``max_size``, ``size_divisibility``,
    ``min_padded_size``, ``conf`` (the default minimum score,
    the graph's second input), ``thresholds`` (``{"conf": ..., "mask": ..., "nms": ... or null}``), ``max_det``,
    ``dtype`` (``"fp32"`` / ``"fp16"``, the network's), ``device`` (``"cpu"`` / ``"cuda"``, where it was exported;
    AOTInductor artifacts only run there), ``inputs`` (``["image", "conf"]``), ``outputs`` (names of the 4
    outputs in order), plus format-specific ``extra`` keys.
    """
    metadata: Dict[str, Any] = {
        "format_version": METADATA_FORMAT_VERSION,
        "format": export_format,
        "family": family,
        "name": name,
        "pysalient_version": _pysalient_version(),
        "ops_version": _ops_version(),
        "torch_version": torch.__version__,
        "class_names": [str(class_name) for class_name in class_names],
        "input": {"dtype": "uint8", "layout": "HWC", "channel_order": INPUT_CHANNEL_ORDER},
        "resize": input_spec.resize,
        "imgsz": input_spec.min_size,
        "max_size": input_spec.max_size,
        "size_divisibility": input_spec.size_divisibility,
        "min_padded_size": input_spec.min_padded_size,
        "conf": float(inference.score_threshold),
        "thresholds": {
            "conf": float(inference.score_threshold),
            "mask": float(inference.mask_threshold),
            "nms": None if inference.nms_threshold is None else float(inference.nms_threshold),
        },
        "max_det": int(inference.max_det),
        "dtype": "fp16" if half else "fp32",
        "device": device.type,
        "inputs": ["image", "conf"],
        "outputs": list(OUTPUT_NAMES),
    }
    metadata.update(extra or {})
    return metadata


def check_metadata(metadata: Any, source: str) -> Dict[str, Any]:
    """Validates a parsed ``pysalient.json``; raises ValueError naming ``source`` and the problem."""
    if not isinstance(metadata, dict):
        raise ValueError(f"{source}: {METADATA_KEY} is not a JSON object")
    version = metadata.get("format_version", 0)
    if not isinstance(version, int) or version > METADATA_FORMAT_VERSION:
        raise ValueError(
            f"{source}: export format_version {version} is newer than this pysalient understands "
            f"({METADATA_FORMAT_VERSION}); upgrade pysalient"
        )
    required = ("format", "family", "name", "class_names", "imgsz", "thresholds", "max_det", "device")
    missing: List[str] = [key for key in required if key not in metadata]
    if missing:
        raise ValueError(f"{source}: {METADATA_KEY} lacks the keys {missing}")
    return metadata


def _pysalient_version() -> str:
    from pysalient.version import __version__

    return __version__


def _ops_version() -> Optional[str]:
    # The pybind module is a build product; a source checkout running on the references may lack it.
    try:
        from pysalient import _C
    except ImportError:
        return None
    return str(getattr(_C, "__version__", None))
