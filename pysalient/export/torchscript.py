"""TorchScript export (``torch.jit.script``, never trace) of an export contract, with its metadata inside.

The ``.ts`` file is a TorchScript archive holding the scripted :class:`~pysalient.export.contract.ExportContract`
and the extra file ``pysalient.json``; C++ reads it with ``torch::jit::load(path, device, extra_files)``.
PyTorch marks TorchScript as deprecated (a warning at scripting time); libtorch still runs it.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from pysalient.export.contract import METADATA_KEY
from pysalient.export.files import parse_metadata
from pysalient.utils.atomic import atomic_write


def export_torchscript(contract: nn.Module, metadata: Dict[str, Any], path: Union[str, os.PathLike]) -> Path:
    """Scripts ``contract`` and writes it with ``metadata`` to ``path`` atomically (temp file + rename).

    Args:
        contract: the module to export, in eval mode.
        metadata: the ``pysalient.json`` content.
        path: the ``.ts`` file to write (its folder is created).

    Returns:
        The written path.
    """
    with warnings.catch_warnings():
        # The deprecation notice of torch.jit is expected: the format is kept for libtorch deployments.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*TorchScript.*deprecated.*")
        scripted = torch.jit.script(contract.eval())
    extra_files = {METADATA_KEY: json.dumps(metadata, indent=1, sort_keys=True)}
    return atomic_write(path, lambda handle: torch.jit.save(scripted, handle, _extra_files=extra_files))


def load_torchscript(
    path: Union[str, os.PathLike], device: Optional[torch.device] = None
) -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Loads a ``.ts`` export and its metadata.

    Args:
        path: the file.
        device: where to put the module (where it was exported when None).

    Returns:
        The scripted contract and the parsed ``pysalient.json``.

    Raises:
        FileNotFoundError: missing file.
        ValueError: not a (loadable) TorchScript archive, or one without pysalient metadata.
    """
    source = os.fspath(path)
    if not Path(source).is_file():
        raise FileNotFoundError(f"exported model not found: {source}")
    extra_files = {METADATA_KEY: ""}
    try:
        module = torch.jit.load(source, map_location=device, _extra_files=extra_files)
    except RuntimeError as error:
        raise ValueError(f"{source} cannot be loaded as a TorchScript archive: {str(error).splitlines()[0]}") from error
    text = extra_files[METADATA_KEY]
    if not text:
        raise ValueError(f"{source} is a TorchScript file but not a pysalient export (no {METADATA_KEY} inside)")
    return module.eval(), parse_metadata(text, source)
