"""ONNX export of every family: standard operators only, run by ONNX Runtime, eager ``predict``'s results.

Each family's default model (``pysalient.load(family)``: its shipped SynthSIS weights) and the official
``sparseinst_r50_giam`` / ``rdpnet_r50`` weights are exported once and compared with eager ``predict`` on images of
several sizes (non-square, odd): the same instances, scores within 1e-4, at most 0.01 % of the mask pixels differing
(float rounding of ONNX Runtime's kernels flips a pixel whose value lies within ~1e-7 of the mask threshold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch

import pysalient
from pysalient.data import synthesize
from pysalient.engine.checkpoint import atomic_torch_save
from pysalient.engine.model import SalientModel
from pysalient.export.formats import FORMATS
from pysalient.models.registry import get_model_entry, list_families
from pysalient.structures import Result
from tests.export.helpers import random_image
from tests.fixtures import fixtures_dir, load_fixture

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

# Every registered family (a new one is covered without editing this file), through its default entry.
FAMILIES = tuple(list_families())
# Non-square and odd image sizes; SynthSIS scenes (what the default weights were trained on) and noise.
IMAGE_SIZES = ((97, 131), (160, 96), (75, 75), (61, 203))
MASK_TOLERANCE = 1e-4  # fraction of mask pixels allowed to differ


def family_images(folder: Path) -> List[np.ndarray]:
    """One SynthSIS scene per size of :data:`IMAGE_SIZES` (BGR uint8) and a noise image."""
    import cv2

    images = []
    for index, size in enumerate(IMAGE_SIZES):
        synthesize(folder / str(index), test=1, size=size, seed=100 + index)
        (path,) = sorted((folder / str(index) / "images" / "test").iterdir())
        images.append(cv2.imread(str(path)))
    return images + [random_image(83, 117, 0)]


def assert_onnx_matches(onnx_result: Result, eager: Result) -> None:
    """Same instances as eager: count, labels, scores within 1e-4, boxes within a pixel, masks up to 0.01 %.

    Instances whose eager scores lie within 1e-6 of each other (float rounding apart: ONNX Runtime's convolutions
    round differently from PyTorch's by ~1e-7) may come in either order; they are paired by their masks.
    """
    assert len(onnx_result) == len(eager)
    assert onnx_result.image_size == eager.image_size
    torch.testing.assert_close(onnx_result.scores, eager.scores, atol=1e-4, rtol=0)
    order = torch.arange(len(eager))
    start = 0
    while start < len(eager):  # groups of (nearly) tied scores
        end = start + 1
        while end < len(eager) and float(eager.scores[end - 1] - eager.scores[end]) <= 1e-6:
            end += 1
        if end - start > 1:
            flat_eager = eager.masks[start:end].flatten(1)
            flat_onnx = onnx_result.masks[start:end].flatten(1)
            free = list(range(start, end))
            for index in range(start, end):
                costs = [int((flat_eager[index - start] != flat_onnx[other - start]).sum()) for other in free]
                order[index] = free.pop(int(np.argmin(costs)))
        start = end
    assert torch.equal(onnx_result.labels[order], eager.labels)
    differing = (onnx_result.masks[order] != eager.masks).sum().item()
    assert differing <= MASK_TOLERANCE * max(eager.masks.numel(), 1), f"{differing} mask pixels differ"
    torch.testing.assert_close(onnx_result.boxes[order], eager.boxes, atol=1.0, rtol=0)


def assert_standard_graph(path: Path) -> None:
    """Every node is a default-domain ONNX operator of opset >= 17 and the full checker passes."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert opsets.get("", opsets.get("ai.onnx", 0)) >= 17
    assert not model.functions, [function.name for function in model.functions]

    def nodes(graph) -> List:
        found = []
        for node in graph.node:
            found.append(node)
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    found.extend(nodes(attribute.g))
        return found

    foreign = sorted(
        {f"{node.domain}::{node.op_type}" for node in nodes(model.graph) if node.domain not in ("", "ai.onnx")}
    )
    assert not foreign, f"non-standard nodes: {foreign}"


@pytest.fixture(scope="module")
def exported_families(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[SalientModel, Path]]:
    """Every family's default model (``pysalient.load(family)``, its shipped weights) and its ONNX export."""
    folder = tmp_path_factory.mktemp("onnx")
    exported = {}
    for family in FAMILIES:
        model = pysalient.load(family, device="cpu")
        path = model.export("onnx", folder / f"{family}.onnx", verbose=False)
        exported[family] = (model, Path(path))
    return exported


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> List[np.ndarray]:
    return family_images(tmp_path_factory.mktemp("synthsis"))


@pytest.mark.parametrize("family", FAMILIES)
def test_default_model_matches_eager_on_several_sizes(family: str, exported_families, images) -> None:
    model, path = exported_families[family]
    assert model.name == get_model_entry(family).name  # the default entry, with its shipped weights
    loaded = pysalient.load(path)
    assert loaded.format == "onnx" and loaded.device == torch.device("cpu")
    assert loaded.metadata["family"] == family and loaded.names == model.names
    detections = 0
    for image in images:
        for conf in (model.default_conf, 0.05):
            (eager,) = model.predict(image, conf=conf)
            (result,) = loaded.predict(image, conf=conf)
            assert_onnx_matches(result, eager)
            detections += len(eager)
    assert detections >= len(images), "the comparison needs detections"


@pytest.mark.parametrize("family", FAMILIES)
def test_graph_has_standard_operators_and_metadata(family: str, exported_families) -> None:
    model, path = exported_families[family]
    assert_standard_graph(path)
    loaded = onnx.load(str(path))
    props = {entry.key: entry.value for entry in loaded.metadata_props}
    assert set(props) == {"pysalient.json"}
    assert [entry.name for entry in loaded.graph.input] == ["image", "conf"]
    assert [entry.name for entry in loaded.graph.output] == ["boxes", "scores", "labels", "masks"]
    image_dims = loaded.graph.input[0].type.tensor_type.shape.dim
    assert image_dims[0].dim_param and image_dims[1].dim_param and image_dims[2].dim_value == 3


def test_conf_is_a_run_time_input(exported_families, images) -> None:
    model, path = exported_families["sparseinst"]
    loaded = pysalient.load(path)
    image = images[0]
    (full,) = loaded.predict(image, conf=0.0)
    # Half-way between two scores: a threshold equal to a score would decide on a 1e-7 rounding difference.
    gaps = full.scores[:-1] - full.scores[1:]
    middle = int(torch.argmax(gaps[: len(gaps) // 2 + 1]))
    threshold = float(full.scores[middle] + full.scores[middle + 1]) / 2
    (high,) = loaded.predict(image, conf=threshold)
    (eager,) = model.predict(image, conf=threshold)
    assert len(high) == int((full.scores >= threshold).sum()) and len(high) > 0
    assert_onnx_matches(high, eager)


def test_no_detection_gives_empty_outputs(exported_families) -> None:
    _, path = exported_families["rdpnet"]
    boxes, scores, labels, masks = pysalient.load(path).run(random_image(45, 77, 6), conf=1.0)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,) and masks.shape == (0, 45, 77)
    assert masks.dtype == torch.uint8 and labels.dtype == torch.int64


def _official_weights(fixture_name: str, tmp_path: Path, prefix: str) -> Path:
    fixture = load_fixture(fixture_name)
    path = tmp_path / "official.pth"
    atomic_torch_save({"model": {prefix + key: value for key, value in fixture["state_dict"].items()}}, path)
    return path


@pytest.mark.skipif(not (fixtures_dir() / "sparseinst_r50_giam_official.pt").exists(), reason="fixture missing")
def test_official_sparseinst_r50_giam_matches_eager(tmp_path) -> None:
    model = pysalient.load(
        "sparseinst_r50_giam", weights=_official_weights("sparseinst_r50_giam_official.pt", tmp_path, ""), device="cpu"
    )
    loaded = pysalient.load(model.export("onnx", tmp_path / "giam.onnx", verbose=False))
    fixture = load_fixture("sparseinst_r50_giam_official.pt")
    fixture_image = np.ascontiguousarray(fixture["image_rgb"].numpy()[:, :, ::-1])
    for image in (fixture_image, random_image(97, 131, 1), random_image(250, 83, 2)):
        (eager,) = model.predict(image, conf=0.01)
        (result,) = loaded.predict(image, conf=0.01)
        assert_onnx_matches(result, eager)


@pytest.mark.skipif(not (fixtures_dir() / "rdpnet_r50_isod_official.pt").exists(), reason="fixture missing")
def test_official_rdpnet_r50_matches_eager(tmp_path) -> None:
    weights = _official_weights("rdpnet_r50_isod_official.pt", tmp_path, "module.")
    model = pysalient.load("rdpnet_r50", weights=weights, device="cpu")
    loaded = pysalient.load(model.export("onnx", tmp_path / "rdpnet.onnx", imgsz=320, verbose=False))
    fixture = load_fixture("rdpnet_r50_isod_official.pt")
    for image in (fixture["image_bgr"].numpy(), random_image(211, 157, 3), random_image(120, 333, 4)):
        (eager,) = model.predict(image, conf=0.05, imgsz=320)
        (result,) = loaded.predict(image, conf=0.05)
        assert_onnx_matches(result, eager)


def test_format_is_registered() -> None:
    assert FORMATS["onnx"].suffix == ".onnx"
    assert pysalient.export.resolve_format("ONNX") is FORMATS["onnx"]


def test_missing_packages_fail_with_one_line(monkeypatch, tmp_path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ImportError, match=r"pip install 'pysalient\[onnx\]'") as error:
        pysalient.load(tmp_path / "model.onnx")
    assert "\n" not in str(error.value)


def test_bad_files_raise_clear_errors(tmp_path, exported_families) -> None:
    with pytest.raises(FileNotFoundError):
        pysalient.load(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        pysalient.load(garbage)
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(exported_families["s4net"][1]))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    with pytest.raises(ValueError, match="not a pysalient export"):
        pysalient.load(foreign)
    loaded = pysalient.load(exported_families["s4net"][1])
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        loaded.run(torch.zeros(8, 8, 3))
    with pytest.raises(ValueError, match="exported for imgsz"):
        loaded.predict(random_image(40, 40, 0), imgsz=999)
    with pytest.raises(ValueError, match="already an export"):
        loaded.export("onnx", tmp_path / "again.onnx")


def test_half_onnx_exports_need_a_gpu(exported_families, tmp_path) -> None:
    model = exported_families["s4net"][0]
    with pytest.raises(ValueError, match="half=True onnx exports need a cuda device"):
        model.export("onnx", tmp_path / "half.onnx", half=True)
    assert not (tmp_path / "half.onnx").exists()
