"""ResNet backbone: detectron2 names, golden parity with the official R50 outputs, freezing."""

from __future__ import annotations

import pytest
import torch

from pysalient.backbones import ResNet, ResNetConfig, build_backbone
from pysalient.layers import FrozenBatchNorm2d
from tests.fixtures import load_fixture, state_dict_with_prefix


def test_r50_reproduces_the_official_detectron2_backbone() -> None:
    fixture = load_fixture("sparseinst_r50_giam_official.pt")
    model = build_backbone("resnet50").eval()
    result = model.load_state_dict(state_dict_with_prefix(fixture["state_dict"], "backbone."), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        outputs = model(fixture["batched_input"])
    for name in ("res4", "res5"):
        torch.testing.assert_close(outputs[name], fixture["backbone"][name], atol=2e-4, rtol=0)
    assert outputs["res3"].shape == (1, 512, 40, 56)


@pytest.mark.parametrize(
    ("depth", "channels", "parameters"),
    [(18, (128, 256, 512), 11_176_512), (34, (128, 256, 512), 21_284_672), (50, (512, 1024, 2048), 23_508_032)],
)
def test_channels_strides_and_size(depth: int, channels: tuple, parameters: int) -> None:
    model = build_backbone(f"resnet{depth}", norm="BN")
    assert tuple(model.out_channels.values()) == channels
    assert model.out_strides == {"res3": 8, "res4": 16, "res5": 32}
    # The ImageNet classification networks minus their final fc layer.
    assert sum(p.numel() for p in model.parameters()) == parameters
    outputs = model(torch.randn(2, 3, 65, 97))
    assert {name: tuple(value.shape[2:]) for name, value in outputs.items()} == {
        "res3": (9, 13),
        "res4": (5, 7),
        "res5": (3, 4),
    }


def test_detectron2_parameter_names() -> None:
    names = set(build_backbone("resnet50").state_dict())
    expected = {"stem.conv1.weight", "stem.conv1.norm.running_var", "res2.0.shortcut.weight", "res5.2.conv3.weight"}
    assert expected <= names
    assert "res2.1.shortcut.weight" not in names and not any("num_batches_tracked" in name for name in names)
    basic = set(build_backbone("resnet18").state_dict())
    assert "res2.0.shortcut.weight" not in basic and "res3.0.shortcut.norm.bias" in basic  # 64 -> 64 needs none


def test_stride_sits_in_the_3x3_convolution() -> None:
    block = build_backbone("resnet50").res3[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2) and block.shortcut.stride == (2, 2)


def test_frozen_batch_norm_formula_and_checkpoint_compatibility() -> None:
    norm = FrozenBatchNorm2d(3)
    state = {
        "weight": torch.tensor([1.0, 2.0, 0.5]),
        "bias": torch.tensor([0.0, 1.0, -1.0]),
        "running_mean": torch.tensor([0.5, -1.0, 2.0]),
        "running_var": torch.tensor([4.0, 0.25, 1.0]),
        "num_batches_tracked": torch.tensor(7),  # torchvision-style entry, ignored
    }
    norm.load_state_dict(state)
    x = torch.randn(2, 3, 4, 5)
    expected = (x - state["running_mean"].view(1, 3, 1, 1)) / torch.sqrt(state["running_var"].view(1, 3, 1, 1) + 1e-5)
    expected = expected * state["weight"].view(1, 3, 1, 1) + state["bias"].view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), expected)


def test_freeze_at_stops_gradients_and_freezes_batch_norm() -> None:
    model = ResNet(ResNetConfig(depth=18, norm="BN", freeze_at=2))
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert all(not p.requires_grad for p in model.res2.parameters())
    assert all(p.requires_grad for p in model.res3.parameters())
    assert isinstance(model.res2[0].conv1.norm, FrozenBatchNorm2d)
    assert isinstance(model.res3[0].conv1.norm, torch.nn.BatchNorm2d)
    sum(value.sum() for value in model(torch.randn(2, 3, 64, 64)).values()).backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)


def test_unrequested_stages_are_not_built_and_bad_configs_fail() -> None:
    model = build_backbone("resnet50", out_features=["res3"])
    assert not any(name.startswith(("res4.", "res5.")) for name in model.state_dict())
    assert set(model(torch.randn(1, 3, 64, 64))) == {"res3"}
    with pytest.raises(ValueError, match="depth must be one of"):
        ResNet(ResNetConfig(depth=42))
    with pytest.raises(ValueError, match="out_features"):
        build_backbone("resnet18", out_features=["res6"])
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("alexnet")
    with pytest.raises(ValueError, match="replace_stride_with_dilation needs 3 flags"):
        build_backbone("resnet18", replace_stride_with_dilation=(True, True))
    with pytest.raises(ValueError, match="VGG16 returns only conv5_3"):
        build_backbone("vgg16", out_features=["res4"])


def test_scripted_backbone_matches_eager() -> None:
    model = build_backbone("resnet18", norm="BN").eval()
    x = torch.randn(1, 3, 64, 96)
    scripted = torch.jit.script(model)
    for name, value in model(x).items():
        torch.testing.assert_close(scripted(x)[name], value)


def test_stride_in_1x1_and_frozen_bn_epsilon_options() -> None:
    from pysalient.backbones import build_resnet
    from pysalient.layers import FrozenBatchNorm2d

    msra = build_resnet(50, stride_in_1x1=True, frozen_bn_eps=0.0, freeze_at=2)
    block = msra.res3[0]
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1)
    default = build_resnet(50)
    assert default.res3[0].conv1.stride == (1, 1) and default.res3[0].conv2.stride == (2, 2)
    eps = {module.eps for module in msra.modules() if isinstance(module, FrozenBatchNorm2d)}
    assert eps == {0.0}  # maskrcnn-benchmark's FrozenBN: weight * rsqrt(running_var), no epsilon
    norm = FrozenBatchNorm2d(1, eps=0.0)
    norm.running_var.fill_(4.0)
    assert norm(torch.ones(1, 1, 1, 1)).item() == 0.5
