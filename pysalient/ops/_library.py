"""Loading of the native operator library ``libpysalient_ops.so``.

The library holds every ``torch.ops.pysalient.*`` kernel and registers them with the PyTorch dispatcher when
it is loaded. It is looked up, in order, at ``$PYSALIENT_OPS_LIBRARY`` (a file), next to the installed
``pysalient._C`` module and inside the package folder. ``PYSALIENT_DISABLE_NATIVE=1`` skips loading, which
makes every op run its pure-PyTorch reference (useful to compare both paths).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import List, Optional

import torch

LIBRARY_NAME = "libpysalient_ops.so"

_loaded_path: Optional[str] = None
_load_error: Optional[str] = None
_attempted = False


def _candidate_paths() -> List[Path]:
    candidates: List[Path] = []
    override = os.environ.get("PYSALIENT_OPS_LIBRARY")
    if override:
        return [Path(override)]
    spec = importlib.util.find_spec("pysalient._C")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "lib" / LIBRARY_NAME)
    package_dir = Path(__file__).resolve().parent.parent
    candidates.append(package_dir / "lib" / LIBRARY_NAME)
    return candidates


def load_native() -> bool:
    """Loads the op library once; on failure warns a single time and returns False.

    Returns:
        Whether ``torch.ops.pysalient`` kernels are available.
    """
    global _attempted, _loaded_path, _load_error
    if _attempted:
        return _loaded_path is not None
    _attempted = True
    if os.environ.get("PYSALIENT_DISABLE_NATIVE", "0") not in ("", "0"):
        _load_error = "disabled by PYSALIENT_DISABLE_NATIVE"
    else:
        candidates = _candidate_paths()
        existing = [path for path in candidates if path.is_file()]
        if not existing:
            searched = ", ".join(str(path) for path in candidates)
            _load_error = f"{LIBRARY_NAME} not found (searched: {searched}); was the package built?"
        else:
            try:
                torch.ops.load_library(str(existing[0]))
                _loaded_path = str(existing[0])
            except (OSError, RuntimeError) as error:
                _load_error = f"loading {existing[0]} failed: {error}"
    if _loaded_path is None:
        warnings.warn(
            f"pysalient: native operators unavailable ({_load_error}); every op falls back to its pure-PyTorch "
            "reference implementation, which is slower and cannot be scripted or exported.",
            RuntimeWarning,
            stacklevel=2,
        )
    return _loaded_path is not None


def has_native() -> bool:
    """Whether the native operator library is loaded (``torch.ops.pysalient.*`` has C++ kernels)."""
    return _loaded_path is not None


def native_library_path() -> Optional[str]:
    """Path of the loaded ``libpysalient_ops.so``, or None when running on the references."""
    return _loaded_path


def native_load_error() -> Optional[str]:
    """Why the native library is not loaded, or None when it is."""
    return _load_error
