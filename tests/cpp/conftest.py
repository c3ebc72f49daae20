"""Fixtures of the C++ tests: programs built against the INSTALLED package, exported models, test images.

Every program is configured with plain CMake and ``-DCMAKE_PREFIX_PATH=$(python -m pysalient.cmake)``, exactly as
a user would, once per test session (compiling against the torch headers takes a while). They are linked with
``-Wl,--as-needed`` forced on, so that the check that ``libpysalient_ops.so`` stays NEEDED means something on
every toolchain. The models are a small SparseInst with deterministic random weights, rescaled so that its
predictions are varied (masks of different sizes, scores far apart) rather than near-identical: the session
fixtures ``shared_tiny_model`` and ``shared_aoti_package`` of tests/conftest.py, shared with tests/export so that
the AOTInductor package is compiled once per session.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest

import pysalient
from tests.cpp.helpers import FORMATS, IMAGE_SIZES, IMGSZ, MAX_DET, REPO_ROOT, build_cmake_project, run


@pytest.fixture(scope="session")
def cmake_prefix_path() -> str:
    """What ``python -m pysalient.cmake`` prints (the installed package, then torch's prefix)."""
    result = run([sys.executable, "-m", "pysalient.cmake"])
    if result.returncode != 0:
        pytest.fail(f"python -m pysalient.cmake failed: {result.stderr}")
    return result.stdout.strip()


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
