"""Which function builds the export pieces of each model family.

Each family provides ``build_export_module(network, config, imgsz=None, conf=None, max_det=None) ->
ExportPieces`` (see :mod:`pysalient.export.contract`). Entries are ``"module:function"`` strings resolved on
first use, so importing the export package does not import every family (and families may import the contract
without an import cycle). A family missing here cannot be exported; the registry-parametrised export tests
fail for it until it is added.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict

from pysalient.export.contract import ExportPieces

EXPORT_BUILDERS: Dict[str, str] = {
    "sparseinst": "pysalient.models.sparseinst.export:build_export_module",
}


def export_builder(family: str) -> Callable[..., ExportPieces]:
    """The ``build_export_module`` function of ``family``; ValueError when the family cannot be exported."""
    if family not in EXPORT_BUILDERS:
        raise ValueError(
            f"model family {family!r} has no export support yet; exportable families: {sorted(EXPORT_BUILDERS)}"
        )
    module_name, function_name = EXPORT_BUILDERS[family].split(":")
    return getattr(importlib.import_module(module_name), function_name)
