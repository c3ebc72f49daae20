"""Golden parity of SparseInst with the official hustvl/SparseInst code (``../shared/fixtures/README.md``).

Tolerances are the fixture README's section 5. Each fixture is run through the model once per module and device:
on CPU always, on CUDA (TF32 off, as the README asks) when a GPU is there (``tests/devices.py``).
"""

from __future__ import annotations

from typing import Any, Dict

import pytest
import torch

from pysalient.inputs import Preprocessor, pad_and_batch
from pysalient.models.sparseinst import (
    BaseIAMDecoder,
    InstanceContextEncoder,
    SparseInst,
    load_official_checkpoint,
    postprocess_single,
)
from tests.devices import require_cuda, tf32_disabled
from tests.fixtures import load_fixture, state_dict_with_prefix
from tests.models.sparseinst.fixtures import preset_config

GIAM_FIXTURE = "sparseinst_r50_giam_official.pt"
BASE_FIXTURE = "sparseinst_base_decoder_official.pt"


def max_abs_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape, f"{tuple(actual.shape)} != {tuple(expected.shape)}"
    return (actual.double() - expected.double()).abs().max().item()


def to_device(value: Any, device: str) -> Any:
    """Tensors (also inside dicts and lists) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(item, device) for item in value)
    return value


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def giam_run(request: pytest.FixtureRequest) -> Dict[str, Any]:
    """The fixture plus our R50-GIAM run on its ``batched_input`` (backbone, encoder and decoder outputs, on CPU)."""
    device = request.param
    if device == "cuda":
        require_cuda()
    fixture = load_fixture(GIAM_FIXTURE)
    model = SparseInst(preset_config("sparseinst_r50_giam", num_classes=80)).eval()
    report = load_official_checkpoint(model, fixture)
    model.to(device)
    with torch.no_grad(), tf32_disabled():
        backbone = model.backbone(fixture["batched_input"].to(device))
        encoder_output = model.encoder(backbone)
        decoder = model.decoder(encoder_output)
    return {
        "device": device,
        "fixture": fixture,
        "model": model,
        "report": report,
        "backbone": to_device(backbone, "cpu"),
        "encoder_output": encoder_output.cpu(),
        "decoder": to_device(decoder, "cpu"),
    }


def test_base_decoder_reproduces_the_official_heads(device: str) -> None:
    fixture = load_fixture(BASE_FIXTURE)
    encoder = InstanceContextEncoder([512, 1024, 2048]).eval().to(device)
    decoder = BaseIAMDecoder(256, num_classes=80).eval().to(device)
    encoder.load_state_dict(state_dict_with_prefix(fixture["state_dict"], "encoder."), strict=True)
    decoder.load_state_dict(state_dict_with_prefix(fixture["state_dict"], "decoder."), strict=True)
    with torch.no_grad(), tf32_disabled():
        encoder_output = encoder(to_device(fixture["features"], device)).cpu()
        outputs = to_device(decoder(encoder_output.to(device)), "cpu")
    assert max_abs_diff(encoder_output, fixture["encoder_output"]) <= 2e-4
    assert set(outputs) == {"pred_logits", "pred_masks", "pred_scores"}
    for name, expected in fixture["decoder"].items():
        assert max_abs_diff(outputs[name], expected) <= 1e-4, name


def test_official_checkpoint_loads_without_renaming(giam_run: Dict[str, Any]) -> None:
    report = giam_run["report"]
    assert not report.missing_keys and not report.unexpected_keys
    assert report.dtypes == {"float16": 317}
    state = giam_run["model"].state_dict()
    assert len(state) == 317
    # Loading float16 weights into float32 parameters is exact (the fixture's premise).
    stored = giam_run["fixture"]["state_dict"]["decoder.inst_branch.fc.weight"]
    assert torch.equal(state["decoder.inst_branch.fc.weight"].cpu(), stored.float())


def test_r50_giam_reproduces_every_official_stage(giam_run: Dict[str, Any]) -> None:
    fixture = giam_run["fixture"]
    for name in ("res4", "res5"):
        assert max_abs_diff(giam_run["backbone"][name], fixture["backbone"][name]) <= 2e-4, name
    assert max_abs_diff(giam_run["encoder_output"], fixture["encoder_output"]) <= 2e-4
    for name, expected in fixture["decoder"].items():
        assert max_abs_diff(giam_run["decoder"][name], expected) <= 1e-4, name


def test_full_forward_equals_the_staged_run(giam_run: Dict[str, Any]) -> None:
    # SparseInst.forward is backbone -> encoder -> decoder; check it on a cheap crop of the input instead of
    # a second full-size R50 run.
    model, batch = giam_run["model"], giam_run["fixture"]["batched_input"][:, :, :64, :96].to(giam_run["device"])
    with torch.no_grad(), tf32_disabled():
        staged = model.decoder(model.encoder(model.backbone(batch)))
        outputs = model(batch)
    for name in staged:
        torch.testing.assert_close(outputs[name], staged[name], atol=0, rtol=0)


def test_preprocessing_reproduces_the_official_resize_and_normalisation() -> None:
    fixture = load_fixture(GIAM_FIXTURE)
    spec = preset_config("sparseinst_r50_giam", num_classes=80).input_spec()
    bgr = fixture["image_rgb"].flip(-1).contiguous()  # the pipeline takes OpenCV's BGR images
    padded, size = Preprocessor(spec)(bgr)
    assert size == [320, 427] and tuple(padded.shape) == tuple(fixture["batched_input"].shape[1:])
    # Undo the normalisation exactly: the resized pixels must be Pillow's, bit for bit.
    mean = torch.tensor(spec.pixel_mean).reshape(3, 1, 1)
    std = torch.tensor(spec.pixel_std).reshape(3, 1, 1)
    pixels = torch.round(padded[:, :320, :427] * std + mean).to(torch.uint8).permute(1, 2, 0)
    assert torch.equal(pixels, fixture["resized_rgb"])
    assert max_abs_diff(padded.unsqueeze(0), fixture["batched_input"]) <= 1e-6
    batch, sizes = pad_and_batch([padded[:, :320, :427]], spec.size_divisibility)
    assert sizes == [(320, 427)] and torch.equal(batch, padded.unsqueeze(0))


def official_instances(giam_run: Dict[str, Any], sort: bool, max_det: int) -> Dict[str, torch.Tensor]:
    fixture, decoder = giam_run["fixture"], to_device(giam_run["decoder"], giam_run["device"])
    boxes, scores, labels, masks = postprocess_single(
        decoder["pred_logits"][0],
        decoder["pred_masks"][0],
        decoder["pred_scores"][0],
        padded_hw=list(fixture["batched_input"].shape[-2:]),
        image_hw=[320, 427],
        output_hw=list(fixture["image_rgb"].shape[:2]),
        conf=torch.tensor(0.0),  # evaluation: every candidate (the official code has no final threshold)
        candidate_threshold=0.005,
        mask_threshold=0.45,
        max_det=max_det,
        sort=sort,
    )
    instances = {"boxes": boxes, "scores": scores, "labels": labels, "masks": masks.bool()}
    return to_device(instances, "cpu")


def assert_instances_match(ours: Dict[str, torch.Tensor], scores, classes, masks) -> None:  # noqa: ANN001
    assert ours["scores"].shape[0] == scores.shape[0] == 100
    assert torch.equal(ours["labels"], classes)
    assert max_abs_diff(ours["scores"], scores) <= 1e-5
    assert ours["masks"].dtype == torch.bool and ours["masks"].shape == masks.shape
    flipped = (ours["masks"] != masks).sum().item()
    assert flipped <= 1e-4 * masks.numel(), f"{flipped} mask pixels differ"


def test_postprocessing_reproduces_the_official_instances(giam_run: Dict[str, Any]) -> None:
    expected = giam_run["fixture"]["instances"]
    # The official order and count (no sorting, no cap) ...
    ours = official_instances(giam_run, sort=False, max_det=-1)
    assert_instances_match(ours, expected["scores"], expected["pred_classes"], expected["pred_masks"])
    # ... and our API's: sorted by score. Sort the fixture the same way (stable, so ties keep query order).
    order = torch.sort(expected["scores"], descending=True, stable=True).indices
    ours = official_instances(giam_run, sort=True, max_det=100)
    assert_instances_match(
        ours, expected["scores"][order], expected["pred_classes"][order], expected["pred_masks"][order]
    )
    # Boxes are the tight boxes of the masks, (x_min, y_min, x_max + 1, y_max + 1) as detectron2's BitMasks.
    assert torch.equal(ours["boxes"], tight_boxes(ours["masks"]))
    assert (ours["boxes"] - tight_boxes(expected["pred_masks"][order])).abs().max() <= 1
    capped = official_instances(giam_run, sort=True, max_det=10)
    assert torch.equal(capped["scores"], ours["scores"][:10])


def tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """[N, H, W] bool -> [N, 4] float (x_min, y_min, x_max + 1, y_max + 1), computed pixel list by pixel list."""
    boxes = torch.zeros(masks.shape[0], 4)
    for index, mask in enumerate(masks):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(ys):
            boxes[index] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    return boxes
