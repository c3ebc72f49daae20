"""Deployment exports: TorchScript (``.ts``) and AOTInductor (``.pt2``) files under one contract.

``model.export("torchscript" | "aoti", path)`` writes a self-contained graph (uint8 BGR image in, boxes,
scores, labels and masks at the image size out; see :mod:`pysalient.export.contract`) with its metadata inside;
``pysalient.load(path)`` gives back an :class:`ExportedModel` with the ``predict`` API.
"""

from pysalient.export.contract import METADATA_KEY, ExportContract, ExportPieces
from pysalient.export.exported_model import ExportedModel
from pysalient.export.exporter import export_model
from pysalient.export.formats import EXPORT_SUFFIXES, FORMATS, resolve_format

__all__ = [
    "EXPORT_SUFFIXES",
    "FORMATS",
    "METADATA_KEY",
    "ExportContract",
    "ExportPieces",
    "ExportedModel",
    "export_model",
    "resolve_format",
]
