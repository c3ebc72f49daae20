"""AOTInductor export: ``torch.export`` with dynamic height and width, compiled and packaged as a ``.pt2``.

The contract is exported once with symbolic H and W (``torch.export.Dim``, ``min_input_size`` ..
``max_input_size``); the resized size and the detection count K are data-dependent sizes inside the graph, so
one package serves every image size. ``pysalient.json`` is stored in the package metadata (inductor config
``aot_inductor.metadata``), which Python reads with ``runner.get_metadata()`` and C++ with
``torch::inductor::AOTIModelPackageLoader::get_metadata()``. A package runs on the device type it was compiled
for; the machine running it needs ``libpysalient_ops.so`` loaded (the graph calls the pysalient operators).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple, Union

import torch
from torch import nn

from pysalient.export.contract import METADATA_KEY
from pysalient.export.files import parse_metadata
from pysalient.utils.atomic import atomic_write


def export_aoti(
    contract: nn.Module,
    metadata: Dict[str, Any],
    path: Union[str, os.PathLike],
    device: torch.device,
    min_input_size: int,
    max_input_size: int,
    verbose: bool = True,
) -> Path:
    """Exports ``contract`` with dynamic H and W, compiles it with AOTInductor and writes the package atomically.

    Compilation generates and builds C++ (CUDA) code: minutes on a small CPU. With ``verbose`` it says so when it
    starts and prints the elapsed time at the end; PyTorch's internal deprecation warnings of the export stack
    (nothing the caller can act on) are silenced.

    Args:
        contract: the module to export, in eval mode, on ``device``.
        metadata: the ``pysalient.json`` content.
        path: the ``.pt2`` file to write (its folder is created).
        device: where the package will run (the example input lives there).
        min_input_size: smallest input height / width the package accepts (>= 2).
        max_input_size: largest input height / width the package accepts.
        verbose: print what is happening and how long it took.

    Returns:
        The written path.
    """
    start = time.perf_counter()
    if verbose:
        print(
            f"pysalient export: compiling {metadata.get('name', 'the model')} with AOTInductor for {device.type} "
            "(generates and builds C++ code: takes minutes on a CPU) ...",
            flush=True,
        )
    configs = {"aot_inductor.metadata": {METADATA_KEY: json.dumps(metadata, indent=1, sort_keys=True)}}
    with _quiet_export_stack():
        program = export_program(contract, device, min_input_size, max_input_size)

        def compile_into(handle: Any) -> None:
            import torch._inductor

            with _adaptive_pooling_on_dynamic_sizes_as_aten():
                torch._inductor.aoti_compile_and_package(program, package_path=handle, inductor_configs=configs)

        written = atomic_write(path, compile_into)
    if verbose:
        print(f"pysalient export: wrote {written} in {time.perf_counter() - start:.0f} s", flush=True)
    return written


@contextlib.contextmanager
def _quiet_export_stack() -> Iterator[None]:
    """Silences the deprecation notices PyTorch's own export and compile code raises about its internals."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*TorchScript.*deprecated.*")
        yield


def export_program(
    contract: nn.Module, device: torch.device, min_input_size: int, max_input_size: int
) -> torch.export.ExportedProgram:
    """``torch.export`` of the contract with symbolic height and width.

    Non-strict: Python control flow on constants and module attributes is traced as in eager mode.

    Args:
        contract: the module, in eval mode, on ``device``.
        device: where the example input is created.
        min_input_size: smallest height / width of the symbolic dimensions (>= 2: export specialises 0 and 1).
        max_input_size: largest height / width.

    Returns:
        The exported program (inputs: one uint8 [H, W, 3] image, H and W dynamic, and the float32 0-d ``conf``).
    """
    # Distinct example sizes: equal ones could let the tracer treat height and width as one symbol.
    example_h = min(max(64, min_input_size), max_input_size)
    example_w = min(max(96, min_input_size + 1), max_input_size)
    generator = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (example_h, example_w, 3), dtype=torch.uint8, generator=generator).to(device)
    height = torch.export.Dim("height", min=min_input_size, max=max_input_size)
    width = torch.export.Dim("width", min=min_input_size, max=max_input_size)
    conf = torch.tensor(0.5, dtype=torch.float32, device=device)  # a run-time input: any value traces the same
    with torch.no_grad():
        return torch.export.export(
            contract.eval(), (example, conf), dynamic_shapes=({0: height, 1: width}, None), strict=False
        )


@contextlib.contextmanager
def _adaptive_pooling_on_dynamic_sizes_as_aten() -> Iterator[None]:
    """Compiles ``adaptive_avg_pool2d`` of symbolically sized maps as a call to the ATen kernel.

    Inductor's own lowering needs the input size as a constant (``guard_int``): on a map whose size depends on the
    image (e.g. SparseInst's pyramid pooling of the stride-32 features) it would specialise the whole package to
    the example's size, or fail outright for data-dependent sizes. The ATen fallback
    (``aoti_torch_cpu__adaptive_avg_pool2d`` / CUDA in the AOTI C shim) takes any size and is the kernel eager mode
    runs. Maps of static size keep the Inductor lowering. The original lowering is restored on exit; on a PyTorch
    without these internals nothing is changed.
    """
    try:
        from torch._inductor import lowering
    except ImportError:  # pragma: no cover - depends on the PyTorch build
        yield
        return
    key = torch.ops.aten._adaptive_avg_pool2d.default
    original = lowering.lowerings.get(key)
    fallback = getattr(lowering, "fallback_adaptive_avg_pool2d", None)
    if original is None or fallback is None:  # pragma: no cover - other PyTorch versions
        yield
        return

    def lower(x: Any, output_size: Any) -> Any:
        static = all(isinstance(size, int) or getattr(size, "is_number", False) for size in x.get_size()[-2:])
        return original(x, output_size) if static else fallback(x, output_size)

    lowering.lowerings[key] = lower
    try:
        yield
    finally:
        lowering.lowerings[key] = original


def load_aoti(path: Union[str, os.PathLike], device_index: int = -1) -> Tuple[Any, Dict[str, Any]]:
    """Loads a ``.pt2`` AOTInductor package and its metadata.

    Args:
        path: the file.
        device_index: CUDA device of a CUDA package (-1: the current one).

    Returns:
        The runner (call it with the image tensor and the 0-d ``conf`` tensor, or with the image only for
        ``format_version`` 1 packages; it returns the 4 outputs) and the parsed ``pysalient.json``.

    Raises:
        FileNotFoundError: missing file.
        ValueError: not a (loadable) AOTInductor package, or one without pysalient metadata.
    """
    source = os.fspath(path)
    if not Path(source).is_file():
        raise FileNotFoundError(f"exported model not found: {source}")
    if not zipfile.is_zipfile(source):
        raise ValueError(f"{source} is not an AOTInductor package (.pt2 files are zip archives)")
    import torch._inductor  # heavy: imported when a package is loaded, not with pysalient

    try:
        runner = torch._inductor.aoti_load_package(source, device_index=device_index)
    except (RuntimeError, KeyError, ValueError) as error:
        raise ValueError(f"{source} is not a loadable AOTInductor package: {str(error).splitlines()[0]}") from error
    text = runner.get_metadata().get(METADATA_KEY)
    if not text:
        raise ValueError(f"{source} is an AOTInductor package but not a pysalient export (no {METADATA_KEY})")
    return runner, parse_metadata(text, source)
