"""Batch-norm folding: same function as eval-mode conv + norm, parameters rewritten, idempotent, inference-only."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pysalient.layers import ConvNorm, FrozenBatchNorm2d, fold_conv_norms


def randomise_statistics(module: nn.Module, seed: int, spread: float = 1.0) -> None:
    """Non-trivial running statistics and affine parameters on every norm of ``module`` (``spread`` < 1: milder,
    so that activations of a deep network keep their scale)."""
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            channels = layer.running_mean.shape[0]
            with torch.no_grad():
                layer.running_mean.copy_(torch.randn(channels, generator=generator) * spread)
                layer.running_var.copy_(1 + (torch.rand(channels, generator=generator) * 3 - 0.9) * spread)
                layer.weight.copy_(1 + torch.randn(channels, generator=generator) * spread)
                layer.bias.copy_(torch.randn(channels, generator=generator) * spread)


@pytest.mark.parametrize("norm", ["BN", "FrozenBN"])
@pytest.mark.parametrize("bias", [False, True])
def test_folded_layer_equals_eval_conv_then_norm(norm: str, bias: bool) -> None:
    torch.manual_seed(0)
    layer = ConvNorm(3, 5, 3, stride=2, padding=1, bias=bias, norm=norm, activation=nn.ReLU()).double().eval()
    randomise_statistics(layer, seed=1)
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    # Hand-computed reference: the convolution, then the affine map of the running statistics, then ReLU.
    conv = nn.functional.conv2d(x, layer.weight, layer.bias, stride=2, padding=1)
    stats = layer.norm
    scale = stats.weight / torch.sqrt(stats.running_var + stats.eps)
    expected = torch.relu((conv - stats.running_mean[:, None, None]) * scale[:, None, None] + stats.bias[:, None, None])
    assert fold_conv_norms(layer) == 1
    assert layer.norm is None and isinstance(layer.bias, nn.Parameter)
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)
    assert fold_conv_norms(layer) == 0  # nothing left to fold
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)


def test_group_norm_and_plain_convs_are_left_alone() -> None:
    model = nn.Sequential(ConvNorm(3, 32, 3, norm="GN"), ConvNorm(32, 4, 1, bias=True))
    before = copy.deepcopy(model.state_dict())
    assert fold_conv_norms(model) == 0
    assert model.state_dict().keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value)


def test_a_whole_network_folds_and_keeps_its_outputs() -> None:
    from pysalient.models.registry import get_family, get_model_entry

    entry = get_model_entry("sparseinst_r18_light")
    network = get_family(entry.family).build(entry.make_config()).eval()
    randomise_statistics(network, seed=2, spread=0.2)
    folded = copy.deepcopy(network)
    count = fold_conv_norms(folded)
    assert count > 10
    assert not any(isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)) for m in folded.modules())
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected, actual = network(x), folded(x)
    for key in expected:
        # float32 rounding differs per layer; compare relative to each output's scale
        scale = expected[key].abs().max().item()
        assert (actual[key] - expected[key]).abs().max().item() <= 1e-4 * max(scale, 1.0), key
    # TorchScript still compiles the folded layers (norm None, bias a parameter).
    scripted = torch.jit.script(folded)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x)["pred_masks"], actual["pred_masks"], rtol=1e-5, atol=1e-5)
