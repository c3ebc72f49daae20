"""Reading configuration files (YAML or JSON mappings) and ``key=value`` scalars without extra dependencies.

YAML goes through PyYAML's ``safe_load`` when it is installed. Without it, a small reader accepts the subset
that configuration files use: ``key: value`` lines, ``#`` comments, one level of nested mappings by
indentation, inline ``[a, b]`` lists and plain, quoted, numeric, boolean and null scalars. Anything else
(anchors, multi-line strings, block lists) raises a ValueError that says to install PyYAML.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

_INTEGER = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")
_NULLS = ("null", "none", "~", "")
_TRUES = ("true", "yes", "on")
_FALSES = ("false", "no", "off")


def read_config_file(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Reads a mapping from a ``.json``, ``.yaml`` or ``.yml`` file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable content or a top level that is not a mapping (the message names the file).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {file} not found")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = _load_yaml(text)
    except (ValueError, TypeError) as error:
        raise ValueError(f"cannot read config file {file}: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {file} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def parse_scalar(text: str) -> Any:
    """A ``key=value`` or YAML value: null, bool, int, float, ``[a, b]`` / ``(a, b)`` list, or a string.

    Quotes keep a value a string (``"1"`` stays ``"1"``); list items are parsed the same way.
    """
    value = text.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if len(value) >= 2 and (value[0], value[-1]) in (("[", "]"), ("(", ")")):
        inner = value[1:-1].strip()
        return [parse_scalar(item) for item in _split_items(inner)] if inner else []
    lowered = value.lower()
    if lowered in _NULLS:
        return None
    if lowered in _TRUES:
        return True
    if lowered in _FALSES:
        return False
    if _INTEGER.match(value):
        return int(value)
    if _FLOAT.match(value) or lowered in ("inf", "-inf", "+inf", "nan"):
        return float(value)
    return value


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        return _load_yaml_subset(text)
    return yaml.safe_load(text)


def _load_yaml_subset(text: str) -> Dict[str, Any]:
    """The PyYAML-free reader of the module docstring."""
    root: Dict[str, Any] = {}
    parent: Tuple[int, Dict[str, Any]] = (-1, root)  # (indentation, mapping) of the open nested block
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if "\t" in raw[:indent] or line.lstrip().startswith(("- ", "&", "*", "!")) or ":" not in line:
            raise ValueError(f"line {number}: {raw.strip()!r} is beyond the YAML subset read without PyYAML")
        key, _, value = line.strip().partition(":")
        key = key.strip().strip("'\"")
        if indent == 0:
            target = root
        elif indent > parent[0] >= 0:
            target = parent[1]
        else:
            raise ValueError(f"line {number}: unexpected indentation (only one nested level is supported)")
        if value.strip() in ("|", ">", "|-", ">-"):
            raise ValueError(f"line {number}: multi-line strings need PyYAML")
        if value.strip():
            target[key] = parse_scalar(value)
        elif indent == 0:
            target[key] = {}
            parent = (indent, target[key])
        else:
            raise ValueError(f"line {number}: {key!r} opens a second nested level (install PyYAML for that)")
        if indent == 0 and value.strip():
            parent = (-1, root)
    return root


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` inside quotes or glued to a word is kept)."""
    quote = ""
    for position, character in enumerate(line):
        if quote:
            quote = "" if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character == "#" and (position == 0 or line[position - 1] in " \t"):
            return line[:position]
    return line


def _split_items(inner: str) -> List[str]:
    """Splits the inside of an inline list at top-level commas (nested brackets and quotes kept whole)."""
    items, depth, quote, start = [], 0, "", 0
    for position, character in enumerate(inner):
        if quote:
            quote = "" if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character in "[(":
            depth += 1
        elif character in "])":
            depth -= 1
        elif character == "," and depth == 0:
            items.append(inner[start:position])
            start = position + 1
    items.append(inner[start:])
    return [item for item in items if item.strip()]
