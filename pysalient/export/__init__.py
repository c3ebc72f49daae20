"""Deployment exports: TorchScript (``.ts``), AOTInductor (``.pt2``) and ONNX (``.onnx``) files under one contract.

``model.export("torchscript" | "aoti" | "onnx", path)`` writes a self-contained graph (uint8 BGR image and the minimum
score in; boxes, scores, labels and masks at the image size out; see :mod:`pysalient.export.contract`) with its
metadata inside; ``pysalient.load(path)`` gives back a :class:`pysalient.engine.exported.ExportedModel` with the
``predict`` / ``evaluate`` API. This package writes and reads artifacts; it depends on ``models``, ``ops``,
``inputs`` and ``utils`` only, never on ``engine``.
"""

from pysalient.export.contract import METADATA_KEY, ExportContract
from pysalient.export.exporter import export_model
from pysalient.export.formats import EXPORT_SUFFIXES, FORMATS, resolve_format

__all__ = [
    "EXPORT_SUFFIXES",
    "FORMATS",
    "METADATA_KEY",
    "ExportContract",
    "export_model",
    "resolve_format",
]
