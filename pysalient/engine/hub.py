"""Weights files: local paths or http(s) URLs cached in the torch hub cache, verified by sha256.

Downloads go to ``$TORCH_HOME/hub/checkpoints/pysalient/`` (``torch.hub.get_dir()``), through a temporary
file renamed into place only after its hash matched, so a cache never holds a half-written or corrupt file.
File names carry a sha256 prefix (``name-<first 8+ hex digits>.pth``, torch hub's convention), which is
checked too. ``PYSALIENT_OFFLINE=1`` never touches the network: a URL must already be in the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from pathlib import Path
from typing import BinaryIO, Optional
from urllib.parse import urlparse

from pysalient.utils.atomic import atomic_write

HASH_PREFIX_PATTERN = re.compile(r"-([a-f0-9]{8,64})\.")


def cache_dir() -> Path:
    """Folder where downloaded weights are kept."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / "pysalient"


def is_offline() -> bool:
    """Whether ``PYSALIENT_OFFLINE`` forbids network access."""
    return os.environ.get("PYSALIENT_OFFLINE", "0") not in ("", "0", "false", "False")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, sha256: Optional[str], name: Optional[str] = None) -> None:
    """Raises ValueError when ``path`` does not match ``sha256`` or the hash prefix in its file name.

    Args:
        path: file to check.
        sha256: expected full hex digest, or None.
        name: file name whose ``-<hex>.`` prefix applies (defaults to ``path.name``).
    """
    if sha256 is None and HASH_PREFIX_PATTERN.search(name or path.name) is None:
        return
    check_digest(sha256_of(path), sha256, name or path.name)


def check_digest(actual: str, sha256: Optional[str], name: str) -> None:
    """Raises ValueError when the hex digest ``actual`` differs from ``sha256`` or the prefix in ``name``."""
    match = HASH_PREFIX_PATTERN.search(name)
    if sha256 is not None and actual != sha256.lower():
        raise ValueError(f"sha256 mismatch for {name}: expected {sha256.lower()}, got {actual}")
    if match is not None and not actual.startswith(match.group(1)):
        raise ValueError(f"sha256 of {name} is {actual}, not matching the prefix {match.group(1)} in its name")


def resolve_weights(location: str, sha256: Optional[str] = None, progress: bool = False) -> Path:
    """Returns a verified local file for a path or an http(s) URL (downloaded once into the cache).

    Args:
        location: local file path, ``file://`` URL, or ``http(s)://`` URL.
        sha256: expected full hex digest, if known.
        progress: print download progress.

    Raises:
        FileNotFoundError: a local file is missing, or a URL is not cached while offline.
        ValueError: the file does not match its hash.
    """
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https"):
        target = cache_dir() / Path(parsed.path).name
        if not target.is_file():
            if is_offline():
                raise FileNotFoundError(
                    f"PYSALIENT_OFFLINE is set and {location} is not in the cache; copy the file to {target}"
                )
            _download(location, target, sha256, progress)
        verify_file(target, sha256)
        return target
    path = Path(parsed.path if parsed.scheme == "file" else location).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    verify_file(path, sha256)
    return path


def _download(url: str, target: Path, sha256: Optional[str], progress: bool) -> None:
    def stream(handle: BinaryIO) -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0)
            copied = 0
            digest = hashlib.sha256()
            while chunk := response.read(1 << 20):
                handle.write(chunk)
                digest.update(chunk)
                copied += len(chunk)
                if progress:
                    print(f"\rdownloading {target.name}: {copied >> 20} / {total >> 20} MiB", end="", flush=True)
        if progress:
            print()
        # Checked before the rename, so a corrupt or tampered download never lands in the cache.
        check_digest(digest.hexdigest(), sha256, target.name)

    atomic_write(target, stream)
