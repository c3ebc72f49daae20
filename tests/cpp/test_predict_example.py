"""examples/cpp ``predict``: built against the installed package, same detections as Python, clear errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest
import torch

import pysalient
from pysalient.models import list_families
from tests.cpp.helpers import FORMATS, IMGSZ, MAX_DET, run, separating_conf
from tests.export.helpers import shared_tiny_model


def needed_libraries(binary: Path) -> List[str]:
    """The DT_NEEDED entries of an ELF file, read with binutils' readelf."""
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.fail("readelf (binutils) is needed to inspect the built program")
    output = subprocess.run([readelf, "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in output.splitlines() if "(NEEDED)" in line]


def run_example(binary: Path, model: Path, image: Path, out_image: Path, *options: str) -> List[Dict]:
    result = run([binary, model, image, out_image, *options], timeout=300)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["detections"]
    return document["detections"]


def test_example_keeps_the_op_library_needed(example_binary: Path, cmake_prefix_path: str) -> None:
    # Linked with --as-needed forced on: without PySalient::ops' --no-as-needed the library would be dropped,
    # and a .pt2 / .ts would fail to load for want of the pysalient operators.
    needed = needed_libraries(example_binary)
    assert "libpysalient_ops.so" in needed and "libpysalient_runtime.so" in needed
    runtime = Path(cmake_prefix_path.split(";")[0]) / "lib" / "libpysalient_runtime.so"
    assert "libpysalient_ops.so" in needed_libraries(runtime)


@pytest.mark.parametrize("export_format", list(FORMATS))
def test_example_matches_python(
    example_binary: Path,
    exported_models: Dict[str, Path],
    test_model,
    test_images: List[Path],
    export_format: str,
    tmp_path: Path,
) -> None:
    for image_path in test_images:
        out_path = tmp_path / f"overlay_{image_path.stem}.png"
        detections = run_example(example_binary, exported_models[export_format], image_path, out_path)
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        (expected,) = test_model.predict(image, imgsz=IMGSZ, max_det=MAX_DET)
        assert 1 < len(detections) == len(expected), image_path.name
        assert all(list(item) == ["box", "score", "label", "area"] for item in detections)
        boxes = torch.tensor([item["box"] for item in detections], dtype=torch.float32)
        scores = torch.tensor([item["score"] for item in detections], dtype=torch.float32)
        labels = torch.tensor([item["label"] for item in detections], dtype=torch.int64)
        areas = torch.tensor([item["area"] for item in detections], dtype=torch.int64)
        assert torch.equal(boxes, expected.boxes), image_path.name
        assert torch.equal(labels, expected.labels), image_path.name
        torch.testing.assert_close(scores, expected.scores, atol=1e-5, rtol=0)
        assert torch.equal(areas, expected.masks.flatten(1).sum(1)), image_path.name
        # Varied predictions, or the comparison above proves little.
        assert len(set(areas.tolist())) > 1 and float(scores[0] - scores[-1]) > 1e-3

        overlay = cv2.imread(str(out_path), cv2.IMREAD_COLOR)
        assert overlay.shape == image.shape
        covered = expected.masks.any(dim=0).numpy()
        changed = np.any(overlay != image, axis=2)
        assert changed[covered].mean() > 0.9  # masks are blended in everywhere they cover


def assert_same_detections(detections: List[Dict], expected, label: str) -> None:
    """The example's JSON detections are those of a Python Result: same count, boxes, labels and areas, scores
    within 1e-5."""
    assert len(detections) == len(expected), label
    assert torch.equal(torch.tensor([item["box"] for item in detections]).reshape(-1, 4), expected.boxes), label
    assert [item["label"] for item in detections] == expected.labels.tolist(), label
    scores = torch.tensor([item["score"] for item in detections], dtype=torch.float32)
    torch.testing.assert_close(scores, expected.scores, atol=1e-5, rtol=0)
    assert [item["area"] for item in detections] == expected.masks.flatten(1).sum(1).tolist(), label


@pytest.mark.parametrize("export_format", list(FORMATS))
def test_example_conf_matches_python(
    example_binary: Path,
    exported_models: Dict[str, Path],
    test_model,
    test_images: List[Path],
    export_format: str,
    tmp_path: Path,
) -> None:
    model = exported_models[export_format]
    exported = pysalient.load(str(model))
    out_path = tmp_path / "overlay.png"
    # Without --conf the model's default applies: the metadata's "conf", Python's default.
    assert exported.default_conf == exported.metadata["conf"]
    default = run_example(example_binary, model, test_images[0], out_path)
    assert (
        run_example(example_binary, model, test_images[0], out_path, "--conf", repr(exported.default_conf)) == default
    )
    for index, image_path in enumerate(test_images):
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        (at_default,) = test_model.predict(image, imgsz=IMGSZ, max_det=MAX_DET)
        conf = separating_conf(at_default.scores.tolist())
        assert conf > exported.default_conf
        option = ["--conf", repr(conf)] if index % 2 == 0 else [f"--conf={conf!r}"]
        detections = run_example(example_binary, model, image_path, out_path, *option)
        assert 0 < len(detections) < len(at_default), image_path.name
        (eager,) = test_model.predict(image, conf=conf, imgsz=IMGSZ, max_det=MAX_DET)
        assert_same_detections(detections, eager, f"eager {image_path.name} conf={conf}")
        (python,) = exported.predict(image, conf=conf)
        assert_same_detections(detections, python, f"ExportedModel {image_path.name} conf={conf}")


def test_example_rejects_bad_conf(
    example_binary: Path, exported_models: Dict[str, Path], test_images: List[Path], tmp_path: Path
) -> None:
    arguments = [exported_models["torchscript"], test_images[0], tmp_path / "out.png"]
    for options in (
        ["--conf", "1.5"],
        ["--conf", "nan"],
        ["--conf", "-0.1"],
        ["--conf", "abc"],
        ["--conf=0.5x"],
        ["--conf="],
        ["--conf"],
        ["--threshold", "0.5"],
    ):
        result = run([example_binary, *arguments, *options], timeout=60)
        assert result.returncode == 2 and result.stdout == "", (options, result.stderr)
        assert "usage:" in result.stderr and "[--conf X]" in result.stderr, (options, result.stderr)
        problem = result.stderr.splitlines()[0]
        assert problem.startswith("predict: error: "), (options, problem)
        assert ("--conf" in problem) if options[0].startswith("--conf") else ("--threshold" in problem), problem
    assert not (tmp_path / "out.png").exists()


def make_invalid_models(folder: Path, test_model) -> Dict[str, Path]:
    """Files that are not pysalient exports, each with what the error must say about it."""
    text_file = folder / "notes.ts"
    text_file.write_text("not a model\n")
    checkpoint = Path(test_model.save(folder / "checkpoint.pt"))

    class Identity(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return image

    no_metadata = folder / "no_metadata.ts"
    torch.jit.save(torch.jit.script(Identity()), str(no_metadata))
    program = folder / "program.pt2"
    torch.export.save(torch.export.export(Identity(), (torch.zeros(4, 4, 3, dtype=torch.uint8),)), str(program))
    return {
        r"model file not found: .*missing\.pt2": folder / "missing.pt2",
        r"notes\.ts is neither a TorchScript file \(\.ts\) nor an AOTInductor package \(\.pt2\): it is not a "
        r"PyTorch zip archive": text_file,
        r"checkpoint\.pt is neither a TorchScript file \(\.ts\) nor an AOTInductor package \(\.pt2\)": checkpoint,
        r"no_metadata\.ts has no pysalient metadata \(pysalient\.json\)": no_metadata,
        r"program\.pt2 is a torch\.export program without AOTInductor-compiled code": program,
    }


def test_example_reports_bad_models_and_images(
    example_binary: Path, exported_models: Dict[str, Path], test_model, test_images: List[Path], tmp_path: Path
) -> None:
    image = test_images[0]
    for message, model in make_invalid_models(tmp_path, test_model).items():
        result = run([example_binary, model, image, tmp_path / "out.png"], timeout=120)
        assert result.returncode == 1 and result.stdout == "", (message, result.stdout, result.stderr)
        assert result.stderr.startswith("predict: error: pysalient: "), result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr  # no C++ stack trace
        assert re.search(message, result.stderr), (message, result.stderr)
    model = exported_models["torchscript"]
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image\n")
    for bad_image in (tmp_path / "missing.png", not_an_image):
        result = run([example_binary, model, bad_image, tmp_path / "out.png"], timeout=120)
        assert result.returncode == 1 and f"cannot read the image {bad_image}" in result.stderr, result.stderr
    result = run([example_binary, model, image, tmp_path / "no_such_folder" / "out.png"], timeout=120)
    assert result.returncode == 1 and "predict: error:" in result.stderr and result.stdout == ""
    result = run([example_binary, model, image], timeout=60)
    assert result.returncode == 2 and "usage:" in result.stderr and "MODEL IMAGE OUT_IMAGE" in result.stderr


@pytest.mark.parametrize("family", list_families())
def test_example_runs_the_torchscript_export_of_every_family(
    example_binary: Path, test_images: List[Path], family: str, tmp_path: Path
) -> None:
    # The runtime knows no family: one graph per family, its resize rule (shortest edge or fixed) inside.
    model = shared_tiny_model(family)
    path = Path(model.export("torchscript", tmp_path / "model.ts", imgsz=IMGSZ, max_det=MAX_DET))
    for image_path in test_images[:2]:
        detections = run_example(example_binary, path, image_path, tmp_path / "overlay.png")
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        (expected,) = model.predict(image, imgsz=IMGSZ, max_det=MAX_DET)
        assert len(expected) > 0 and expected.masks.flatten(1).any(1).any(), (family, image_path.name)
        assert_same_detections(detections, expected, f"{family} {image_path.name}")
