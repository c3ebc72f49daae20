"""``export_model``: a :class:`~pysalient.engine.model.SalientModel` in, a TorchScript, AOTInductor or ONNX file out."""

from __future__ import annotations

import copy
import os
from typing import Any, Union

import torch

from pysalient.export.contract import ExportContract, contract_metadata
from pysalient.export.formats import check_request
from pysalient.inputs import Preprocessor


def export_model(
    model: Any,
    format: str,
    path: Union[str, os.PathLike],
    imgsz: Union[int, None] = None,
    half: bool = False,
    **options: Any,
) -> str:
    """Exports ``model`` under the contract of :mod:`pysalient.export.contract`.

    Every argument is checked (:func:`~pysalient.export.formats.check_request`) before anything is built; the
    model itself is not modified (the network is copied, then cast to fp16 for ``half=True``). The graph computes
    exactly what eager ``predict`` of the same model computes; a model fused with :meth:`SalientModel.fuse` (batch
    norms folded into the convolutions) exports the folded network.

    Args:
        model: a ``SalientModel`` (an exported model cannot be exported again: export its source model).
        format: ``"torchscript"``, ``"aoti"`` or ``"onnx"`` (see :data:`~pysalient.export.formats.FORMATS`).
        path: the file to write (``.ts`` / ``.pt2`` / ``.onnx``), written atomically.
        imgsz: shortest side inside the graph; the config's test size when None.
        half: fp16 network (scores and boxes stay float32).
        **options: the format's extra options (``conf``, ``max_det``, ``device``, ``min_input_size``, ...).

    Returns:
        The written path.
    """
    request = check_request(format, path, imgsz, half, model.device, options)
    network = copy.deepcopy(model.network).eval().to(request.device)
    dtype = torch.float16 if request.half else torch.float32
    network = network.to(dtype)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    input_spec = model.config.input_spec().replace(min_size=request.imgsz)
    inference = model.config.inference_spec().replace(score_threshold=request.conf, max_det=request.max_det)
    detector = model.family.build_detector(network, model.config, inference)
    contract = ExportContract(Preprocessor(input_spec), detector, inference.score_threshold, dtype)
    contract = contract.to(request.device).eval()
    extra = {}
    if request.format.name in ("aoti", "onnx"):
        extra["input_size_range"] = [request.min_input_size, request.max_input_size]
    metadata = contract_metadata(
        family=model.family.name,
        name=model.name,
        class_names=list(model.names.values()),
        input_spec=input_spec,
        inference=inference,
        export_format=request.format.name,
        half=request.half,
        device=request.device,
        extra=extra,
    )
    if request.format.name == "torchscript":
        from pysalient.export.torchscript import export_torchscript

        return str(export_torchscript(contract, metadata, request.path))
    if request.format.name == "onnx":
        from pysalient.export.onnx import export_onnx as export_program_file
    else:
        from pysalient.export.aoti import export_aoti as export_program_file

    written = export_program_file(
        contract,
        metadata,
        request.path,
        request.device,
        request.min_input_size,
        request.max_input_size,
        verbose=request.verbose,
    )
    return str(written)
