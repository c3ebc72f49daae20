"""Atomic file writes: a temporary file next to the target, optionally fsynced, then renamed over it.

Readers (and a crash or Ctrl-C at any moment) see either the old file or the complete new one, never half of
one. Every writer of the package (checkpoints, exports, datasets, results, downloads) goes through here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]

# A write that fails while its folder has less free space than this failed because the disk is full, whatever the
# writer said (torch.save reports a full disk as "unexpected pos ... vs ...", without errno).
FULL_DISK_BYTES = 16 * 1024 * 1024


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

    Raises:
        OSError: ``ENOSPC`` ("No space left on device ...") when the write failed on a full disk, whatever error
            the writer raised; the previous ``path`` is kept and the temporary removed in every failure.
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
    except BaseException as error:
        full = isinstance(error, Exception) and _disk_is_full(target.parent, error)
        Path(temporary).unlink(missing_ok=True)
        if full:
            state = "is unchanged" if target.exists() else "was not written"
            raise OSError(
                errno.ENOSPC, f"No space left on device while writing {target} ({target.name} {state}); free some space"
            ) from error
        raise
    return target


def _disk_is_full(folder: Path, error: Exception) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        return False


def atomic_write_bytes(path: PathLike, data: bytes, durable: bool = True) -> Path:
    """Writes ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data), durable=durable)


def atomic_write_json(path: PathLike, data: Any, durable: bool = True, **dump_options: Any) -> Path:
    """Writes ``data`` as JSON (``json.dumps(data, **dump_options)``, UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, json.dumps(data, **dump_options).encode("utf-8"), durable=durable)
