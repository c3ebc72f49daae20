"""The package's import layering, read from the source (every import, module level or inside functions).

- ``engine`` and ``export`` form no cycle: ``engine`` may import ``export``, never the reverse;
- ``data`` imports neither ``engine`` nor ``models``;
- model families (``models/<family>/``) do not import ``export`` or ``engine``;
- ``export`` and ``models`` do not import ``cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pysalient"


def imported_modules(path: Path) -> Set[str]:
    """Every ``pysalient...`` module ``path`` imports, wherever the import statement is (functions included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("pysalient"))
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("pysalient")
        ):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> Dict[str, Set[str]]:
    """``pysalient/a/b.py`` -> the modules it imports, keyed by dotted module name."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = imported_modules(path)
    return graph


def offenders(source_prefix: str, forbidden_prefixes: tuple) -> list:
    graph = import_graph()
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module == source_prefix or module.startswith(source_prefix + ".")
        for target in targets
        if any(target == prefix or target.startswith(prefix + ".") for prefix in forbidden_prefixes)
    )


@pytest.mark.parametrize(
    "source, forbidden",
    [
        ("pysalient.export", ("pysalient.engine", "pysalient.cli")),
        ("pysalient.data", ("pysalient.engine", "pysalient.models", "pysalient.export")),
        ("pysalient.models", ("pysalient.export", "pysalient.engine", "pysalient.cli")),
        ("pysalient.inputs", ("pysalient.engine", "pysalient.export", "pysalient.models")),
        ("pysalient.utils", ("pysalient.engine", "pysalient.export", "pysalient.models", "pysalient.data")),
        ("pysalient.ops", ("pysalient.engine", "pysalient.export", "pysalient.models", "pysalient.data")),
    ],
)
def test_layers_import_only_downwards(source: str, forbidden: tuple) -> None:
    assert offenders(source, forbidden) == []


def test_the_walk_sees_function_level_imports() -> None:
    # engine/loader.py imports engine.exported inside load(): the walk must see it, or the checks above prove nothing.
    assert "pysalient.engine.exported" in import_graph()["pysalient.engine.loader"]
    assert "pysalient.engine.model" in import_graph()
