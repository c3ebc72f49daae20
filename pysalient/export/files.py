"""File helpers of the exporters: atomic writes and reading the embedded ``pysalient.json``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Union

from pysalient.export.contract import METADATA_KEY, check_metadata


def write_atomically(path: Union[str, os.PathLike], write: Callable[[Any], Any]) -> Path:
    """Calls ``write(binary_file)`` on a temporary file next to ``path``, fsyncs it and renames it over ``path``.

    A failure at any point (including Ctrl-C) removes the temporary file and leaves an existing ``path`` as it
    was, so readers never see half an artifact.

    Args:
        path: the final file; its folder is created.
        write: writes the content to the open, seekable binary file it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def parse_metadata(text: Union[str, bytes], source: str) -> Dict[str, Any]:
    """Parses and checks the ``pysalient.json`` text of ``source``; ValueError naming the file otherwise."""
    try:
        metadata = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{source}: {METADATA_KEY} is not valid JSON ({error})") from error
    return check_metadata(metadata, source)
