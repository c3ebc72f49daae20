"""Reading the weights of a family's own (pysalient) checkpoints: the one container and prefix convention."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from torch import nn

CONTAINER_KEYS = ("model", "state_dict")
DDP_PREFIX = "module."


def bare_state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The state dict of ``checkpoint``: the mapping under ``model`` or ``state_dict`` when there is one, else the
    checkpoint itself, with the ``module.`` prefix of DistributedDataParallel removed from its keys."""
    state: Mapping[str, Any] = checkpoint
    for key in CONTAINER_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            state = checkpoint[key]
            break
    return {key[len(DDP_PREFIX) :] if key.startswith(DDP_PREFIX) else key: value for key, value in state.items()}


def load_bare_state_dict(model: nn.Module, checkpoint: Mapping[str, Any], strict: bool, family: str) -> Any:
    """Loads :func:`bare_state_dict` of ``checkpoint`` into ``model``.

    Args:
        model: the network.
        checkpoint: a state dict, bare or in a container.
        strict: raise on missing or unexpected keys.
        family: the family's display name, for the error message.

    Returns:
        ``model.load_state_dict``'s result (missing and unexpected keys).

    Raises:
        ValueError: with ``strict``, missing or unexpected keys, named (at most 20 of each).
    """
    result = model.load_state_dict(bare_state_dict(checkpoint), strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ValueError(
            f"{family} weights do not fit the model: missing keys {sorted(result.missing_keys)[:20]}, unexpected keys "
            f"{sorted(result.unexpected_keys)[:20]}"
        )
    return result
