"""The export contract shared by every family: one BGR uint8 image in, detections at its size out.

An exported model is an :class:`ExportContract`: it takes ONE image, uint8 ``[H, W, 3]`` in **BGR** order (what
OpenCV gives a C++ program), and does everything inside the graph:

1. resize: shortest side to ``min_size``, longest capped at ``max_size``, sides rounded with ``int(x + 0.5)``
   by :func:`pysalient.utils.resize.resized_hw` itself (detectron2's ``ResizeShortestEdge``,
   scripted into TorchScript graphs; see :meth:`ExportContract._input_sizes` for torch.export), pixels from
   the Pillow-identical ``resize_image`` op;
2. channel order: BGR -> the network's order (``channel_order`` of the family);
3. normalisation ``(x - pixel_mean) / pixel_std`` in float32, then cast to the network dtype (fp16 exports);
4. zero padding at the bottom and right to a multiple of ``size_divisibility``;
5. the family's detector: network + post-processing, masks at the input resolution.

K, the resized size and the output sizes are all dynamic. Under ``torch.export`` (AOTInductor) the padded size is
derived from the exact rational resize rule (see :meth:`ExportContract._input_sizes`); it equals the float rule's
except, in theory, when an exact x.5 tie of the rule sits one pixel above a multiple of ``size_divisibility``.

It returns ``(boxes float32 [K, 4] xyxy, scores float32 [K], labels int64 [K], masks uint8 [K, H, W])``, sorted
by decreasing score. Families provide step 5 (and the numbers of steps 1-4) as :class:`ExportPieces`.

Metadata travels inside each artifact as the JSON text ``pysalient.json`` (TorchScript extra file; AOTInductor
package metadata under the same key), see :func:`contract_metadata` for its keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient import ops
from pysalient.utils.resize import resized_hw

METADATA_KEY = "pysalient.json"
METADATA_FORMAT_VERSION = 1
INPUT_CHANNEL_ORDER = "BGR"
OUTPUT_NAMES = ("boxes", "scores", "labels", "masks")


@dataclass(frozen=True)
class ExportPieces:
    """What a family supplies to the shared contract.

    Attributes:
        detector: scriptable and exportable module called as ``detector(batch, image_hw, output_hw)`` with
            ``batch`` [1, 3, Hp, Wp] normalised, zero-padded pixels in the network dtype, ``image_hw`` the
            resized size inside the padding and ``output_hw`` the input image size (both ``List[int]``); it
            returns ``(boxes float32 [K, 4], scores float32 [K], labels int64 [K], masks uint8 [K, H, W])``
            sorted by score, masks at ``output_hw``.
        channel_order: ``"RGB"`` or ``"BGR"``, the order the network expects.
        pixel_mean: per channel, in ``channel_order``, 0-255 range.
        pixel_std: per channel, in ``channel_order``, 0-255 range.
        min_size: shortest side after the resize (the export's ``imgsz``).
        max_size: cap of the longest side after the resize.
        size_divisibility: padded height and width are multiples of it.
        conf: score threshold applied inside the graph.
        mask_threshold: mask probability threshold applied inside the graph.
        max_det: at most this many detections per image.
    """

    detector: nn.Module
    channel_order: str
    pixel_mean: Tuple[float, float, float]
    pixel_std: Tuple[float, float, float]
    min_size: int
    max_size: int
    size_divisibility: int
    conf: float
    mask_threshold: float
    max_det: int

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        # min_size > max_size is legal: the cap wins, as in eager predict with a large imgsz.
        if self.min_size < 1 or self.max_size < 1:
            raise ValueError(f"min_size and max_size must be >= 1, got {self.min_size} and {self.max_size}")
        if self.size_divisibility < 1:
            raise ValueError(f"size_divisibility must be >= 1, got {self.size_divisibility}")


class ExportContract(nn.Module):
    """The exported module: uint8 BGR image [H, W, 3] -> (boxes, scores, labels, masks) at [H, W].

    Args:
        pieces: the family's detector and input settings.
        dtype: dtype of the network input (``torch.float16`` for fp16 exports); normalisation is float32.
    """

    def __init__(self, pieces: ExportPieces, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.detector = pieces.detector
        self.min_size = int(pieces.min_size)
        self.max_size = int(pieces.max_size)
        self.size_divisibility = int(pieces.size_divisibility)
        self.to_rgb = pieces.channel_order == "RGB"
        self.half = dtype == torch.float16
        if dtype not in (torch.float32, torch.float16):
            raise ValueError(f"export dtype must be float32 or float16, got {dtype}")
        # Buffers (not constants in forward) so that moving the scripted module to a device moves them too.
        self.register_buffer("pixel_mean", torch.tensor(pieces.pixel_mean, dtype=torch.float32).reshape(3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(pieces.pixel_std, dtype=torch.float32).reshape(3, 1, 1))

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detects the salient instances of one image.

        Args:
            image: uint8 [H, W, 3], BGR.

        Returns:
            boxes float32 [K, 4] (x1, y1, x2, y2) in input pixels, scores float32 [K], labels int64 [K] and
            masks uint8 [K, H, W] (1 = instance), sorted by decreasing score.
        """
        if torch.jit.is_scripting():
            if image.dim() != 3 or image.shape[2] != 3 or image.dtype != torch.uint8:
                raise ValueError("pysalient export: the input must be one uint8 [H, W, 3] BGR image")
        else:
            _check_traced_image(image)
        height, width = image.shape[0], image.shape[1]
        out_h, out_w, padded_h, padded_w = self._input_sizes(height, width)
        resized = ops.resize_image(image.contiguous(), out_h, out_w)
        if self.to_rgb:
            resized = resized.flip(-1)
        pixels = (resized.permute(2, 0, 1).to(torch.float32) - self.pixel_mean) / self.pixel_std
        # Padding after normalisation, as pad_and_batch: padded pixels are 0, i.e. the mean colour.
        batch = F.pad(pixels, [0, padded_w - out_w, 0, padded_h - out_h]).unsqueeze(0)
        if self.half:
            batch = batch.to(torch.float16)
        return self.detector(batch, [out_h, out_w], [height, width])

    def _input_sizes(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """(resized h, resized w, padded h, padded w) of an input image of size (height, width)."""
        divisor = self.size_divisibility
        if torch.jit.is_scripting():
            # The eager rule itself, compiled into the graph: TorchScript keeps Python's float64 arithmetic.
            out_h, out_w = resized_hw(height, width, self.min_size, self.max_size)
            return out_h, out_w, -(-out_h // divisor) * divisor, -(-out_w // divisor) * divisor
        # Under torch.export, H and W are symbols and branching on them would specialise the graph, so
        # resized_hw (which branches on the sizes) cannot be traced with dynamic shapes. The resized
        # size comes from the float64 rule evaluated on tensors (exactly resized_hw) and is therefore a
        # data-dependent size. The network input must not be one: Inductor mis-compiles convolutions over
        # data-dependent sizes (it assumes layouts that the kernels do not produce). So the padded size is
        # computed symbolically from the exact rational rule, which equals the float rule except at exact
        # x.5 ties, where the float rule may round down by one pixel; the padding then differs only if that
        # pixel crosses a multiple of size_divisibility (none in 800k sizes tested), and stays valid because
        # the rational size is never smaller.
        out_h, out_w = tensor_resized_hw(height, width, self.min_size, self.max_size)
        bound_h, bound_w = rational_resized_hw(height, width, self.min_size, self.max_size)
        padded_h = (bound_h + divisor - 1) // divisor * divisor
        padded_w = (bound_w + divisor - 1) // divisor * divisor
        for size, bound in ((out_h, bound_h), (out_w, bound_w)):
            torch._check(size >= 1)
            torch._check(size <= bound)
            torch._check(size >= bound - 1)
        return out_h, out_w, padded_h, padded_w


def _check_traced_image(image: Tensor) -> None:
    # torch._check (not if/raise) so that torch.export records the conditions instead of specialising on them.
    torch._check(image.dim() == 3, lambda: f"pysalient export: expected a uint8 [H, W, 3] image, got {image.shape}")
    torch._check(image.shape[2] == 3, lambda: f"pysalient export: expected 3 (BGR) channels, got {image.shape}")
    torch._check(image.dtype == torch.uint8, lambda: f"pysalient export: expected uint8 pixels, got {image.dtype}")


def rational_resized_hw(height: Any, width: Any, min_size: int, max_size: int) -> Tuple[Any, Any]:
    """The resize rule in exact integer arithmetic, as symbolic expressions of ``height`` and ``width``.

    ``scale = min(min_size / short, max_size / long)`` and each side is ``floor(side * scale + 1/2)``; because
    floor is monotonic that is the minimum of the two roundings, computed with floor divisions only. It equals
    ``resized_hw`` except at exact x.5 ties, where the float rule can give one pixel less.
    """
    short, long = torch.sym_min(height, width), torch.sym_max(height, width)

    def side(length: Any) -> Any:
        by_short = (2 * length * min_size + short) // (2 * short)
        by_long = (2 * length * max_size + long) // (2 * long)
        return torch.sym_min(by_short, by_long)

    return side(height), side(width)


def tensor_resized_hw(height: Any, width: Any, min_size: int, max_size: int) -> Tuple[Any, Any]:
    """The resize rule without branches, on float64 tensors: exportable with symbolic ``height`` and ``width``.

    Every step is one correctly rounded IEEE float64 operation, the same as in ``resized_hw`` (Python floats),
    so sizes landing near x.5 round the same way (e.g. 147x294 -> 426x853 at 640/853, where exact arithmetic
    would give 427).

    Args:
        height, width: input size (ints or SymInts).
        min_size: target of the shortest side.
        max_size: cap of the longest side.

    Returns:
        (new_height, new_width): ints in eager mode, SymInts under tracing.
    """
    h = torch.full((), height, dtype=torch.float64)
    w = torch.full((), width, dtype=torch.float64)
    target = torch.full((), float(min_size), dtype=torch.float64)
    scale = target / torch.minimum(h, w)
    height_is_short = h < w
    new_h = torch.where(height_is_short, target, scale * h)
    new_w = torch.where(height_is_short, scale * w, target)
    longest = torch.maximum(new_h, new_w)
    capped = longest > max_size
    cap = torch.full((), float(max_size), dtype=torch.float64) / longest
    new_h = torch.where(capped, new_h * cap, new_h)
    new_w = torch.where(capped, new_w * cap, new_w)
    # int(x + 0.5) truncates, which is floor for these positive sizes.
    sizes = torch.floor(torch.stack([new_h, new_w]) + 0.5).to(torch.int64)
    return sizes[0].item(), sizes[1].item()


def contract_metadata(
    *,
    family: str,
    name: str,
    class_names: Sequence[str],
    pieces: ExportPieces,
    export_format: str,
    half: bool,
    device: torch.device,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The ``pysalient.json`` description stored inside an exported artifact.

    Keys (all JSON types): ``format_version`` (1), ``format`` (``"torchscript"`` / ``"aoti"``), ``family``,
    ``name``, ``pysalient_version``, ``ops_version`` (``pysalient._C.__version__`` of the op library, or null),
    ``torch_version``, ``class_names`` (label -> name), ``input`` (``{"dtype": "uint8", "layout": "HWC",
    "channel_order": "BGR"}``), ``imgsz`` (shortest side inside the graph), ``max_size``, ``size_divisibility``,
    ``thresholds`` (``{"conf": ..., "mask": ...}``), ``max_det``, ``dtype`` (``"fp32"`` / ``"fp16"``, the
    network's), ``device`` (``"cpu"`` / ``"cuda"``, where it was exported; AOTInductor artifacts only run there),
    ``outputs`` (names of the 4 outputs in order), plus format-specific ``extra`` keys.
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
        "imgsz": pieces.min_size,
        "max_size": pieces.max_size,
        "size_divisibility": pieces.size_divisibility,
        "thresholds": {"conf": float(pieces.conf), "mask": float(pieces.mask_threshold)},
        "max_det": int(pieces.max_det),
        "dtype": "fp16" if half else "fp32",
        "device": device.type,
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
