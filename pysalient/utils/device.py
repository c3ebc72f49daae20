"""``select_device``: the one place that turns a user's device argument into a ``torch.device``."""

from __future__ import annotations

from typing import Union

import torch


def select_device(device: Union[None, str, int, torch.device]) -> torch.device:
    """``None`` -> CUDA if available else CPU; ints mean CUDA indices; strings as ``torch.device``.

    Raises:
        ValueError: an unparsable device, or CUDA when this torch build or machine has none.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise ValueError(f"device must be a string such as 'cpu' or 'cuda:0', an int or a torch.device, got {device!r}")
    if isinstance(device, int):
        device = f"cuda:{device}"
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"invalid device {device!r} (expected e.g. 'cpu', 'cuda', 'cuda:1'): {error}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: pysalient runs on 'cpu' or 'cuda' devices")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available in this torch build or machine")
    return resolved
