"""Official RDPNet checkpoints (yuhuan-wu/RDPNet, maskrcnn-benchmark format) into :class:`RDPNet` weights.

maskrcnn-benchmark saves ``{"model": state_dict, "optimizer": ..., "scheduler": ..., "iteration": ...}`` (a bare
state dict is accepted too); ``DistributedDataParallel`` adds ``module.`` to every key. Official names map to ours
by the table :data:`KEY_RULES` (the FCOS head keeps its official names under ``head.``); pysalient state dicts
(``backbone.stem...``, ``fpn.``, ``pyramid.``) load unchanged. Unlike the official loader, which matches each model
key to the longest checkpoint key that ends with it, keys must match exactly: missing and unexpected keys are named.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

CLASS_LOGITS_KEY = "head.cls_logits.weight"
CONTAINER_KEYS = ("model", "state_dict")
MAX_NAMES_SHOWN = 20
OFFICIAL_PREFIXES = ("backbone.body.", "backbone.fpn.", "rpn.head.", "roi_heads.mask.")
OWN_PREFIXES = ("backbone.", "fpn.", "pyramid.", "head.", "mask_head.")

# (official pattern, pysalient replacement), applied in order; the first match wins.
KEY_RULES: Tuple[Tuple[str, str], ...] = (
    (r"^backbone\.body\.stem\.conv1\.(weight)$", r"backbone.stem.conv1.\1"),
    (r"^backbone\.body\.stem\.bn1\.(.+)$", r"backbone.stem.conv1.norm.\1"),
    (r"^backbone\.body\.layer1\.(\d+)\.", r"backbone.res2.\1."),
    (r"^backbone\.body\.layer2\.(\d+)\.", r"backbone.res3.\1."),
    (r"^backbone\.body\.layer3\.(\d+)\.", r"backbone.res4.\1."),
    (r"^backbone\.body\.layer4\.(\d+)\.", r"backbone.res5.\1."),
    (r"^backbone\.fpn\.fpn_inner(\d)\.(.+)$", "fpn.lateral_convs.{inner}.\\2"),
    (r"^backbone\.fpn\.fpn_layer(\d)\.(.+)$", "fpn.output_convs.{inner}.\\2"),
    (r"^backbone\.fpn\.top_blocks\.(p6|p7)\.(.+)$", r"fpn.top_block.\1.\2"),
    (r"^backbone\.fpn\.refine_block_1\.(.+)$", r"pyramid.first.\1"),
    (r"^backbone\.fpn\.refine_block_(\d)\.([01])\.(.+)$", "pyramid.levels.{refine}.refine.\\2.\\3"),
    (r"^backbone\.fpn\.att_block_(\d)\.(.+)$", "pyramid.levels.{attention}.attention.\\2"),
    (r"^rpn\.head\.(.+)$", r"head.\1"),
    (r"^roi_heads\.mask\.feature_extractor\.inner_maskdecoder_(\d)\.(.+)$", "mask_head.reduce.{minus1}.\\2"),
    (r"^roi_heads\.mask\.feature_extractor\.conv_maskdecoder_(\d)\.(.+)$", "mask_head.decode.{minus1}.\\2"),
    (r"^roi_heads\.mask\.predictor\.mask_fcn_logits\.(.+)$", r"mask_head.predictor.\1"),
)
# Inside a ResNet block: bn{i} -> conv{i}.norm, downsample.0 -> shortcut, downsample.1 -> shortcut.norm.
BLOCK_RULES: Tuple[Tuple[str, str], ...] = (
    (r"\.bn(\d)\.", r".conv\1.norm."),
    (r"\.downsample\.0\.", ".shortcut."),
    (r"\.downsample\.1\.", ".shortcut.norm."),
)


def official_to_pysalient(key: str) -> str:
    """The pysalient name of an official RDPNet parameter (ValueError for a key no rule knows)."""
    for pattern, replacement in KEY_RULES:
        match = re.match(pattern, key)
        if match is None:
            continue
        number = int(match.group(1)) if match.group(1).isdigit() else 0
        replacement = replacement.format(
            inner=number - 2,  # fpn_inner2..4 (stages C3..C5) -> lateral_convs.0..2
            refine=number - 2,  # refine_block_2..5 -> levels.0..3
            attention=number - 1,  # att_block_1..4 -> levels.0..3
            minus1=number - 1,
        )
        converted = re.sub(pattern, replacement, key)
        if converted.startswith("backbone.res"):
            for block_pattern, block_replacement in BLOCK_RULES:
                converted = re.sub(block_pattern, block_replacement, converted)
        return converted
    raise ValueError(f"no pysalient name for the official RDPNet key {key!r}")


def convert_official_checkpoint(checkpoint: Mapping[str, Any]) -> Dict[str, Tensor]:
    """An :class:`RDPNet` state dict from a loaded official or pysalient checkpoint.

    Args:
        checkpoint: ``{"model": state_dict, ...}``, ``{"state_dict": ...}`` or a bare state dict, with or without
            ``module.`` prefixes; values are tensors or numpy arrays.

    Returns:
        The state dict with pysalient names (dtypes as stored; ``load_state_dict`` casts).

    Raises:
        ValueError: no state dict, non-tensor entries, or an official key without a pysalient name.
    """
    state: Mapping[str, Any] = checkpoint
    for key in CONTAINER_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            state = checkpoint[key]
            break
    keys = [key for key in state if isinstance(key, str)]
    if len(keys) != len(state):
        raise ValueError("checkpoint keys must be strings")
    strip = bool(keys) and all(key.startswith("module.") for key in keys)
    converted: Dict[str, Tensor] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, Tensor):
            raise ValueError(f"entry {key!r} is a {type(value).__name__}, not a tensor: not a state dict")
        if strip:
            key = key[len("module.") :]
        if key.endswith("num_batches_tracked"):
            continue
        if key.startswith(OFFICIAL_PREFIXES):
            key = official_to_pysalient(key)
        converted[key] = value
    if not converted:
        raise ValueError("the checkpoint holds no tensors")
    return converted


def load_official_checkpoint(
    model: nn.Module, checkpoint: Union[str, os.PathLike, Mapping[str, Any]], *, strict: bool = True
) -> Dict[str, List[str]]:
    """Loads an official (maskrcnn-benchmark) or pysalient RDPNet checkpoint into ``model`` in place.

    Args:
        model: an :class:`~pysalient.models.rdpnet.model.RDPNet` of the checkpoint's architecture.
        checkpoint: a file path (``torch.load(weights_only=True)``) or a loaded object.
        strict: raise on missing or unexpected keys; with False they are only reported.

    Returns:
        ``{"missing_keys": [...], "unexpected_keys": [...]}``.

    Raises:
        ValueError: another family's checkpoint, another class count, mismatched shapes, or (strict) missing /
            unexpected keys; the message names the keys.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = torch.load(os.fspath(checkpoint), map_location="cpu", weights_only=True)
    state = convert_official_checkpoint(checkpoint)
    if not any(key.startswith(("pyramid.", "head.")) for key in state):
        raise ValueError(
            f"this is not an RDPNet checkpoint: no RDP or FCOS-head weights (first keys: {sorted(state)[:5]})"
        )
    expected = model.state_dict()
    if CLASS_LOGITS_KEY in state and CLASS_LOGITS_KEY in expected:
        found, wanted = state[CLASS_LOGITS_KEY].shape[0], expected[CLASS_LOGITS_KEY].shape[0]
        if found != wanted:
            raise ValueError(
                f"the checkpoint predicts {found} classes but the model was built for {wanted}; build it with "
                f"num_classes={found}"
            )
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if mismatched:
        raise ValueError("checkpoint shapes differ from the model's architecture: " + _names(mismatched))
    missing = sorted(key for key in set(expected) - set(state) if not key.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    if strict and (missing or unexpected):
        problems = []
        if missing:
            problems.append(f"missing keys {_names(missing)}")
        if unexpected:
            problems.append(f"unexpected keys {_names(unexpected)}")
        raise ValueError("the checkpoint does not match the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=False)
    return {"missing_keys": missing, "unexpected_keys": unexpected}


def num_classes_in(checkpoint: Mapping[str, Any]) -> Any:
    """Output channels of the FCOS class logits of a loaded checkpoint (None if it has none)."""
    weight = convert_official_checkpoint(checkpoint).get(CLASS_LOGITS_KEY)
    return None if weight is None else int(weight.shape[0])


def _names(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    more = f" ... and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
    return f"[{shown}{more}] ({len(names)} in all)"
