"""pysalient::Predictor called directly from C++ (tests/cpp/runtime_checks): metadata, input checks, overloads,
the ``conf`` threshold."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pytest
import torch

import pysalient
from tests.cpp.helpers import FORMATS, IMGSZ, MAX_DET, run, separating_conf

# The deterministic image runtime_checks.cpp runs the model on.
CHECK_IMAGE = (np.arange(45 * 70 * 3, dtype=np.int64) * 37 % 251).astype(np.uint8).reshape(45, 70, 3)
CONF_ERROR = r"^pysalient: conf must be a number in \[0, 1\] \(the minimum score of a returned instance\), got "

# What predict must say about each bad input (runtime_checks.cpp builds them).
EXPECTED_ERRORS = {
    "four_channels": r"^pysalient: predict expects a BGR image tensor \[H, W, 3\], got \[45, 70, 4\] Byte$",
    "two_dims": r"^pysalient: predict expects a BGR image tensor \[H, W, 3\], got \[45, 70\] Byte$",
    "float_image": r"^pysalient: predict expects a uint8 image, got \[45, 70, 3\] Float$",
    "empty_height": r"^pysalient: predict got an empty image \[0, 70, 3\] Byte$",
    "undefined": r"^pysalient: predict got an undefined tensor$",
    "null_buffer": r"^pysalient: predict got a null image buffer$",
    "zero_width": r"^pysalient: predict got an image of 45x0 pixels; both sides must be positive$",
    "conf_above_one": CONF_ERROR + r"1\.5$",
    "conf_negative": CONF_ERROR + r"-0\.1$",
    "conf_nan": CONF_ERROR + r"-?nan$",
    "conf_nan_pointer": CONF_ERROR + r"-?nan$",
}


def run_checks(binary: Path, model: Path, confs: Sequence[float] = ()) -> Dict:
    result = run([binary, model, *[repr(conf) for conf in confs]], timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_same_detections(cpp: Dict, python, label: str) -> None:
    """The detections runtime_checks printed for one conf are those of a Python Result: same count and labels,
    scores within 1e-5, boxes and mask areas equal."""
    assert len(cpp["scores"]) == len(python), (label, cpp["scores"], python.scores.tolist())
    torch.testing.assert_close(torch.tensor(cpp["scores"], dtype=torch.float32), python.scores, atol=1e-5, rtol=0)
    assert cpp["labels"] == python.labels.tolist(), label
    assert torch.equal(torch.tensor(cpp["boxes"], dtype=torch.float32).reshape(-1, 4), python.boxes), label
    assert cpp["areas"] == python.masks.flatten(1).sum(1).tolist(), label


@pytest.mark.parametrize("export_format", list(FORMATS))
def test_predictor_api(runtime_checks_binary: Path, exported_models: Dict[str, Path], export_format: str) -> None:
    model = exported_models[export_format]
    report = run_checks(runtime_checks_binary, model)

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
    # The default threshold is the metadata's "conf", the one Python applies by default.
    assert metadata["format_version"] == python_side["format_version"] == 2
    default_conf = pysalient.load(str(model)).default_conf
    assert metadata["default_conf"] == metadata["conf"] == python_side["conf"] == default_conf

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


@pytest.mark.parametrize("export_format", list(FORMATS))
def test_predictor_conf_matches_python(
    runtime_checks_binary: Path, exported_models: Dict[str, Path], test_model, export_format: str
) -> None:
    model = exported_models[export_format]
    exported = pysalient.load(str(model))
    (at_default,) = exported.predict(CHECK_IMAGE)
    conf = separating_conf(at_default.scores.tolist())
    assert conf > exported.default_conf
    confs: List[float] = [conf, 0.0, exported.default_conf]
    report = run_checks(runtime_checks_binary, model, confs)
    assert [entry["conf"] for entry in report["by_conf"]] == confs
    for entry in report["by_conf"]:
        assert entry["consistent"] is True, entry["conf"]
        (python,) = exported.predict(CHECK_IMAGE, conf=entry["conf"])
        assert_same_detections(entry, python, f"ExportedModel conf={entry['conf']}")
        (eager,) = test_model.predict(CHECK_IMAGE, conf=entry["conf"], imgsz=IMGSZ, max_det=MAX_DET)
        assert_same_detections(entry, eager, f"eager conf={entry['conf']}")
    # The higher threshold really removed instances (and kept some), so the comparison above means something.
    assert 0 < len(report["by_conf"][0]["scores"]) < report["detections"] == len(report["by_conf"][2]["scores"])
    assert min(report["by_conf"][0]["scores"]) >= conf


def test_predictor_runs_version_1_exports(
    runtime_checks_binary: Path, exported_models: Dict[str, Path], legacy_model: Path
) -> None:
    # A version-1 graph takes the image only: its default threshold is 0 in C++ (the graph applied its own), and
    # a higher conf filters its outputs on the host, giving what Python gives for the version-1 and -2 files.
    legacy, current = pysalient.load(str(legacy_model)), pysalient.load(str(exported_models["torchscript"]))
    assert legacy.metadata["format_version"] == 1 and "conf" not in legacy.metadata
    (at_default,) = current.predict(CHECK_IMAGE)
    conf = separating_conf(at_default.scores.tolist())
    report = run_checks(runtime_checks_binary, legacy_model, [conf])
    metadata = report["metadata"]
    assert (metadata["format_version"], metadata["conf"], metadata["default_conf"]) == (1, 0, 0)
    assert report["consistent"] is True and report["detections"] == len(at_default)
    assert set(report["errors"]) == set(EXPECTED_ERRORS)
    for case, pattern in EXPECTED_ERRORS.items():
        assert re.search(pattern, report["errors"][case]), (case, report["errors"][case])
    (entry,) = report["by_conf"]
    assert entry["consistent"] is True and 0 < len(entry["scores"]) < len(at_default)
    for python in (legacy.predict(CHECK_IMAGE, conf=conf)[0], current.predict(CHECK_IMAGE, conf=conf)[0]):
        assert_same_detections(entry, python, f"conf={conf}")
