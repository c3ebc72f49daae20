"""pysalient checkpoints: a plain state dict plus a JSON-able description, written atomically.

A checkpoint is ``{"format": "pysalient", "format_version": 1, "family": ..., "name": ..., "config": {...},
"class_names": [...], "state_dict": {...}}`` — only tensors and JSON types, so it loads with
``torch.load(weights_only=True)`` and never unpickles code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

import torch
from torch import nn

from pysalient.utils.atomic import atomic_write

CHECKPOINT_FORMAT = "pysalient"
CHECKPOINT_FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike]) -> Path:
    """``torch.save`` to a temporary file in the target folder, fsync, then rename over ``path``.

    A crash or Ctrl-C at any moment leaves either the old file or the complete new one, never half of it.
    """
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def model_checkpoint(
    network: nn.Module, family: str, name: str, config: Dict[str, Any], class_names: Sequence[str]
) -> Dict[str, Any]:
    """The checkpoint dict of a model (tensors moved to the CPU)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "family": family,
        "name": name,
        "config": dict(config),
        "class_names": list(class_names),
        "state_dict": {key: value.detach().cpu() for key, value in network.state_dict().items()},
    }


def is_pysalient_checkpoint(obj: Any) -> bool:
    """Whether a loaded object is a pysalient checkpoint (as opposed to a bare or official state dict)."""
    return isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT


def read_checkpoint(path: Union[str, os.PathLike]) -> Any:
    """Loads a checkpoint file on the CPU with ``weights_only=True``; errors name the file."""
    try:
        return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error
