"""Helpers the op tests share: opcheck, TorchScript save/load round trips, torch.export round trips."""

from __future__ import annotations

import io
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn


def assert_opcheck(op: Any, args: Tuple[Any, ...], **kwargs: Any) -> None:
    """Runs ``torch.library.opcheck`` (schema, autograd registration, fake tensor, aot_dispatch_dynamic)."""
    results = torch.library.opcheck(op, args, kwargs or None)
    failures = {name: outcome for name, outcome in results.items() if outcome != "SUCCESS"}
    assert not failures, f"opcheck failed for {op}: {failures}"


def scripted_round_trip(module: nn.Module) -> torch.jit.ScriptModule:
    """Scripts ``module`` (not traced), saves it to bytes and loads it back."""
    scripted = torch.jit.script(module)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def exported_module(
    module: nn.Module, args: Tuple[Any, ...], dynamic_shapes: Optional[Sequence[Optional[Dict[int, Any]]]] = None
) -> nn.Module:
    """Exports ``module`` with ``torch.export`` (strict=False), saves and reloads the program, returns it callable."""
    program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    return torch.export.load(buffer).module()


def assert_same_outputs(actual: Any, expected: Any, atol: float = 0.0, rtol: float = 0.0) -> None:
    """Compares (nested tuples/lists of) tensors exactly by default."""
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected)
        for got, want in zip(actual, expected):
            assert_same_outputs(got, want, atol=atol, rtol=rtol)
        return
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)
