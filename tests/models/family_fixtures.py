"""Per-family test knobs, looked up by family name: ``tests/models/<family>/fixtures.py``.

Each module defines ``DEAD_BY_DESIGN`` (parameters allowed a zero gradient), ``CONFIDENT_ENTRY`` (a small registry
entry), ``make_confident(model)`` (random weights with non-trivial predictions), ``separate_queries(model)``
(predictions well apart, for compiled-graph comparisons) and ``size_changes(imgsz, max_size)`` (config changes for a
test size). The generic tests (registry, family contract, export, C++) use only these, so a new family adds its own
module and edits no shared test file.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def family_fixtures(family: str) -> ModuleType:
    """The fixtures module of ``family``; an ImportError naming the missing file otherwise."""
    try:
        return importlib.import_module(f"tests.models.{family}.fixtures")
    except ModuleNotFoundError as error:
        raise ImportError(f"family {family!r} has no tests/models/{family}/fixtures.py ({error})") from error
