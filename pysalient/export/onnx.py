"""ONNX export: ``torch.export`` with dynamic height and width, lowered to standard ONNX operators (opset 18).

The contract is exported exactly as for AOTInductor (:func:`pysalient.export.aoti.export_program`), then
``torch.onnx.export`` translates the program; the pysalient operators are lowered by
:func:`pysalient.ops._onnx.onnx_translations` (default-domain operators only: no plugin is needed by ONNX Runtime,
TensorRT or OpenVINO). ``pysalient.json`` is stored in the model's ``metadata_props``. Inputs ``image`` (uint8
[H, W, 3] BGR, H and W dynamic) and ``conf`` (float32 0-d); outputs ``boxes``, ``scores``, ``labels``, ``masks``.
Needs the optional packages of ``pip install pysalient[onnx]`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from pysalient.export.contract import METADATA_KEY, OUTPUT_NAMES
from pysalient.export.files import parse_metadata
from pysalient.utils.atomic import atomic_write

OPSET = 18
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
INSTALL_HINT = "pip install 'pysalient[onnx]' (onnx, onnxscript and onnxruntime)"


def require_onnx(*packages: str) -> None:
    """Raises one ImportError line naming what to install when an ONNX package is missing."""
    missing = [name for name in packages or ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"the ONNX format needs {', '.join(missing)}: {INSTALL_HINT}")


def export_onnx(
    contract: nn.Module,
    metadata: Dict[str, Any],
    path: Union[str, os.PathLike],
    device: torch.device,
    min_input_size: int,
    max_input_size: int,
    verbose: bool = True,
) -> Path:
    """Exports ``contract`` to an ONNX file with dynamic H and W and ``metadata`` inside, written atomically.

    Args:
        contract: the module to export, in eval mode, on ``device``.
        metadata: the ``pysalient.json`` content.
        path: the ``.onnx`` file to write (its folder is created).
        device: where the example input lives while tracing.
        min_input_size: smallest input height / width of the symbolic dimensions (>= 2).
        max_input_size: largest input height / width.
        verbose: print the start and the elapsed time.

    Returns:
        The written path.
    """
    require_onnx("onnx", "onnxscript")
    import onnx

    from pysalient.export.aoti import _quiet_export_stack, export_program
    from pysalient.ops._onnx import onnx_translations

    start = time.perf_counter()
    if verbose:
        print(f"pysalient export: converting {metadata.get('name', 'the model')} to ONNX ...", flush=True)
    with _quiet_export_stack():
        program = export_program(contract, device, min_input_size, max_input_size)
        onnx_program = _quiet_onnx_export(program, onnx_translations())
    model = onnx_program.model_proto
    model.graph.name = str(metadata.get("name", "pysalient"))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, indent=1, sort_keys=True)
    model.producer_name = "pysalient"
    onnx.checker.check_model(model)
    written = atomic_write(path, lambda handle: handle.write(model.SerializeToString()))
    if verbose:
        print(f"pysalient export: wrote {written} in {time.perf_counter() - start:.0f} s", flush=True)
    return written


def _quiet_onnx_export(program: torch.export.ExportedProgram, translations: Dict[Any, Any]) -> Any:
    """``torch.onnx.export`` of ``program`` without its progress prints and per-node notices."""
    import contextlib
    import io
    import logging

    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return torch.onnx.export(
                program,
                dynamo=True,
                opset_version=OPSET,
                custom_translation_table=translations,
                output_names=list(OUTPUT_NAMES),
                optimize=True,
                verbose=False,
            )
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class OnnxRuntimeGraph:
    """An ONNX Runtime session called like the other exported graphs: ``(image, conf) -> 4 tensors``.

    Args:
        session: the ``onnxruntime.InferenceSession``.
        device: where the returned tensors are put (CUDA provider sessions return to the CUDA device).
    """

    def __init__(self, session: Any, device: torch.device) -> None:
        self.session = session
        self.device = device
        self.input_names: List[str] = [entry.name for entry in session.get_inputs()]

    def __call__(self, image: Tensor, conf: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        feeds = {self.input_names[0]: np.ascontiguousarray(image.detach().cpu().numpy())}
        if len(self.input_names) > 1:
            value = 0.0 if conf is None else float(conf)
            feeds[self.input_names[1]] = np.asarray(value, dtype=np.float32)
        outputs = self.session.run(None, feeds)
        return tuple(torch.from_numpy(np.ascontiguousarray(output)).to(self.device) for output in outputs)

    def parameters(self) -> List[Tensor]:
        """No torch parameters (for code that asks a module where it lives)."""
        return []


def load_onnx(
    path: Union[str, os.PathLike], device: Optional[torch.device] = None, threads: Optional[int] = None
) -> Tuple[OnnxRuntimeGraph, Dict[str, Any]]:
    """Opens an ``.onnx`` export with ONNX Runtime and reads its metadata.

    Args:
        path: the file.
        device: ``cpu`` (the CPU execution provider) or ``cuda`` (the CUDA provider, which must be available);
            None: CUDA when ONNX Runtime offers it and torch sees a GPU, else CPU.
        threads: intra-op threads (``torch.get_num_threads()`` when None, so OMP_NUM_THREADS applies as in eager).

    Returns:
        The callable graph and the parsed ``pysalient.json``.

    Raises:
        ImportError: onnxruntime is missing (one line saying what to install).
        FileNotFoundError: missing file.
        ValueError: not a loadable ONNX model, one without pysalient metadata, or an unavailable device.
    """
    require_onnx("onnxruntime")
    import onnxruntime

    source = os.fspath(path)
    if not Path(source).is_file():
        raise FileNotFoundError(f"exported model not found: {source}")
    available = onnxruntime.get_available_providers()
    cuda_ready = "CUDAExecutionProvider" in available and torch.cuda.is_available()
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if cuda_ready else torch.device("cpu")
    if device.type == "cuda":
        if not cuda_ready:
            raise ValueError(f"{source}: ONNX Runtime has no usable CUDA provider here (providers: {available})")
        providers: List[Any] = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    elif device.type == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise ValueError(f"{source}: ONNX models run on cpu or cuda, not {device}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{source} is not a loadable ONNX model: {first_line}") from error
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if not text:
        raise ValueError(f"{source} is an ONNX model but not a pysalient export (no {METADATA_KEY} in its metadata)")
    return OnnxRuntimeGraph(session, device), parse_metadata(text, source)
