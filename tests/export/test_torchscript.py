"""TorchScript exports: same results as eager predict, metadata inside, the ExportedModel API and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pysalient
from pysalient.engine.checkpoint import atomic_torch_save
from pysalient.engine.exported import ExportedModel
from pysalient.export import METADATA_KEY
from tests.export.helpers import assert_nontrivial_masks, assert_same_result, random_image, sized_confident_model
from tests.fixtures import load_fixture

# Non-square, odd and small sizes; 250x83 hits the longest-side cap of the tiny model's config (64 / 128).
SIZES = [(300, 400), (97, 131), (250, 83), (93, 256)]


@pytest.fixture(scope="module")
def tiny() -> pysalient.engine.model.SalientModel:
    return sized_confident_model(64, 128)


@pytest.fixture(scope="module")
def tiny_export(tiny, tmp_path_factory) -> str:
    return tiny.export("torchscript", tmp_path_factory.mktemp("ts") / "tiny.ts")


def test_default_entry_matches_eager_predict_at_several_sizes(tiny, tiny_export) -> None:
    exported = pysalient.load(tiny_export)
    assert isinstance(exported, ExportedModel) and exported.format == "torchscript"
    for index, (height, width) in enumerate(SIZES):
        image = random_image(height, width, index)
        (eager,) = tiny.predict(image)
        (result,) = exported.predict(image)
        assert_same_result(result, eager)
        assert_nontrivial_masks(result)
        assert result.orig_img is image and result.masks.shape[1:] == (height, width)
        boxes, scores, labels, masks = exported.run(image)
        assert (boxes.dtype, scores.dtype, labels.dtype, masks.dtype) == (
            torch.float32,
            torch.float32,
            torch.int64,
            torch.uint8,
        )


def test_metadata_round_trip(tiny, tiny_export) -> None:
    metadata = pysalient.load(tiny_export).metadata
    extra = {METADATA_KEY: ""}
    torch.jit.load(tiny_export, _extra_files=extra)  # what a C++ program reads with torch::jit::load
    assert json.loads(extra[METADATA_KEY]) == metadata
    assert metadata["format"] == "torchscript" and metadata["format_version"] == 2
    assert (metadata["family"], metadata["name"]) == ("sparseinst", "sparseinst_mbv2_tiny")
    assert metadata["class_names"] == ["salient"] and metadata["input"]["channel_order"] == "BGR"
    assert (metadata["imgsz"], metadata["max_size"], metadata["size_divisibility"]) == (64, 128, 32)
    assert metadata["thresholds"] == {"conf": 0.3, "mask": tiny.config.mask_threshold, "nms": None}
    assert metadata["conf"] == tiny.default_conf == 0.3 and metadata["inputs"] == ["image", "conf"]
    assert metadata["resize"] == "shortest_edge"
    assert (metadata["max_det"], metadata["dtype"], metadata["device"]) == (100, "fp32", "cpu")
    assert metadata["pysalient_version"] == pysalient.__version__ and metadata["ops_version"]
    assert metadata["torch_version"] == torch.__version__
    assert metadata["outputs"] == ["boxes", "scores", "labels", "masks"]


def test_conf_and_max_det_mean_what_they_mean_in_eager_predict(tiny, tiny_export) -> None:
    exported = pysalient.load(tiny_export, device="cpu")
    image = random_image(80, 120, 7)
    (full,) = exported.predict(image, batch=4, conf=0.0)  # batch only sets how many images are read ahead
    threshold = float(full.scores[len(full) // 2])
    for conf in (0.0, threshold, 0.99):
        (result,) = exported.predict(image, conf=conf)
        (eager,) = tiny.predict(image, conf=conf)
        assert len(result) == len(eager) and torch.equal(result.scores, eager.scores)
        assert torch.all(result.scores >= conf)
    (filtered,) = exported.predict(image, conf=threshold, max_det=3)
    assert len(filtered) == 3 and torch.all(filtered.scores >= threshold)
    assert torch.equal(filtered.masks, full.masks[:3])
    streamed = exported.predict([image, image[:40]], stream=True)
    assert not isinstance(streamed, list) and [r.image_size for r in streamed] == [(80, 120), (40, 120)]
    with pytest.raises(ValueError, match="exported for imgsz=64"):
        exported.predict(image, imgsz=320)
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        exported.run(torch.zeros(8, 8, 3))


def test_official_r50_giam_weights_match_eager(tmp_path) -> None:
    fixture = load_fixture("sparseinst_r50_giam_official.pt")
    weights = tmp_path / "official.pth"
    atomic_torch_save({"model": fixture["state_dict"]}, weights)
    model = pysalient.load("sparseinst_r50_giam", weights=weights, device="cpu")
    exported = pysalient.load(model.export("torchscript", tmp_path / "r50.ts"))
    fixture_image = np.ascontiguousarray(fixture["image_rgb"].numpy()[:, :, ::-1])
    for image in (fixture_image, random_image(97, 131, 1), random_image(250, 83, 2)):
        (eager,) = model.predict(image, conf=0.01)  # COCO weights find little in noise at the default 0.3
        (result,) = exported.predict(image, conf=0.01)
        assert_same_result(result, eager)
    assert exported.metadata["name"] == "sparseinst_r50_giam" and exported.metadata["imgsz"] == 320


def test_half_export_runs_with_float32_outputs(tiny, tmp_path) -> None:
    exported = pysalient.load(tiny.export("torchscript", tmp_path / "half.ts", half=True))
    assert exported.metadata["dtype"] == "fp16"
    image = random_image(97, 131, 3)
    boxes, scores, labels, masks = exported.run(image)
    assert boxes.dtype == scores.dtype == torch.float32 and masks.dtype == torch.uint8
    (eager,) = tiny.predict(image)
    (result,) = exported.predict(image)
    assert len(result) == len(eager)
    torch.testing.assert_close(result.scores, eager.scores, atol=1e-2, rtol=0)
    assert (result.masks != eager.masks).float().mean() < 0.02


def test_writes_are_atomic(tiny, tmp_path, monkeypatch) -> None:
    target = tmp_path / "model.ts"
    target.write_bytes(b"previous export")

    def failing_replace(source, destination) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("pysalient.utils.atomic.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        tiny.export("torchscript", target)
    assert target.read_bytes() == b"previous export"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.ts"]


def test_bad_requests_fail_before_any_work(tiny, tmp_path, monkeypatch) -> None:
    def no_work(*args, **kwargs):
        raise AssertionError("the export started although the request is invalid")

    monkeypatch.setattr("pysalient.export.exporter.ExportContract", no_work)
    (tmp_path / "folder.ts").mkdir()
    cases = [
        (ValueError, "unknown export format 'tflite'", ("tflite", tmp_path / "m.tflite"), {}),
        (ValueError, r"torchscript exports are \.ts files", ("torchscript", tmp_path / "m.pt2"), {}),
        (ValueError, "is a directory", ("torchscript", tmp_path / "folder.ts"), {}),
        (TypeError, r"does not accept \['min_input_size'\]", ("torchscript", tmp_path / "m.ts"), {"min_input_size": 8}),
        (ValueError, r"conf must be a number in \[0, 1\]", ("ts", tmp_path / "m.ts"), {"conf": 1.5}),
        (ValueError, "imgsz must be a positive int", ("ts", tmp_path / "m.ts"), {"imgsz": 0}),
        (ValueError, "max_det must be a positive int", ("ts", tmp_path / "m.ts"), {"max_det": 0}),
    ]
    if not torch.cuda.is_available():
        cases.append((ValueError, "CUDA is not available", ("ts", tmp_path / "m.ts"), {"device": "cuda"}))
    for error, message, args, options in cases:
        with pytest.raises(error, match=message):
            tiny.export(*args, **options)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder.ts"]


def test_loading_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="exported model not found"):
        pysalient.load(tmp_path / "absent.ts")
    (tmp_path / "garbage.ts").write_bytes(b"not a torchscript archive")
    with pytest.raises(ValueError, match="cannot be loaded as a TorchScript archive"):
        pysalient.load(tmp_path / "garbage.ts")
    torch.jit.save(torch.jit.script(torch.nn.ReLU()), str(tmp_path / "plain.ts"))
    with pytest.raises(ValueError, match="not a pysalient export"):
        pysalient.load(tmp_path / "plain.ts")
    with pytest.raises(ValueError, match="pass neither"):
        pysalient.load(tmp_path / "plain.ts", weights="w.pth")
    with pytest.raises(ValueError, match="not an exported pysalient model"):
        ExportedModel(tmp_path / "model.tflite")


def test_operations_an_export_cannot_do_fail_with_one_clear_line(tiny_export, tmp_path) -> None:
    exported = pysalient.load(tiny_export)
    for operation, call in (
        ("export", lambda: exported.export("torchscript", tmp_path / "again.ts")),
        ("train", lambda: exported.train(data="train.json")),
        ("save", lambda: exported.save(tmp_path / "copy.pth")),
        ("move", lambda: exported.to("cpu")),
    ):
        with pytest.raises(ValueError, match=f"cannot {operation}: "):
            call()
