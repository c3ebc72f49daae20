"""The export formats and what each accepts: ONE table (:data:`FORMATS`), checked before any work is done.

- ``torchscript`` (``.ts``): ``torch.jit.script`` of the contract; options ``conf``, ``max_det``, ``device``,
  ``verbose``.
- ``aoti`` (``.pt2``): ``torch.export`` with dynamic height and width + AOTInductor package; options ``conf``,
  ``max_det``, ``device``, ``min_input_size``, ``max_input_size``, ``verbose``.
- ``onnx`` (``.onnx``): the same ``torch.export`` program lowered to standard ONNX operators (opset 18), run by ONNX
  Runtime, TensorRT, OpenVINO; the options of ``aoti``; needs ``pip install pysalient[onnx]``.

Every format also takes ``imgsz`` and ``half``. ``conf`` is the graph's default minimum score (its second input;
the config's by default), ``max_det`` the detection cap inside the graph (the config's by default); ``device`` is
where the artifact is built (the model's device by default; a TorchScript file can later move, an AOTInductor
package only runs on the device type it was compiled for); ``min_input_size`` / ``max_input_size`` bound the input
height and width an AOTInductor package accepts (2 and 8192 by default); ``verbose`` (default True) prints the
AOTInductor compilation's start and duration. ``half=True`` (fp16 network) is meant for
GPUs; PyTorch also runs fp16 convolutions on CPUs, so CPU fp16 exports are allowed, but they are slower than fp32
there (ONNX Runtime's CPU provider has no fp16 convolutions, so fp16 ONNX exports need ``device="cuda"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, Mapping, Optional, Union

import torch

from pysalient.models.family import check_conf
from pysalient.utils.device import select_device


@dataclass(frozen=True)
class ExportFormat:
    """One row of :data:`FORMATS`.

    Attributes:
        name: format name passed to ``export``.
        suffix: the file suffix (``pysalient.load`` recognises artifacts by it).
        description: one line for help texts.
        options: keyword options the format accepts beyond ``imgsz`` and ``half``.
        half_devices: device types an fp16 export may be built for.
    """

    name: str
    suffix: str
    description: str
    options: FrozenSet[str]
    half_devices: FrozenSet[str]


FORMATS: Dict[str, ExportFormat] = {
    "torchscript": ExportFormat(
        name="torchscript",
        suffix=".ts",
        description="torch.jit.script module; runs in Python and libtorch (torch::jit::load)",
        options=frozenset({"conf", "max_det", "device", "verbose"}),
        half_devices=frozenset({"cpu", "cuda"}),
    ),
    "aoti": ExportFormat(
        name="aoti",
        suffix=".pt2",
        description="torch.export + AOTInductor package; runs in Python and C++ (AOTIModelPackageLoader)",
        options=frozenset({"conf", "max_det", "device", "min_input_size", "max_input_size", "verbose"}),
        half_devices=frozenset({"cpu", "cuda"}),
    ),
    "onnx": ExportFormat(
        name="onnx",
        suffix=".onnx",
        description="ONNX (opset 18, standard operators only); runs in ONNX Runtime, TensorRT, OpenVINO, ...",
        options=frozenset({"conf", "max_det", "device", "min_input_size", "max_input_size", "verbose"}),
        # ONNX Runtime's CPU provider has no float16 convolutions: fp16 ONNX graphs are for GPU runtimes.
        half_devices=frozenset({"cuda"}),
    ),
}
ALIASES: Dict[str, str] = {"ts": "torchscript", "jit": "torchscript", "pt2": "aoti", "aotinductor": "aoti"}
DEFAULT_MIN_INPUT_SIZE = 2  # torch.export specialises sizes 0 and 1, so dynamic dimensions start at 2
DEFAULT_MAX_INPUT_SIZE = 8192
EXPORT_SUFFIXES = tuple(spec.suffix for spec in FORMATS.values())


@dataclass(frozen=True)
class ExportRequest:
    """A checked export request (see :func:`check_request`)."""

    format: ExportFormat
    path: Path
    imgsz: Optional[int]
    half: bool
    device: torch.device
    conf: Optional[float]
    max_det: Optional[int]
    min_input_size: int
    max_input_size: int
    verbose: bool = True


def resolve_format(name: str) -> ExportFormat:
    """The format called ``name`` (or an alias such as ``"ts"``, ``"pt2"``); ValueError listing the formats."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in FORMATS:
        raise ValueError(f"unknown export format {name!r}; available: {', '.join(FORMATS)}")
    return FORMATS[key]


