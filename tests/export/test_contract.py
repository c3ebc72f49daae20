"""The shared export contract: the in-graph resize rules, the eager contract module, metadata checks."""

from __future__ import annotations

import pytest
import torch

from pysalient.export.contract import ExportContract, check_metadata
from pysalient.export.formats import FORMATS, check_request, format_of_path, resolve_format
from pysalient.inputs import InputSpec, Preprocessor, pad_and_batch
from pysalient.utils.resize import rational_resized_hw, resized_hw, tensor_resized_hw
from tests.export.helpers import random_image, sized_confident_model

# (height, width, min_size, max_size): x.5 ties where float and exact arithmetic round differently (1, 2, 4),
# the cap, squares, tiny and extreme shapes, and min_size above max_size (the cap wins, as in eager predict).
TRICKY = [(147, 294, 640, 853), (93, 256, 64, 128), (384, 387, 320, 853), (569, 1706, 320, 853), (64, 64, 64, 128)]
TRICKY += [(2, 2, 320, 853), (1, 7, 64, 96), (5000, 3, 320, 853), (300, 400, 1000, 853), (97, 131, 320, 853)]


def test_tensor_rule_equals_resized_hw_bit_for_bit() -> None:
    # resized_hw is the one rule of eager predict and of TorchScript exports (scripted into the graph);
    # tensor_resized_hw is the branch-free copy torch.export needs with dynamic sizes.
    scripted = torch.jit.script(resized_hw)
    cases = list(TRICKY)
    for min_size, max_size in ((64, 128), (320, 853)):
        cases += [(height, width, min_size, max_size) for height in range(2, 300, 7) for width in range(3, 600, 31)]
    ties = 0
    for height, width, min_size, max_size in cases:
        expected = resized_hw(height, width, min_size, max_size)
        assert tensor_resized_hw(height, width, min_size, max_size) == expected, (height, width, min_size)
        assert scripted(height, width, min_size, max_size) == expected
        # The exact rule bounds the float one from above by at most one pixel (x.5 ties only).
        exact = rational_resized_hw(height, width, min_size, max_size)
        assert all(0 <= bound - size <= 1 for bound, size in zip(exact, expected)), (height, width, min_size)
        ties += exact != expected
    assert resized_hw(147, 294, 640, 853) == (426, 853) and rational_resized_hw(147, 294, 640, 853) == (427, 853)
    assert ties == 3  # the three tie cases of TRICKY, nothing else in the grid
    for rule in (resized_hw, scripted):
        with pytest.raises((ValueError, torch.jit.Error), match="cannot resize an empty 0x5 image"):
            rule(0, 5, 64, 128)


def contract_of(model, imgsz=None, conf=None, max_det=None) -> ExportContract:  # noqa: ANN001
    """The eager contract module of ``model`` (what the exporter scripts or exports)."""
    input_spec = model.config.input_spec().replace(min_size=imgsz)
    inference = model.config.inference_spec().replace(score_threshold=conf, max_det=max_det)
    detector = model.family.build_detector(model.network, model.config, inference)
    return ExportContract(Preprocessor(input_spec), detector, inference.score_threshold).eval()


def test_contract_module_in_eager_mode_matches_predict() -> None:
    model = sized_confident_model(64, 128)
    contract = contract_of(model)
    for index, (height, width) in enumerate([(97, 131), (250, 83), (64, 64)]):
        image = random_image(height, width, index)
        (eager,) = model.predict(image)
        with torch.no_grad():
            boxes, scores, labels, masks = contract(torch.from_numpy(image))
        assert len(scores) > 0 and masks.dtype == torch.uint8 and masks.shape[1:] == (height, width)
        assert torch.equal(masks.bool(), eager.masks) and torch.equal(scores, eager.scores)
        assert torch.equal(boxes, eager.boxes) and torch.equal(labels, eager.labels)
    with torch.no_grad(), pytest.raises(RuntimeError, match="expected 3 \\(BGR\\) channels"):
        contract(torch.zeros(32, 32, 4, dtype=torch.uint8))


def test_conf_is_a_run_time_input_applied_to_the_final_score() -> None:
    model = sized_confident_model(64, 128)
    contract = contract_of(model, conf=0.0)
    image = random_image(70, 90, 3)
    with torch.no_grad():
        _, every, _, _ = contract(torch.from_numpy(image))
    threshold = float(every[len(every) // 2])
    with torch.no_grad():
        boxes, scores, labels, masks = contract(torch.from_numpy(image), torch.tensor(threshold))
    # exactly the instances scoring at least conf, in the same order: conf filters the final scores, last.
    assert torch.equal(scores, every[every >= threshold]) and len(scores) < len(every)
    (eager,) = model.predict(image, conf=threshold)
    assert torch.equal(scores, eager.scores) and torch.equal(masks.bool(), eager.masks)
    assert float(eager.scores.min()) >= threshold


def test_export_options_reach_the_graph() -> None:
    model = sized_confident_model(64, 128)
    contract = contract_of(model, imgsz=96, conf=0.5, max_det=7)
    assert contract.preprocessor.min_size == 96 and contract.preprocessor.max_size == 128
    assert float(contract.default_conf) == 0.5 and contract.detector.max_det == 7
    image = random_image(70, 90, 3)
    with torch.no_grad():
        _, scores, _, _ = contract(torch.from_numpy(image))
    (eager,) = model.predict(image, conf=0.5, imgsz=96, max_det=7)
    assert len(scores) == 7 and torch.equal(scores, eager.scores)


def test_fixed_resize_mode_ignores_the_aspect_ratio() -> None:
    spec = InputSpec(resize="fixed", min_size=40, size_divisibility=32, channel_order="BGR")
    preprocessor = Preprocessor(spec)
    image = torch.from_numpy(random_image(30, 90, 1))
    pixels, resized = preprocessor(image)
    assert resized == [40, 40] and tuple(pixels.shape) == (3, 64, 64)
    assert spec.resized_hw(30, 90) == (40, 40) and spec.padded_hw(40, 40) == (64, 64)
    assert torch.all(pixels[:, 40:] == 0) and torch.all(pixels[:, :, 40:] == 0)
    scripted = torch.jit.script(preprocessor)
    scripted_pixels, scripted_size = scripted(image)
    assert scripted_size == [40, 40] and torch.equal(scripted_pixels, pixels)


def test_preprocessor_is_the_same_module_scripted_and_eager() -> None:
    for height, width, min_size, max_size in TRICKY[:6]:
        preprocessor = Preprocessor(InputSpec(min_size=min_size, max_size=max_size, size_divisibility=32))
        scripted = torch.jit.script(preprocessor)
        image = torch.from_numpy(random_image(height, width, height))
        out_h, out_w = resized_hw(height, width, min_size, max_size)
        expected = (out_h, out_w, -(-out_h // 32) * 32, -(-out_w // 32) * 32)
        assert preprocessor.sizes(height, width) == scripted.sizes(height, width) == expected
        (pixels, size), (eager_pixels, eager_size) = scripted(image), preprocessor(image)
        assert size == eager_size == [out_h, out_w] and torch.equal(pixels, eager_pixels)
        assert tuple(pixels.shape) == (3, expected[2], expected[3])


# maskrcnn-benchmark's rule at 320/480 (rdpnet_modules_official.pt["resize_table"] rows): a truncated long side,
# a half-to-even tie (97x960 -> 48.5 -> 48), an unchanged short side, the cap.
LEGACY_TABLE = [(300, 400, 320, 426), (97, 960, 48, 475), (960, 97, 475, 48), (319, 481, 318, 479)]
LEGACY_TABLE += [(320, 480, 320, 480), (321, 321, 320, 320), (100, 1000, 48, 480), (257, 383, 320, 476)]


def test_legacy_resize_mode_scripted_eager_and_exported() -> None:
    spec = InputSpec(resize="shortest_edge_legacy", min_size=320, max_size=480, channel_order="BGR")
    preprocessor = Preprocessor(spec)
    scripted = torch.jit.script(preprocessor)
    images = {(h, w): torch.from_numpy(random_image(h, w, h + w)) for h, w, _, _ in LEGACY_TABLE}
    eager = {key: preprocessor(image) for key, image in images.items()}
    for height, width, new_height, new_width in LEGACY_TABLE:
        assert spec.resized_hw(height, width) == (new_height, new_width)
        pixels, size = eager[(height, width)]
        assert size == [new_height, new_width]
        assert tuple(pixels.shape) == (3, -(-new_height // 32) * 32, -(-new_width // 32) * 32)
        scripted_pixels, scripted_size = scripted(images[(height, width)])
        assert scripted_size == size and torch.equal(scripted_pixels, pixels)
    # torch.export with dynamic H and W: the padded size is an exact symbolic expression and the resized size the
    # same integer made data-dependent, so one program reproduces every case, the half-to-even tie included.
    dims = {"image": {0: torch.export.Dim("height", min=2, max=2048), 1: torch.export.Dim("width", min=2, max=2048)}}
    program = torch.export.export(preprocessor, (images[(300, 400)],), dynamic_shapes=dims, strict=False).module()
    for key, image in images.items():
        pixels, size = program(image)
        assert [int(value) for value in size] == eager[key][1] and torch.equal(pixels, eager[key][0]), key


FLOOR_SIZES = [(64, 96), (2, 300), (300, 2), (97, 131), (400, 900), (2, 2)]


@pytest.mark.parametrize("resize", ["shortest_edge", "shortest_edge_legacy", "fixed"])
def test_min_padded_size_floors_the_padding_scripted_eager_and_exported(resize: str) -> None:
    spec = InputSpec(resize=resize, min_size=64, max_size=128, size_divisibility=32, min_padded_size=96)
    preprocessor = Preprocessor(spec)
    scripted = torch.jit.script(preprocessor)
    images = [torch.from_numpy(random_image(h, w, h * w)) for h, w in FLOOR_SIZES]
    dims = {"image": {0: torch.export.Dim("height", min=2, max=2048), 1: torch.export.Dim("width", min=2, max=2048)}}
    program = torch.export.export(preprocessor, (images[0],), dynamic_shapes=dims, strict=False).module()
    for (height, width), image in zip(FLOOR_SIZES, images):
        out_h, out_w = spec.resized_hw(height, width)
        padded_h, padded_w = max(-(-out_h // 32) * 32, 96), max(-(-out_w // 32) * 32, 96)
        assert spec.padded_hw(out_h, out_w) == (padded_h, padded_w)
        assert preprocessor.sizes(height, width) == scripted.sizes(height, width) == (out_h, out_w, padded_h, padded_w)
        pixels, size = preprocessor(image)
        assert size == [out_h, out_w] and tuple(pixels.shape) == (3, padded_h, padded_w)
        assert torch.all(pixels[:, out_h:] == 0) and torch.all(pixels[:, :, out_w:] == 0)
        scripted_pixels, scripted_size = scripted(image)
        assert scripted_size == size and torch.equal(scripted_pixels, pixels)
        exported_pixels, exported_size = program(image)
        assert [int(v) for v in exported_size] == size and torch.equal(exported_pixels, pixels), (height, width)
    batch, sizes = pad_and_batch([torch.ones(3, 10, 40), torch.ones(3, 33, 20)], 32, min_padded_size=96)
    assert tuple(batch.shape) == (2, 3, 96, 96) and sizes == [(10, 40), (33, 20)]
    assert batch[0, :, :10, :40].eq(1).all() and batch[0].sum() == 3 * 10 * 40


@pytest.mark.parametrize("floor", [-32, 48, 1.5, True])
def test_min_padded_size_is_validated(floor) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="min_padded_size"):
        InputSpec(size_divisibility=32, min_padded_size=floor)


def test_family_input_specs_floor_the_coarsest_map() -> None:
    from pysalient.models.registry import get_model_entry

    assert get_model_entry("rdpnet_r50").make_config().input_spec().min_padded_size == 160
    assert get_model_entry("sparseinst_r50_giam").make_config().input_spec().min_padded_size == 64


@pytest.mark.parametrize("conf", [-0.1, 1.5, float("nan"), "0.3", True])
def test_out_of_range_conf_is_rejected_everywhere(conf, tmp_path) -> None:  # noqa: ANN001
    model = sized_confident_model(64, 128)
    image = random_image(40, 40, 0)
    with pytest.raises(ValueError, match="conf must be a number in \\[0, 1\\]"):
        model.predict(image, conf=conf)
    with pytest.raises(ValueError, match="conf must be a number in \\[0, 1\\]"):
        check_request("torchscript", tmp_path / "m.ts", None, False, torch.device("cpu"), {"conf": conf})
    if isinstance(conf, float):
        scripted = torch.jit.script(contract_of(model))
        with pytest.raises(torch.jit.Error, match="conf must lie in \\[0, 1\\]"):
            scripted(torch.from_numpy(image), torch.tensor(conf))


def test_format_table_and_metadata_checks() -> None:
    assert {name: spec.suffix for name, spec in FORMATS.items()} == {
        "torchscript": ".ts",
        "aoti": ".pt2",
        "onnx": ".onnx",
    }
    assert resolve_format("TS") is FORMATS["torchscript"] and resolve_format("pt2") is FORMATS["aoti"]
    assert format_of_path("a/b.PT2") is FORMATS["aoti"]
    with pytest.raises(ValueError, match="lacks the keys"):
        check_metadata({"format": "torchscript"}, "x.ts")
    with pytest.raises(ValueError, match="newer than this pysalient"):
        check_metadata({"format_version": 99}, "x.ts")
    with pytest.raises(ValueError, match="not a JSON object"):
        check_metadata([1], "x.ts")
