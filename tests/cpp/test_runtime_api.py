"""pysalient::Predictor called directly from C++ (tests/cpp/runtime_checks): metadata, input checks, overloads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict

import pytest

import pysalient
from tests.cpp.helpers import FORMATS, run

# What predict must say about each bad input (runtime_checks.cpp builds them).
EXPECTED_ERRORS = {
    "four_channels": r"^pysalient: predict expects a BGR image tensor \[H, W, 3\], got \[45, 70, 4\] Byte$",
    "two_dims": r"^pysalient: predict expects a BGR image tensor \[H, W, 3\], got \[45, 70\] Byte$",
    "float_image": r"^pysalient: predict expects a uint8 image, got \[45, 70, 3\] Float$",
    "empty_height": r"^pysalient: predict got an empty image \[0, 70, 3\] Byte$",
    "undefined": r"^pysalient: predict got an undefined tensor$",
    "null_buffer": r"^pysalient: predict got a null image buffer$",
    "zero_width": r"^pysalient: predict got an image of 45x0 pixels; both sides must be positive$",
}


@pytest.mark.parametrize("export_format", list(FORMATS))
def test_predictor_api(runtime_checks_binary: Path, exported_models: Dict[str, Path], export_format: str) -> None:
    model = exported_models[export_format]
    result = run([runtime_checks_binary, model], timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    # Pointer and tensor overloads, a non-contiguous tensor and the per-detection structs all agree.
    assert report["consistent"] is True and report["detections"] > 0

    python_side = pysalient.load(str(model)).metadata
    metadata = report["metadata"]
    assert json.loads(metadata["json"]) == python_side
    assert metadata["format"] == export_format == python_side["format"]
    assert (metadata["family"], metadata["name"]) == ("sparseinst", "sparseinst_mbv2_tiny")
    assert metadata["class_names"] == python_side["class_names"] == ["salient"]
    assert metadata["version"] == metadata["runtime_version"] == pysalient.__version__
    assert metadata["device"] == "cpu"

    errors = report["errors"]
    expected = dict(EXPECTED_ERRORS)
    if export_format == "aoti":
        # An AOTInductor graph is compiled for a range of sizes; the Predictor enforces it.
        low, high = python_side["input_size_range"]
        assert (metadata["min_input_size"], metadata["max_input_size"]) == (low, high)
        expected["below_input_size_range"] = (
            rf"^pysalient: predict got an image of {low - 1}x70 pixels but .*model\.pt2 accepts heights and "
            rf"widths in \[{low}, {high}\]$"
        )
    else:
        assert (metadata["min_input_size"], metadata["max_input_size"]) == (0, 0)
    assert set(errors) == set(expected)
    for case, pattern in expected.items():
        assert re.search(pattern, errors[case]), (case, errors[case])
