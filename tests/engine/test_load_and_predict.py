"""pysalient.load and SalientModel.predict: names, checkpoints, official weights, sources, batching."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import pysalient
from pysalient.engine.checkpoint import atomic_torch_save
from pysalient.models.sparseinst import build_sparseinst
from tests.fixtures import load_fixture
from tests.models.sparseinst.fixtures import preset_config


def small_model(num_classes: int = 1) -> pysalient.engine.model.SalientModel:
    with pytest.warns(UserWarning, match="randomly initialised"):
        model = pysalient.load("sparseinst_mbv2_tiny", device="cpu", num_classes=num_classes)
    # Make the random model confident everywhere so predictions are non-empty and masks non-trivial.
    torch.nn.init.constant_(model.network.decoder.inst_branch.cls_score.bias, 5.0)
    torch.nn.init.constant_(model.network.decoder.inst_branch.objectness.bias, 5.0)
    return model


def random_image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_registry_names_and_family_default() -> None:
    names = pysalient.list_models()
    assert {"sparseinst_r50_giam", "sparseinst_r50_base", "sparseinst_mbv2_tiny"} <= set(names)
    model = small_model()
    assert model.name == "sparseinst_mbv2_tiny" and model.names == {0: "salient"}
    with pytest.raises(ValueError, match="unknown model 'maskrcnn'"):
        pysalient.load("maskrcnn")


def test_predict_returns_results_at_the_original_size() -> None:
    model = small_model()
    image = random_image(75, 130, 0)
    (result,) = model.predict(image, conf=0.1, imgsz=64)
    assert result.masks.shape[1:] == (75, 130) and result.masks.dtype == torch.bool
    assert len(result) > 0 and torch.all(result.scores[:-1] >= result.scores[1:])
    assert torch.all(result.scores > 0.1) and len(result) <= model.config.max_det
    nonempty = result.masks.flatten(1).any(dim=1)
    assert torch.equal(result.boxes[nonempty], pysalient.structures.masks_to_boxes(result.masks[nonempty]))
    assert result.orig_img is image


def test_batched_prediction_is_one_forward_and_matches_single_images() -> None:
    model = small_model()
    calls = []
    model.network.register_forward_hook(lambda module, inputs, outputs: calls.append(tuple(inputs[0].shape)))
    # Different sizes that resize (shortest side 64) and pad to the same 64x96 input: batching must not change
    # anything. (Images padded to different sizes legitimately differ: the pyramid pooling sees the padding.)
    images = [random_image(64, 96, 1), random_image(60, 88, 2), random_image(100, 140, 3)]
    single = [model.predict(image, conf=0.1, imgsz=64)[0] for image in images]
    calls.clear()
    batched = model.predict(images, conf=0.1, imgsz=64, batch=3)
    assert calls == [(3, 3, 64, 96)]
    for one, many in zip(single, batched):
        assert torch.equal(one.masks, many.masks)
        torch.testing.assert_close(many.scores, one.scores, atol=1e-6, rtol=0)
    calls.clear()
    mixed = model.predict([random_image(64, 96, 4), random_image(120, 50, 5)], conf=0.1, imgsz=64, batch=2)
    # Images of different padded sizes run apart (each sees the padding it would see alone).
    assert [result.image_size for result in mixed] == [(64, 96), (120, 50)]
    assert calls == [(1, 3, 64, 96), (1, 3, 160, 64)]


def test_results_do_not_depend_on_batch_for_images_of_mixed_sizes() -> None:
    model = small_model()
    sizes = [(64, 96), (120, 50), (60, 88), (75, 75), (100, 140), (33, 200), (64, 64)]
    images = [random_image(height, width, 10 + index) for index, (height, width) in enumerate(sizes)]
    reference = model.predict(images, conf=0.0, imgsz=64, batch=1)
    for batch in (2, 4, 7):
        for one, many in zip(reference, model.predict(images, conf=0.0, imgsz=64, batch=batch)):
            assert len(one) == len(many) > 0
            torch.testing.assert_close(many.scores, one.scores, atol=1e-5, rtol=0)
            assert (many.masks != one.masks).float().mean() <= 1e-4


def test_stream_and_every_source_type(tmp_path) -> None:
    model = small_model()
    image = random_image(40, 60, 4)
    cv2.imwrite(str(tmp_path / "x.png"), image)
    stream = model.predict(tmp_path, conf=0.1, imgsz=64, stream=True)
    assert not isinstance(stream, list)
    (from_file,) = list(stream)
    from_tensor = model.predict(torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1), conf=0.1, imgsz=64)[0]
    from_array = model.predict(image, conf=0.1, imgsz=64)[0]
    for other in (from_tensor, from_array):
        assert torch.equal(other.masks, from_file.masks) and torch.equal(other.scores, from_file.scores)
    assert from_file.path.endswith("x.png")


def test_tiny_and_grayscale_images_are_handled() -> None:
    model = small_model()
    (tiny,) = model.predict(random_image(1, 1, 5), conf=0.1, imgsz=64)
    assert tiny.masks.shape[1:] == (1, 1)
    (gray,) = model.predict(random_image(30, 40, 6)[:, :, 0], conf=0.1, imgsz=64)
    assert gray.masks.shape[1:] == (30, 40)
    with pytest.raises(ValueError, match="batch must be a positive int"):
        model.predict(random_image(8, 8, 7), batch=0)
    for name, value in (("imgsz", 0), ("max_det", -1), ("batch", 1.5)):
        with pytest.raises(ValueError, match=f"{name} must be a positive int"):
            model.predict(random_image(8, 8, 7), **{name: value})


def test_save_and_load_round_trip(tmp_path) -> None:
    model = small_model(num_classes=3)
    path = model.save(tmp_path / "model.pth")
    loaded = pysalient.load(path, device="cpu")
    assert loaded.names == {0: "class_0", 1: "class_1", 2: "class_2"} and loaded.name == model.name
    image = random_image(50, 50, 8)
    first, second = model.predict(image, conf=0.05, imgsz=64)[0], loaded.predict(image, conf=0.05, imgsz=64)[0]
    assert torch.equal(first.masks, second.masks) and torch.equal(first.scores, second.scores)
    with pytest.raises(ValueError, match="predicts 3 classes, not num_classes=1"):
        pysalient.load(path, num_classes=1)


def test_official_checkpoint_loads_with_class_count_and_reports_problems(tmp_path) -> None:
    config = preset_config("sparseinst_mbv2_tiny", num_classes=80)
    state = build_sparseinst(config).state_dict()
    official = tmp_path / "official.pth"
    atomic_torch_save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 10}, official)
    model = pysalient.load("sparseinst_mbv2_tiny", weights=official, device="cpu")
    assert len(model.names) == 80 and model.names[0] == "person"
    with pytest.raises(ValueError, match="predicts 80 classes, not num_classes=1"):
        pysalient.load("sparseinst_mbv2_tiny", weights=official, num_classes=1)
    broken = dict(state)
    broken.pop("encoder.fusion.weight")
    broken["decoder.extra.weight"] = torch.zeros(1)
    atomic_torch_save(broken, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"missing keys \[encoder.fusion.weight\].*unexpected keys \[decoder.extra"):
        pysalient.load("sparseinst_mbv2_tiny", weights=tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="not a pysalient checkpoint"):
        pysalient.load(official)


def test_checkpoint_of_another_family_or_garbage_is_rejected(tmp_path) -> None:
    atomic_torch_save({"backbone.stem.conv1.weight": torch.zeros(1)}, tmp_path / "backbone_only.pth")
    with pytest.raises(ValueError, match="not a SparseInst checkpoint"):
        pysalient.load("sparseinst_r50_giam", weights=tmp_path / "backbone_only.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        pysalient.load("sparseinst_r50_giam", weights=tmp_path / "garbage.pth")
    with pytest.raises(FileNotFoundError):
        pysalient.load("sparseinst_r50_giam", weights=tmp_path / "absent.pth")


def test_official_r50_giam_weights_predict_like_the_official_pipeline(tmp_path) -> None:
    fixture = load_fixture("sparseinst_r50_giam_official.pt")
    official = tmp_path / "sparse_inst_r50_giam_fixture.pth"
    atomic_torch_save({"model": fixture["state_dict"]}, official)
    model = pysalient.load("sparseinst_r50_giam", weights=official, device="cpu")
    bgr = np.ascontiguousarray(fixture["image_rgb"].numpy()[:, :, ::-1])
    (result,) = model.predict(bgr, conf=0.0, max_det=100)  # the official pipeline has no final threshold
    expected = fixture["instances"]
    order = torch.sort(expected["scores"], descending=True, stable=True).indices
    assert len(result) == 100
    assert torch.equal(result.labels, expected["pred_classes"][order])
    torch.testing.assert_close(result.scores, expected["scores"][order], atol=1e-5, rtol=0)
    assert (result.masks != expected["pred_masks"][order]).float().mean() <= 1e-4


def _packaged_checkpoint(name: str) -> dict:
    from pysalient.engine.checkpoint import read_checkpoint
    from pysalient.engine.loader import PACKAGE_DIR
    from pysalient.models import get_model_entry

    return dict(read_checkpoint(PACKAGE_DIR / get_model_entry(name).weights.url))


def test_a_checkpoint_of_another_architecture_under_a_registry_name_raises(tmp_path) -> None:
    checkpoint = _packaged_checkpoint("sparseinst_r18_light")
    atomic_torch_save(checkpoint, tmp_path / "r18.pth")
    expected = r"r18\.pth is not a sparseinst_mbv2_tiny checkpoint: its architecture differs in backbone='resnet18'"
    with pytest.raises(ValueError, match=expected):
        pysalient.load("sparseinst_mbv2_tiny", weights=tmp_path / "r18.pth", device="cpu")
    with pytest.raises(ValueError, match="is a rdpnet checkpoint|not sparseinst"):
        atomic_torch_save(_packaged_checkpoint("rdpnet_r18_light"), tmp_path / "rdp.pth")
        pysalient.load("sparseinst_r18_light", weights=tmp_path / "rdp.pth", device="cpu")
    same = pysalient.load("sparseinst_r18_light", weights=tmp_path / "r18.pth", device="cpu")  # agrees: loads
    assert same.name == "sparseinst_r18_light"


def test_a_checkpoint_with_nan_weights_raises_naming_the_tensor(tmp_path) -> None:
    checkpoint = _packaged_checkpoint("sparseinst_r18_light")
    state = dict(checkpoint["state_dict"])
    key = next(key for key, value in state.items() if value.is_floating_point() and value.numel() > 4)
    state[key] = state[key].clone()
    state[key].view(-1)[:3] = float("nan")
    checkpoint["state_dict"] = state
    atomic_torch_save(checkpoint, tmp_path / "diverged.pth")
    with pytest.raises(ValueError, match=rf"diverged\.pth: the weights hold NaN or infinite values \(3 in {key}\)"):
        pysalient.load(tmp_path / "diverged.pth", device="cpu")


def test_a_checkpoint_without_weights_names_what_is_missing(tmp_path) -> None:
    model = pysalient.load("sparseinst")
    path = model.save(tmp_path / "model.pth")
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["state_dict"]
    torch.save(checkpoint, tmp_path / "no_weights.pth")
    with pytest.raises(ValueError, match="no_weights.pth: a pysalient checkpoint without 'state_dict'"):
        pysalient.load(str(tmp_path / "no_weights.pth"))
