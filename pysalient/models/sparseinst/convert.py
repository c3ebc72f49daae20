"""Official SparseInst checkpoints (hustvl/SparseInst, detectron2 format) into :class:`SparseInst` weights.

The official module tree is reproduced name for name, so conversion only unwraps the file: detectron2 saves
``{"model": state_dict, "optimizer": ..., "iteration": ...}`` (released weights are often the bare
state dict), ``DistributedDataParallel`` adds ``module.`` to every key, and ``nn.BatchNorm2d`` adds
``num_batches_tracked`` entries that FrozenBN does not have.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

CLASS_SCORE_KEY = "decoder.inst_branch.cls_score.weight"
CONTAINER_KEYS = ("model", "state_dict")  # detectron2 checkpoints, then plain ``{"state_dict": ...}`` files
MAX_NAMES_SHOWN = 20


@dataclass
class ConversionReport:
    """What :func:`convert_official_checkpoint` found and did, and what loading left out.

    Attributes:
        container: key the state dict was found under (``"model"``, ``"state_dict"``) or ``""`` if bare.
        stripped_prefix: whether ``module.`` prefixes were removed.
        dropped: keys removed (``num_batches_tracked``).
        dtypes: dtype name -> number of tensors, as stored (float16 weights load into float32 exactly).
        missing_keys, unexpected_keys: filled in by :func:`load_official_checkpoint`.
    """

    container: str = ""
    stripped_prefix: bool = False
    dropped: List[str] = field(default_factory=list)
    dtypes: Dict[str, int] = field(default_factory=dict)
    missing_keys: List[str] = field(default_factory=list)
    unexpected_keys: List[str] = field(default_factory=list)


def convert_official_checkpoint(checkpoint: Mapping[str, Any]) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """Extracts a :class:`SparseInst` state dict from a loaded official checkpoint.

    Args:
        checkpoint: a detectron2 checkpoint dict (state dict under ``"model"``), a ``{"state_dict": ...}``
            dict, or a bare state dict. Values may be tensors or numpy arrays (detectron2 ``.pkl`` files).

    Returns:
        The state dict (tensors keep their stored dtype) and a :class:`ConversionReport`.

    Raises:
        ValueError: when no state dict can be found or an entry is not an array.
    """
    report = ConversionReport()
    state = checkpoint
    for key in CONTAINER_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            state, report.container = checkpoint[key], key
            break
    converted: Dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise ValueError(f"checkpoint keys must be strings, got {key!r}")
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, Tensor):
            raise ValueError(
                f"entry {key!r} is a {type(value).__name__}, not a tensor: not a state dict "
                f"(expected a bare state dict or one under {CONTAINER_KEYS})"
            )
        if key.startswith("module."):
            key, report.stripped_prefix = key[len("module.") :], True
        if key.endswith("num_batches_tracked"):
            report.dropped.append(key)
            continue
        converted[key] = value
        dtype_name = str(value.dtype).replace("torch.", "")
        report.dtypes[dtype_name] = report.dtypes.get(dtype_name, 0) + 1
    if not converted:
        raise ValueError("the checkpoint holds no tensors")
    return converted, report


def load_official_checkpoint(
    model: nn.Module, checkpoint: Union[str, os.PathLike, Mapping[str, Any]], *, strict: bool = True
) -> ConversionReport:
    """Loads an official (or converted) SparseInst checkpoint into ``model`` in place.

    Args:
        model: a :class:`~pysalient.models.sparseinst.SparseInst` built with the checkpoint's architecture.
        checkpoint: a file path (read with ``torch.load(weights_only=True)``) or an already loaded object.
        strict: raise on missing or unexpected keys; with False they are only reported.

    Returns:
        The :class:`ConversionReport`, with ``missing_keys`` and ``unexpected_keys`` filled in.

    Raises:
        ValueError: for a checkpoint of another family, another class count, mismatched shapes, or (strict)
            missing / unexpected keys; the message names the offending keys.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = torch.load(os.fspath(checkpoint), map_location="cpu", weights_only=True)
    state, report = convert_official_checkpoint(checkpoint)
    expected = model.state_dict()
    if not any(key.startswith(("encoder.", "decoder.")) for key in state):
        raise ValueError(
            "this is not a SparseInst checkpoint: no 'encoder.*' or 'decoder.*' weights "
            f"(first keys: {sorted(state)[:5]})"
        )
    if CLASS_SCORE_KEY in state and CLASS_SCORE_KEY in expected:
        found, wanted = state[CLASS_SCORE_KEY].shape[0], expected[CLASS_SCORE_KEY].shape[0]
        if found != wanted:
            raise ValueError(
                f"the checkpoint predicts {found} classes but the model was built for {wanted}; "
                f"build it with num_classes={found} (or fine-tune from this checkpoint with strict=False)"
            )
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if mismatched:
        raise ValueError("checkpoint shapes differ from the model's architecture: " + _names(mismatched))
    # Trainable BatchNorm layers recreate the dropped counters themselves; they are not missing weights.
    report.missing_keys = sorted(key for key in set(expected) - set(state) if not key.endswith("num_batches_tracked"))
    report.unexpected_keys = sorted(set(state) - set(expected))
    if strict and (report.missing_keys or report.unexpected_keys):
        problems = []
        if report.missing_keys:
            problems.append(f"missing keys {_names(report.missing_keys)}")
        if report.unexpected_keys:
            problems.append(f"unexpected keys {_names(report.unexpected_keys)}")
        raise ValueError(
            "the checkpoint does not match the model: " + "; ".join(problems) + " (pass strict=False to load anyway)"
        )
    model.load_state_dict(state, strict=False)
    return report


def _names(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    more = f" ... and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
    return f"[{shown}{more}] ({len(names)} in all)"
