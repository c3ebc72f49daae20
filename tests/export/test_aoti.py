"""AOTInductor exports: torch.export with dynamic H and W, compiled once per session (minutes on a small CPU).

The package is the session fixture ``shared_aoti_package`` of tests/conftest.py, which tests/cpp runs in C++ too;
the exported program (before compilation) is checked on its own because it is cheap and isolates tracing problems
from compilation problems.
"""

from __future__ import annotations

import zipfile

import pytest
import torch

import pysalient
from pysalient.export import ExportContract
from pysalient.export.aoti import export_program
from pysalient.inputs import Preprocessor
from pysalient.models.registry import list_families
from tests.export.helpers import (
    SHARED_MAX_DET,
    assert_nontrivial_masks,
    assert_same_result,
    random_image,
    shared_tiny_model,
)

# 93x256 is an x.5 tie of the resize rule (46 rows with Python floats, 47 in exact arithmetic); 250x83 is capped.
SIZES = [(300, 400), (97, 131), (250, 83), (93, 256), (2, 2)]
EXTREME_SIZES = [(2, 300), (1000, 30)]


@pytest.fixture(scope="module")
def tiny(shared_tiny_model) -> pysalient.engine.model.SalientModel:
    return shared_tiny_model


@pytest.fixture(scope="module")
def package(shared_aoti_package) -> str:
    return str(shared_aoti_package)


@pytest.mark.parametrize("family", list_families())
def test_exported_program_has_dynamic_sizes_and_matches_eager(family: str) -> None:
    # Every family: one program (symbolic H and W) equals eager predict bit for bit, elongated inputs included (their
    # coarse maps are where a size guard specialised to the example image would fail).
    model = shared_tiny_model(family)
    inference = model.config.inference_spec()
    detector = model.family.build_detector(model.network, model.config, inference)
    contract = ExportContract(Preprocessor(model.config.input_spec()), detector, inference.score_threshold).eval()
    program = export_program(contract, torch.device("cpu"), 2, 8192)
    module = program.module()
    for index, (height, width) in enumerate(SIZES + EXTREME_SIZES):
        image = random_image(height, width, index)
        for conf in (0.0, 0.6):  # conf is a graph input: one program serves every threshold
            (eager,) = model.predict(image, conf=conf)
            boxes, scores, labels, masks = module(torch.from_numpy(image), torch.tensor(conf))
            assert torch.equal(masks.bool(), eager.masks) and torch.equal(scores, eager.scores), (height, width)
            assert torch.equal(boxes, eager.boxes) and torch.equal(labels, eager.labels), (height, width)


def test_package_matches_eager_predict_at_several_sizes(tiny, package) -> None:
    exported = pysalient.load(package)
    assert exported.format == "aoti" and exported.device == torch.device("cpu")
    for index, (height, width) in enumerate(SIZES[:-1]):
        image = random_image(height, width, index)
        (eager,) = tiny.predict(image, max_det=SHARED_MAX_DET)  # the package keeps the top SHARED_MAX_DET
        (result,) = exported.predict(image)
        assert_same_result(result, eager, mask_tolerance=1e-5)
        assert_nontrivial_masks(result)
        # between two scores (they are > 1e-3 apart): compiled graphs round scores differently by ~1e-7
        middle = len(eager) // 2
        high = float(eager.scores[middle - 1] + eager.scores[middle]) / 2
        (eager_high,), (result_high,) = (
            tiny.predict(image, conf=high, max_det=SHARED_MAX_DET),
            exported.predict(image, conf=high),
        )
        assert len(result_high) == len(eager_high) < len(eager)
        torch.testing.assert_close(result_high.scores, eager_high.scores, atol=1e-5, rtol=0)
    (tiny_image,) = exported.predict(random_image(2, 2, 9))
    (tiny_eager,) = tiny.predict(random_image(2, 2, 9), max_det=SHARED_MAX_DET)
    assert tiny_image.masks.shape[1:] == (2, 2) and len(tiny_image) == len(tiny_eager)


def test_package_metadata_round_trip(package) -> None:
    runner = torch._inductor.aoti_load_package(package)
    assert "pysalient.json" in runner.get_metadata()  # what C++ AOTIModelPackageLoader::get_metadata() returns
    metadata = pysalient.load(package).metadata
    assert metadata["format"] == "aoti" and metadata["input_size_range"] == [2, 8192]
    assert (metadata["name"], metadata["imgsz"], metadata["max_size"], metadata["dtype"]) == (
        "sparseinst_mbv2_tiny",
        64,
        128,
        "fp32",
    )
    assert metadata["class_names"] == ["salient"] and metadata["device"] == "cpu"


def test_package_errors(package, tmp_path) -> None:
    exported = pysalient.load(package)
    with pytest.raises(ValueError, match=r"sides in \[2, 8192\]"):
        exported.run(random_image(1, 5, 0))
    (tmp_path / "garbage.pt2").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an AOTInductor package"):
        pysalient.load(tmp_path / "garbage.pt2")
    with zipfile.ZipFile(tmp_path / "other.pt2", "w") as archive:
        archive.writestr("other/data.txt", "an unrelated zip file")
    with pytest.raises(ValueError, match="not a loadable AOTInductor package|not a pysalient export"):
        pysalient.load(tmp_path / "other.pt2")
