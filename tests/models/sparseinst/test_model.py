"""SparseInst presets (build, batched forward, TorchScript), config round trips and checkpoint conversion."""

from __future__ import annotations

import json
from typing import Dict

import pytest
import torch

from pysalient.inputs import pad_and_batch
from pysalient.models.sparseinst import (
    SparseInst,
    SparseInstConfig,
    convert_official_checkpoint,
    load_official_checkpoint,
)
from tests.models.sparseinst.fixtures import PRESETS, preset_config


@pytest.fixture(scope="module")
def two_images() -> torch.Tensor:
    """Two normalised images of different sizes, zero-padded into one [2, 3, 64, 64] batch."""
    generator = torch.Generator().manual_seed(0)
    images = [torch.randn(3, 40, 64, generator=generator), torch.randn(3, 64, 33, generator=generator)]
    batch, sizes = pad_and_batch(images, 32)
    assert sizes == [(40, 64), (64, 33)] and batch.shape == (2, 3, 64, 64)
    return batch


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_forward_shapes_and_torchscript(name: str, two_images: torch.Tensor) -> None:
    torch.manual_seed(0)
    config = preset_config(name, num_classes=3)
    model = SparseInst(config).eval()
    with torch.no_grad():
        outputs = model(two_images)
    queries = config.num_queries
    assert outputs["pred_logits"].shape == (2, queries, 3)
    assert outputs["pred_masks"].shape == (2, queries, 16, 16)
    assert outputs["pred_scores"].shape == (2, queries, 1)
    assert all(torch.isfinite(value).all() for value in outputs.values())
    scripted = torch.jit.script(model)
    with torch.no_grad():
        scripted_outputs = scripted(two_images)
    for key, value in outputs.items():
        torch.testing.assert_close(scripted_outputs[key], value, atol=1e-6, rtol=1e-6)


def test_presets_define_the_official_architectures() -> None:
    assert preset_config("sparseinst_r50_giam").decoder == "giam"
    assert preset_config("sparseinst_r50_base").decoder == "base"
    assert preset_config("sparseinst_r50_giam_soft").decoder == "soft"
    default = preset_config("sparseinst_r50_giam")
    assert (default.num_classes, default.num_queries, default.kernel_dim, default.groups) == (1, 100, 128, 4)
    assert default.pixel_mean == (123.675, 116.28, 103.53) and default.input_format == "RGB"
    assert preset_config("sparseinst_r50_giam", num_classes=80).num_classes == 80
    with pytest.raises(ValueError, match="unknown model"):
        preset_config("sparseinst_r101_nope")


def test_official_parameter_names_and_shapes() -> None:
    model = SparseInst(preset_config("sparseinst_r50_giam", num_classes=80))
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert shapes["decoder.inst_branch.iam_conv.weight"] == (400, 64, 3, 3)
    assert shapes["decoder.inst_branch.fc.weight"] == (1024, 1024)
    assert shapes["decoder.inst_branch.cls_score.weight"] == (80, 1024)
    assert shapes["decoder.inst_branch.inst_convs.6.weight"] == (256, 256, 3, 3)
    assert shapes["decoder.mask_branch.mask_convs.0.weight"] == (256, 258, 3, 3)
    assert shapes["encoder.ppm.stages.3.1.weight"] == (64, 256, 1, 1)
    assert shapes["encoder.fpn_laterals.0.weight"] == (256, 2048, 1, 1)  # res5 first
    assert "pixel_mean" not in shapes  # non-persistent: the official state dict has none
    # Official initialisation: focal prior on class and IAM biases, zero mask-kernel bias.
    prior_bias = -torch.log(torch.tensor(99.0))
    torch.testing.assert_close(model.decoder.inst_branch.cls_score.bias, prior_bias.expand(80))
    torch.testing.assert_close(model.decoder.inst_branch.iam_conv.bias, prior_bias.expand(400))
    assert model.decoder.inst_branch.iam_conv.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert not model.decoder.inst_branch.mask_kernel.bias.any()


