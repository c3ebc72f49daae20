"""Fixtures of the C++ tests: programs built against the INSTALLED package, exported models, test images.

Every program is configured with plain CMake and ``-DCMAKE_PREFIX_PATH=$(python -m pysalient.cmake)``, exactly as
a user would, once per test session (compiling against the torch headers takes a while). When the installed C++
package is older than the checkout's ``csrc`` (an editable install that was not rebuilt), the checkout's CMake
project is built instead (``build/cpp-tests``, incremental across sessions) and installed into a temporary prefix
laid out like site-packages; ``PYSALIENT_CPP_TESTS=installed`` or ``=source`` forces either (see
:func:`tests.cpp.helpers.installed_package_is_current`). They are linked with
``-Wl,--as-needed`` forced on, so that the check that ``libpysalient_ops.so`` stays NEEDED means something on
every toolchain. The models are a small SparseInst with deterministic random weights, rescaled so that its
predictions are varied (masks of different sizes, scores far apart) rather than near-identical: the session
fixtures ``shared_tiny_model`` and ``shared_aoti_package`` of tests/conftest.py, shared with tests/export so that
the AOTInductor package is compiled once per session.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch

import pysalient
from pysalient.export.contract import METADATA_KEY
from tests.cpp.helpers import (
    FORMATS,
    IMAGE_SIZES,
    IMGSZ,
    MAX_DET,
    REPO_ROOT,
    build_checkout_package,
    build_cmake_project,
    installed_package_is_current,
    run,
)


@pytest.fixture(scope="session")
def cmake_prefix_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """What ``python -m pysalient.cmake`` prints (the installed package, then torch's prefix), or the same for the
    checkout's C++ package when the installed one is older than the sources (see the module docstring)."""
    result = run([sys.executable, "-m", "pysalient.cmake"])
    if result.returncode != 0:
        pytest.fail(f"python -m pysalient.cmake failed: {result.stderr}")
    installed = result.stdout.strip()
    mode = os.environ.get("PYSALIENT_CPP_TESTS", "auto")
    if mode not in ("auto", "installed", "source"):
        pytest.fail(f"PYSALIENT_CPP_TESTS must be auto, installed or source, got {mode!r}")
    if mode == "installed" or (mode == "auto" and installed_package_is_current(Path(installed.split(";")[0]))):
        return installed
    package = build_checkout_package(tmp_path_factory.mktemp("checkout-package"))
    return ";".join([str(package), installed.split(";")[1]])


@pytest.fixture(scope="session")
def example_binary(tmp_path_factory: pytest.TempPathFactory, cmake_prefix_path: str) -> Path:
    """``examples/cpp``'s ``predict``, built as its README says (OpenCV from libopencv-dev: `make cpp-deps`)."""
    build_dir = tmp_path_factory.mktemp("example-build")
    return build_cmake_project(REPO_ROOT / "examples" / "cpp", build_dir, cmake_prefix_path, "predict")


@pytest.fixture(scope="session")
def runtime_checks_binary(tmp_path_factory: pytest.TempPathFactory, cmake_prefix_path: str) -> Path:
    """``tests/cpp/runtime_checks``: calls the Predictor API with good and bad inputs, prints JSON."""
    build_dir = tmp_path_factory.mktemp("runtime-checks-build")
    source = Path(__file__).resolve().parent / "runtime_checks"
    return build_cmake_project(source, build_dir, cmake_prefix_path, "runtime_checks")


@pytest.fixture(scope="session")
def test_model(shared_tiny_model) -> pysalient.engine.model.SalientModel:
    """``sparseinst_mbv2_tiny`` with seeded random weights, scaled up so queries disagree strongly (the session's
    ``shared_tiny_model``, see tests/export/helpers.py)."""
    return shared_tiny_model


@pytest.fixture(scope="session")
def exported_models(
    tmp_path_factory: pytest.TempPathFactory, test_model: pysalient.engine.model.SalientModel, shared_aoti_package: Path
) -> Dict[str, Path]:
    """Format name -> the file ``SalientModel.export`` wrote for it (the AOTInductor one is the shared package)."""
    folder = tmp_path_factory.mktemp("exports")
    models = {"aoti": shared_aoti_package}
    for export_format, file_name in FORMATS.items():
        if export_format not in models:
            models[export_format] = Path(
                test_model.export(export_format, folder / file_name, imgsz=IMGSZ, max_det=MAX_DET)
            )
    assert {name: path.name for name, path in models.items()} == FORMATS
    return models


@pytest.fixture(scope="session")
def legacy_model(tmp_path_factory: pytest.TempPathFactory, exported_models: Dict[str, Path]) -> Path:
    """A format-version-1 TorchScript export, as pysalient wrote them before ``conf`` became a graph input: the
    graph takes the image only (here: the version-2 TorchScript export called with its default threshold) and
    the metadata has no top-level ``conf`` nor ``inputs``."""
    extra_files = {METADATA_KEY: ""}
    graph = torch.jit.load(str(exported_models["torchscript"]), _extra_files=extra_files)
    metadata = json.loads(extra_files[METADATA_KEY])
    assert metadata["format_version"] == 2
    metadata["format_version"] = 1
    del metadata["conf"], metadata["inputs"]

    class ImageOnly(torch.nn.Module):
        def __init__(self, graph: torch.jit.ScriptModule) -> None:
            super().__init__()
            self.graph = graph

        def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            return self.graph(image)

    path = tmp_path_factory.mktemp("legacy") / "legacy.ts"
    torch.jit.save(torch.jit.script(ImageOnly(graph)), str(path), _extra_files={METADATA_KEY: json.dumps(metadata)})
    return path


@pytest.fixture(scope="session")
def test_images(tmp_path_factory: pytest.TempPathFactory) -> List[Path]:
    """PNG files (lossless, so C++ and Python read the same pixels) of odd and non-square sizes: bright
    discs and boxes on dark noise."""
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for index, (height, width) in enumerate(IMAGE_SIZES):
        rng = np.random.default_rng(index)
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        for _ in range(3):
            color = tuple(int(value) for value in rng.integers(120, 256, 3))
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(image, center, int(rng.integers(4, min(height, width) // 2)), color, -1)
        corner = (int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2)))
        cv2.rectangle(image, corner, (corner[0] + width // 3, corner[1] + height // 3), (250, 250, 250), -1)
        path = folder / f"image_{height}x{width}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths
