"""The shared export contract: the in-graph resize rules, the eager contract module, metadata checks."""

from __future__ import annotations

import pytest
import torch

from pysalient.export.contract import ExportContract, check_metadata, rational_resized_hw, tensor_resized_hw
from pysalient.export.families import export_builder
from pysalient.export.formats import FORMATS, format_of_path, resolve_format
from pysalient.models.sparseinst.preprocess import resized_hw
from tests.export.helpers import confident_tiny_model, random_image

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


def test_contract_module_in_eager_mode_matches_predict() -> None:
    model = confident_tiny_model(min_size_test=64, max_size_test=128)
    pieces = export_builder("sparseinst")(model.network, model.config)
    contract = ExportContract(pieces).eval()
    for index, (height, width) in enumerate([(97, 131), (250, 83), (64, 64)]):
        image = random_image(height, width, index)
        (eager,) = model.predict(image)
        with torch.no_grad():
            boxes, scores, labels, masks = contract(torch.from_numpy(image))
        assert masks.dtype == torch.uint8 and masks.shape[1:] == (height, width)
        assert torch.equal(masks.bool(), eager.masks) and torch.equal(scores, eager.scores)
        assert torch.equal(boxes, eager.boxes) and torch.equal(labels, eager.labels)
    with torch.no_grad(), pytest.raises(RuntimeError, match="expected 3 \\(BGR\\) channels"):
        contract(torch.zeros(32, 32, 4, dtype=torch.uint8))


def test_export_options_of_the_family_builder() -> None:
    model = confident_tiny_model(min_size_test=64, max_size_test=128)
    pieces = export_builder("sparseinst")(model.network, model.config, imgsz=96, conf=0.5, max_det=7)
    assert (pieces.min_size, pieces.max_size, pieces.conf, pieces.max_det) == (96, 128, 0.5, 7)
    assert pieces.channel_order == "RGB" and pieces.size_divisibility == 32
    contract = ExportContract(pieces).eval()
    image = random_image(70, 90, 3)
    with torch.no_grad():
        _, scores, _, _ = contract(torch.from_numpy(image))
    (eager,) = model.predict(image, conf=0.5, imgsz=96, max_det=7)
    assert len(scores) == 7 and torch.equal(scores, eager.scores)
    with pytest.raises(ValueError, match="no export support yet"):
        export_builder("maskrcnn")


def test_format_table_and_metadata_checks() -> None:
    assert {name: spec.suffix for name, spec in FORMATS.items()} == {"torchscript": ".ts", "aoti": ".pt2"}
    assert resolve_format("TS") is FORMATS["torchscript"] and resolve_format("pt2") is FORMATS["aoti"]
    assert format_of_path("a/b.PT2") is FORMATS["aoti"]
    with pytest.raises(ValueError, match="lacks the keys"):
        check_metadata({"format": "torchscript"}, "x.ts")
    with pytest.raises(ValueError, match="newer than this pysalient"):
        check_metadata({"format_version": 99}, "x.ts")
    with pytest.raises(ValueError, match="not a JSON object"):
        check_metadata([1], "x.ts")