def test_config_round_trips_through_json() -> None:
    config = preset_config("sparseinst_mbv2_tiny", num_classes=2)
    data = json.loads(json.dumps(config.to_dict()))
    assert SparseInstConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="unknown SparseInstConfig keys.*'num_clases'"):
        SparseInstConfig.from_dict({"num_clases": 3})
    with pytest.raises(ValueError, match="decoder must be one of"):
        SparseInstConfig(decoder="dense")
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        SparseInstConfig(num_classes=0)


@pytest.fixture(scope="module")
def tiny_state() -> Dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return SparseInst(preset_config("sparseinst_mbv2_tiny", num_classes=3)).state_dict()


def test_converter_accepts_every_official_container(tiny_state: Dict[str, torch.Tensor]) -> None:
    bare, report = convert_official_checkpoint(dict(tiny_state))
    # nn.BatchNorm2d's counters are dropped (FrozenBN and the official FrozenBN checkpoints have none).
    assert report.dropped and all(key.endswith("num_batches_tracked") for key in report.dropped)
    wrapped, wrapped_report = convert_official_checkpoint({"model": tiny_state, "iteration": 7})
    prefixed, prefixed_report = convert_official_checkpoint({f"module.{k}": v for k, v in tiny_state.items()})
    assert wrapped_report.container == "model" and prefixed_report.stripped_prefix
    numpy_state, _ = convert_official_checkpoint({"model": {k: v.numpy() for k, v in tiny_state.items()}})
    for other in (wrapped, prefixed, numpy_state):
        assert other.keys() == bare.keys()
        assert all(torch.equal(other[key], bare[key]) for key in bare)


def test_loader_names_missing_and_unexpected_keys(tiny_state: Dict[str, torch.Tensor]) -> None:
    model = SparseInst(preset_config("sparseinst_mbv2_tiny", num_classes=3))
    state = dict(tiny_state)
    del state["decoder.inst_branch.fc.bias"]
    state["decoder.inst_branch.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \[decoder\.inst_branch\.fc\.bias\]") as error:
        load_official_checkpoint(model, {"model": state})
    assert "unexpected keys [decoder.inst_branch.extra.weight]" in str(error.value)
    report = load_official_checkpoint(model, {"model": state}, strict=False)
    assert report.missing_keys == ["decoder.inst_branch.fc.bias"]
    assert report.unexpected_keys == ["decoder.inst_branch.extra.weight"]
    assert torch.equal(model.state_dict()["decoder.inst_branch.fc.weight"], tiny_state["decoder.inst_branch.fc.weight"])


def test_loader_reports_another_class_count_or_family(tiny_state: Dict[str, torch.Tensor], tmp_path) -> None:  # noqa: ANN001
    model = SparseInst(preset_config("sparseinst_mbv2_tiny", num_classes=1))
    with pytest.raises(ValueError, match="checkpoint predicts 3 classes but the model was built for 1.*num_classes=3"):
        load_official_checkpoint(model, tiny_state)
    other_family = {k: v for k, v in tiny_state.items() if k.startswith("backbone.")}
    with pytest.raises(ValueError, match="not a SparseInst checkpoint"):
        load_official_checkpoint(model, other_family)
    wider = SparseInst(preset_config("sparseinst_mbv2_tiny", num_classes=3, kernel_dim=32))
    with pytest.raises(ValueError, match=r"mask_kernel\.weight: checkpoint \(64, 512\) vs model \(32, 512\)"):
        load_official_checkpoint(wider, tiny_state)
    # From a file, with float16 tensors (as the official fp16 releases): loads into float32 exactly.
    path = tmp_path / "half.pth"
    half = {k: v.half() if v.is_floating_point() else v for k, v in tiny_state.items()}
    torch.save({"model": half}, path)
    target = SparseInst(preset_config("sparseinst_mbv2_tiny", num_classes=3))
    load_official_checkpoint(target, str(path))
    loaded = target.state_dict()["decoder.inst_branch.cls_score.weight"]
    assert loaded.dtype == torch.float32 and torch.equal(loaded, half["decoder.inst_branch.cls_score.weight"].float())