def format_of_path(path: Union[str, os.PathLike]) -> ExportFormat:
    """The format whose suffix ``path`` has; ValueError for other suffixes."""
    suffix = Path(path).suffix.lower()
    for spec in FORMATS.values():
        if spec.suffix == suffix:
            return spec
    raise ValueError(f"{path}: not an exported pysalient model (expected a {' or '.join(EXPORT_SUFFIXES)} file)")


def check_request(
    format: str,
    path: Union[str, os.PathLike],
    imgsz: Optional[int],
    half: bool,
    default_device: torch.device,
    options: Mapping[str, Any],
) -> ExportRequest:
    """Checks every argument of an export before any work: ValueError (or TypeError) naming the problem.

    Args:
        format: a :data:`FORMATS` name or alias.
        path: output file; it must have the format's suffix (a path without suffix gets it appended) and must not
            be a directory.
        imgsz: shortest side inside the graph, or None for the model's test size.
        half: fp16 network.
        default_device: where to build when ``options`` has no ``device`` (the model's device).
        options: the format's extra keyword options.

    Returns:
        The checked :class:`ExportRequest`.
    """
    spec = resolve_format(format)
    unknown = sorted(set(options) - spec.options)
    if unknown:
        raise TypeError(f"export format {spec.name!r} does not accept {unknown}; it accepts {sorted(spec.options)}")
    target = Path(path)
    if target.suffix == "":
        target = target.with_suffix(spec.suffix)
    if target.suffix.lower() != spec.suffix:
        raise ValueError(f"{spec.name} exports are {spec.suffix} files, got {target}")
    if target.is_dir():
        raise ValueError(f"export path {target} is a directory; give a file name ending in {spec.suffix}")
    if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 1):
        raise ValueError(f"imgsz must be a positive int, got {imgsz!r}")
    device = _resolve_device(options.get("device"), default_device)
    if half and device.type not in spec.half_devices:
        raise ValueError(f"half=True {spec.name} exports need a {'/'.join(sorted(spec.half_devices))} device")
    conf = options.get("conf")
    if conf is not None:
        check_conf(conf)
    max_det = options.get("max_det")
    if max_det is not None and (not isinstance(max_det, int) or isinstance(max_det, bool) or max_det < 1):
        raise ValueError(f"max_det must be a positive int, got {max_det!r}")
    low = options.get("min_input_size", DEFAULT_MIN_INPUT_SIZE)
    high = options.get("max_input_size", DEFAULT_MAX_INPUT_SIZE)
    if not (isinstance(low, int) and isinstance(high, int) and 2 <= low <= high):
        raise ValueError(f"need integers 2 <= min_input_size <= max_input_size, got {low!r} and {high!r}")
    verbose = options.get("verbose", True)
    if not isinstance(verbose, bool):
        raise ValueError(f"verbose must be True or False, got {verbose!r}")
    if spec.name == "onnx":
        from pysalient.export.onnx import require_onnx

        require_onnx("onnx", "onnxscript")
    from pysalient import ops

    if not ops.has_native():
        raise RuntimeError(
            f"exporting needs the native pysalient operators (the graph calls them): {ops.native_load_error()}"
        )
    return ExportRequest(
        format=spec,
        path=target,
        imgsz=imgsz,
        half=bool(half),
        device=device,
        conf=None if conf is None else float(conf),
        max_det=max_det,
        min_input_size=low,
        max_input_size=high,
        verbose=verbose,
    )


def _resolve_device(device: Any, default: torch.device) -> torch.device:
    return default if device is None else select_device(device)
