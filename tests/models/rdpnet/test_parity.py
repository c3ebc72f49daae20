"""RDPNet against the official code (``../shared/fixtures/RDPNET.md``): every stage of the R50 ISOD model on one image,
the module stress cases of the post-processing and the Masker, the resize table, and the public API end to end.

Bounds are those of RDPNET.md section 9 (headroom over the spread of the official code itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import torch

import pysalient
from pysalient import ops
from pysalient.detection.postprocess import FCOSPostProcessor
from pysalient.inputs import Preprocessor
from pysalient.models import get_family, get_model_entry
from pysalient.utils.resize import legacy_resized_hw, symbolic_legacy_resized_hw

FIXTURES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures"
MODEL_FIXTURE = FIXTURES / "rdpnet_r50_isod_official.pt"
MODULE_FIXTURE = FIXTURES / "rdpnet_modules_official.pt"
LEVELS = ("P3", "P4", "P5", "P6", "P7")

needs_model_fixture = pytest.mark.skipif(not MODEL_FIXTURE.exists(), reason=f"{MODEL_FIXTURE} not found")
needs_module_fixture = pytest.mark.skipif(not MODULE_FIXTURE.exists(), reason=f"{MODULE_FIXTURE} not found")


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.float() - b.float()).abs().max())


@pytest.fixture(scope="module")
def official() -> Dict[str, Any]:
    return torch.load(MODEL_FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def modules() -> Dict[str, Any]:
    return torch.load(MODULE_FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def stages(official: Dict[str, Any]) -> Dict[str, Any]:
    """Our network on the official weights, every intermediate result."""
    family = get_family("rdpnet")
    config = get_model_entry("rdpnet_r50").make_config()
    network = family.build(config).eval()
    checkpoint = {"model": {"module." + key: value for key, value in official["state_dict"].items()}}
    report = family.load_weights(network, checkpoint, True)
    assert report == {"missing_keys": [], "unexpected_keys": []}
    detector = family.build_detector(network, config, config.inference_spec())
    out: Dict[str, Any] = {"network": network, "detector": detector, "config": config}
    with torch.no_grad():
        out["pixels"], out["resized"] = Preprocessor(config.input_spec())(official["image_bgr"])
        out["body"] = network.backbone(official["input"])
        out["fpn"] = network.fpn(out["body"])
        out["rdp"] = network.pyramid(out["fpn"])
        out["head"] = network.head(out["rdp"])
        out["candidates"] = detector.postprocess.candidates(*out["head"], [out["resized"]])[0]
        boxes, scores, labels, _, _ = out["candidates"]
        out["keep"] = detector.postprocess.select(boxes, scores, labels)
        mask_head = network.mask_head
        out["reduced"] = mask_head.reduced(out["rdp"])
        subset = official["mask_head"]["subset_index"]
        rois = torch.cat([torch.zeros(len(subset), 1), official["detections"]["boxes"][subset]], dim=1)
        out["pooled"] = mask_head.pooled(out["reduced"], rois)
        out["decoder"] = mask_head.stages(out["pooled"])
        kept = boxes[out["keep"]]
        out["mask_logits"] = mask_head(out["rdp"], torch.cat([torch.zeros(len(kept), 1), kept], dim=1))
        out["final"] = detector(official["input"], [out["resized"]], [[300, 400]], torch.tensor(0.0))[0]
    return out


@needs_model_fixture
def test_preprocessing_is_bit_identical(official: Dict[str, Any], stages: Dict[str, Any]) -> None:
    assert stages["resized"] == [320, 426]
    assert torch.equal(stages["pixels"][None], official["input"])
    resized = ops.resize_image(official["image_bgr"].contiguous(), 320, 426)
    assert torch.equal(resized, official["resized_bgr"])


@needs_model_fixture
def test_backbone_fpn_and_rdp(official: Dict[str, Any], stages: Dict[str, Any]) -> None:
    for name, stage in (("C3", "res3"), ("C4", "res4"), ("C5", "res5")):
        assert max_diff(stages["body"][stage], official["backbone_body"][name]) <= 2e-4, name
    for index, level in enumerate(LEVELS):
        assert max_diff(stages["fpn"][index], official["fpn"][level]) <= 3e-4, level
        assert max_diff(stages["rdp"][index], official["rdp"][f"N{level[1]}"]) <= 6e-4, level


@needs_model_fixture
def test_fcos_head_and_locations(official: Dict[str, Any], stages: Dict[str, Any]) -> None:
    from pysalient.detection.locations import locations

    logits, distances, centerness = stages["head"]
    reference = official["fcos_head"]
    for index, level in enumerate(LEVELS):
        assert max_diff(logits[index], reference["cls_logits"][level]) <= 4e-4, level
        assert max_diff(centerness[index], reference["centerness"][level]) <= 4e-4, level
        relative = (distances[index] - reference["bbox_reg"][level]).abs() / reference["bbox_reg"][level].abs().clamp(
            min=1
        )
        assert float(relative.max()) <= 6e-5, level
    for index, points in enumerate(locations(logits, [8, 16, 32, 64, 128])):
        assert torch.equal(points, official["fcos_locations"][LEVELS[index]])


@needs_model_fixture
def test_candidates_nms_and_detections(official: Dict[str, Any], stages: Dict[str, Any]) -> None:
    boxes, scores, labels, levels, location_index = stages["candidates"]
    reference = official["pre_nms"]
    assert torch.equal(levels, reference["level"]) and torch.equal(location_index, reference["location_index"])
    assert torch.equal(labels + 1, reference["labels"])  # official labels are 1-based
    assert max_diff(boxes, reference["boxes"]) <= 6e-3 and max_diff(scores, reference["scores"]) <= 5e-5
    assert torch.equal(stages["keep"], official["nms_keep"])
    detections = official["detections"]
    assert max_diff(boxes[stages["keep"]], detections["boxes"]) <= 6e-3
    assert max_diff(scores[stages["keep"]], detections["scores"]) <= 5e-5


@needs_model_fixture
def test_mask_decoder_stages(official: Dict[str, Any], stages: Dict[str, Any]) -> None:
    reference = official["mask_head"]
    for index, level in enumerate(LEVELS):
        assert max_diff(stages["reduced"][index], reference["reduced"][level]) <= 2e-4, level
        assert max_diff(stages["pooled"][index], reference["pooled"][level]) <= 1e-3, level
    for name, value in reference["decoder_stages"].items():
        assert max_diff(stages["decoder"][name], value) <= 1e-3, name
    assert max_diff(stages["mask_logits"], reference["mask_logits"]) <= 3e-3
    assert max_diff(stages["mask_logits"][:, 1:2].sigmoid(), reference["mask_prob"]) <= 3e-3


def _by_score(official: Dict[str, Any]) -> torch.Tensor:
    return torch.sort(official["detections"]["scores"], descending=True, stable=True).indices


def _check_final(official: Dict[str, Any], boxes, scores, labels, masks) -> None:
    order = _by_score(official)  # the detector returns the official detections by decreasing score
    detections = official["detections"]
    assert len(scores) == 94 and torch.equal(labels, torch.zeros(94, dtype=torch.int64))
    assert max_diff(scores, detections["scores"][order]) <= 5e-5
    assert max_diff(boxes, detections["boxes_orig"][order]) <= 6e-3
    flipped = int((masks.bool() != official["masks"][order]).sum())
    assert flipped <= 1e-4 * official["masks"].numel(), flipped


@needs_model_fixture
def test_detector_reproduces_the_official_detections_and_masks(
    official: Dict[str, Any], stages: Dict[str, Any]
) -> None:
    _check_final(official, *stages["final"])


@needs_model_fixture
def test_public_api_reproduces_the_official_results(official: Dict[str, Any], tmp_path) -> None:
    path = tmp_path / "model_final.pth"
    torch.save({"model": {"module." + key: value for key, value in official["state_dict"].items()}}, path)
    model = pysalient.load("rdpnet_r50", weights=str(path), device="cpu")
    image = official["image_bgr"].numpy()  # an OpenCV-style BGR array
    (result,) = model.predict(image, conf=0.0, imgsz=320)
    assert result.image_size == (300, 400)
    _check_final(official, result.boxes, result.scores, result.labels, result.masks)
    # conf keeps the detections whose final score reaches it, nothing else changes.
    middle = float(result.scores[40])
    (high,) = model.predict(image, conf=middle, imgsz=320)
    assert torch.equal(high.scores, result.scores[result.scores >= middle])
    assert torch.equal(high.masks, result.masks[result.scores >= middle])


@needs_module_fixture
def test_fcos_postprocessing_stress_case(modules: Dict[str, Any]) -> None:
    case = modules["fcos_postproc"]
    inputs = case["inputs"]
    processor = FCOSPostProcessor([8, 16, 32, 64, 128], 0.05, 1000, 0.6, 100)
    per_level = [[inputs[name][level] for level in LEVELS] for name in ("cls_logits", "bbox_reg", "centerness")]
    boxes, scores, labels, levels, _ = processor.candidates(
        *per_level, [list(modules["config"]["fcos_postproc"]["image_hw"])]
    )[0]
    assert torch.bincount(levels, minlength=5).tolist() == case["per_level_counts"].tolist()

    def by_score(b: torch.Tensor, s: torch.Tensor):  # P3 went through top-k: compare as sets (unique scores)
        order = torch.sort(s, descending=True).indices
        return b[order], s[order]

    ours, theirs = by_score(boxes, scores), by_score(case["pre_nms"]["boxes"], case["pre_nms"]["scores"])
    assert max_diff(ours[0], theirs[0]) <= 1e-5 and max_diff(ours[1], theirs[1]) <= 1e-5
    keep = processor.select(boxes, scores, labels)
    assert len(keep) == 100  # 946 survive NMS, the kthvalue rule keeps 100
    ours = by_score(boxes[keep], scores[keep])
    theirs = by_score(case["detections"]["boxes"], case["detections"]["scores"])
    assert max_diff(ours[0], theirs[0]) <= 1e-5 and max_diff(ours[1], theirs[1]) <= 1e-5
    assert torch.equal(labels[keep] + 1, case["detections"]["labels"])


@needs_module_fixture
def test_masker_stress_case(modules: Dict[str, Any]) -> None:
    case = modules["masker"]
    height, width = case["image_hw"]
    masks = ops.paste_masks(case["mask_prob"][:, 0], case["boxes"], height, width, 0.5, legacy=True, padding=1)
    assert torch.equal(masks.bool(), case["masks"])


@needs_module_fixture
def test_resize_table(modules: Dict[str, Any]) -> None:
    scripted = torch.jit.script(legacy_resized_hw)
    for height, width, new_height, new_width in modules["resize_table"].tolist():
        for rule in (legacy_resized_hw, scripted, symbolic_legacy_resized_hw):
            assert rule(height, width, 320, 480) == (new_height, new_width), (rule, height, width)
