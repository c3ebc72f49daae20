"""Atomic file writes: a temporary file next to the target, optionally fsynced, then renamed over it.

Readers (and a crash or Ctrl-C at any moment) see either the old file or the complete new one, never half of
one. Every writer of the package (checkpoints, exports, datasets, results, downloads) goes through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def _default_permissions() -> int:
    # mkstemp creates private (0600) files; give the result the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None], durable: bool = True) -> Path:
    """Calls ``write(binary_handle)`` on a temporary file, then renames it over ``path``.

    Args:
        path: the file to (re)place; its folder is created if needed.
        write: fills the (seekable, readable) binary handle.
        durable: fsync before the rename (checkpoints, annotations); skip it for bulk files such as images.

    Returns:
        ``path`` as a Path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        # Opened read-write: some writers (AOTInductor packaging) seek and read back what they wrote.
        with os.fdopen(descriptor, "w+b") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(temporary, _default_permissions())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: PathLike, data: bytes, durable: bool = True) -> Path:
    """Writes ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data), durable=durable)


def atomic_write_json(path: PathLike, data: Any, durable: bool = True, **dump_options: Any) -> Path:
    """Writes ``data`` as JSON (``json.dumps(data, **dump_options)``, UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, json.dumps(data, **dump_options).encode("utf-8"), durable=durable)
