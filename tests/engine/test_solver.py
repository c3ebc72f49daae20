"""The solver: parameter groups (weights, biases with their lr factor and decay, normalisation layers), SGD and
AdamW, linear / constant warm-up and step / cosine schedules, checked against hand-computed values."""

from __future__ import annotations

import math
from typing import Dict, List

import pytest
import torch
from torch import nn

from pysalient.engine.solver import build_optimizer, build_scheduler, lr_factor, parameter_groups, warmup_iterations
from pysalient.layers import FrozenBatchNorm2d
from pysalient.models.registry import get_family
from pysalient.models.sparseinst.config import sparseinst_mbv2_tiny


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.weird_name_norm = nn.Conv2d(4, 4, 1)  # "norm" in the name but a conv: decays
        self.gn = nn.GroupNorm(2, 4)
        self.frozen = FrozenBatchNorm2d(4)  # buffers only: no parameter to train
        self.head = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 2))
        self.head[1].weight.requires_grad_(False)
        self.shared = self.conv  # the same parameters reachable twice


def _group_names(model: nn.Module, groups: List[dict]) -> Dict[str, List[str]]:
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    return {group["name"]: [names[id(p)] for p in group["params"]] for group in groups}


def _settings(groups: List[dict]) -> Dict[str, tuple]:
    return {group["name"]: (group["lr"], group["weight_decay"]) for group in groups}


def test_groups_split_weights_biases_and_norm_layers_by_type_in_parameter_order() -> None:
    model = _Tiny()
    groups = parameter_groups(model, 1e-3, 0.05)
    assert _group_names(model, groups) == {
        "weights": ["conv.weight", "weird_name_norm.weight"],
        "biases": ["conv.bias", "weird_name_norm.bias", "head.1.bias"],
        "norms": ["bn.weight", "bn.bias", "gn.weight", "gn.bias", "head.0.weight", "head.0.bias"],
    }
    # the same model built again gives the same order (optimizer states line up between runs)
    again = _Tiny()
    assert _group_names(again, parameter_groups(again, 1e-3, 0.05)) == _group_names(model, groups)


def test_group_learning_rates_and_decays() -> None:
    model = _Tiny()
    # detectron2's defaults: biases decay like the weights (weight_decay_bias None), norm layers not, one rate
    assert _settings(parameter_groups(model, 1e-3, 0.05)) == {
        "weights": (1e-3, 0.05),
        "biases": (1e-3, 0.05),
        "norms": (1e-3, 0.0),
    }
    # RDPNet / FCOS: biases at twice the rate without decay; the norm layers' biases keep the base rate
    assert _settings(parameter_groups(model, 0.0025, 1e-4, weight_decay_bias=0.0, bias_lr_factor=2.0)) == {
        "weights": (0.0025, 1e-4),
        "biases": (0.005, 0.0),
        "norms": (0.0025, 0.0),
    }
    assert _settings(parameter_groups(model, 0.1, 0.01, weight_decay_bias=0.02, weight_decay_norm=0.03)) == {
        "weights": (0.1, 0.01),
        "biases": (0.1, 0.02),
        "norms": (0.1, 0.03),
    }


def test_empty_groups_are_left_out() -> None:
    groups = parameter_groups(nn.Linear(3, 2, bias=False), 0.1, 0.0)
    assert [group["name"] for group in groups] == ["weights"]


def test_sgd_with_momentum_bias_factor_and_no_bias_decay() -> None:
    model = _Tiny()
    optimizer = build_optimizer(model, "sgd", 0.1, 0.01, momentum=0.9, weight_decay_bias=0.0, bias_lr_factor=2.0)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    weight, bias, norm = (tensor.detach().clone() for tensor in (model.conv.weight, model.conv.bias, model.bn.bias))
    for _ in range(2):
        for parameter in model.parameters():
            parameter.grad = torch.ones_like(parameter)
        optimizer.step()
    # the bias: lr 0.2, no decay; buffer v1 = 1, v2 = 0.9 * 1 + 1 = 1.9, so b - 0.2 * 1 - 0.2 * 1.9 = b - 0.58
    torch.testing.assert_close(model.conv.bias, bias - 0.58)
    # a norm-layer bias: base lr 0.1, no decay: b - 0.1 - 0.19
    torch.testing.assert_close(model.bn.bias, norm - 0.29)
    # the weight: g1 = 1 + 0.01 w, p1 = w - 0.1 g1; g2 = 1 + 0.01 p1, v2 = 0.9 g1 + g2, p2 = p1 - 0.1 v2
    g1 = 1 + 0.01 * weight
    p1 = weight - 0.1 * g1
    torch.testing.assert_close(model.conv.weight, p1 - 0.1 * (0.9 * g1 + 1 + 0.01 * p1))


def test_adamw_betas_and_decoupled_decay_on_weights_only() -> None:
    model = _Tiny()
    optimizer = build_optimizer(model, "adamw", 1e-3, 0.05, betas=(0.8, 0.9))
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.8, 0.9)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)  # a zero-gradient step only applies the decay
    conv, bias, bn = (tensor.detach().clone() for tensor in (model.conv.weight, model.conv.bias, model.bn.weight))
    optimizer.step()
    torch.testing.assert_close(model.conv.weight, conv * (1 - 1e-3 * 0.05))
    torch.testing.assert_close(model.conv.bias, bias * (1 - 1e-3 * 0.05))  # biases decay like weights by default
    assert torch.equal(model.bn.weight, bn)


def test_bad_optimizers_and_frozen_models_raise() -> None:
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(_Tiny(), "adam", 0.1, 0.0)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(frozen, "sgd", 0.1, 0.0)


def test_sparseinst_norm_parameters_get_no_decay() -> None:
    network = get_family("sparseinst").build(sparseinst_mbv2_tiny())
    groups = {group["name"]: group for group in parameter_groups(network, 1e-3, 0.05)}
    batch_norms = [module for module in network.modules() if isinstance(module, nn.BatchNorm2d)]
    assert len(groups["norms"]["params"]) == 2 * len(batch_norms) > 0 and groups["norms"]["weight_decay"] == 0
    assert sum(len(group["params"]) for group in groups.values()) == len(list(network.parameters()))


def test_linear_warmup_rises_from_the_factor_to_one() -> None:
    # detectron2 WarmupMultiStepLR: factor = warmup_factor * (1 - a) + a with a = iteration / warmup
    values = [lr_factor(iteration, 1000, 100, 0.001, (), 0.1) for iteration in (0, 25, 50, 99, 100, 500)]
    assert values == pytest.approx([0.001, 0.25075, 0.5005, 0.99001, 1.0, 1.0])


def test_constant_warmup_holds_the_factor_then_jumps_to_one() -> None:
    # maskrcnn-benchmark's constant warm-up (RDPNet: x1/3 for 500 iterations)
    values = [lr_factor(iteration, 10000, 500, 1 / 3, (), 0.1, "constant") for iteration in (0, 250, 499, 500)]
    assert values == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    # where the linear warm-up would be half way
    assert lr_factor(250, 10000, 500, 1 / 3, (), 0.1, "linear") == pytest.approx(2 / 3)


def test_step_schedule_decays_at_each_milestone() -> None:
    # milestones at round(0.5 * 1000) = 500 and round(0.75 * 1000) = 750, decayed AT the milestone
    iterations = (100, 499, 500, 749, 750, 999)
    values = [lr_factor(iteration, 1000, 100, 0.001, (0.5, 0.75), 0.1) for iteration in iterations]
    assert values == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    # a step inside the warm-up multiplies the warm-up factor: gamma * (0.5 * 0.5 + 0.5)
    assert lr_factor(5, 100, 10, 0.5, (0.01,), 0.1) == pytest.approx(0.075)


def test_cosine_schedule_over_the_whole_run_times_the_warmup() -> None:
    # detectron2 WarmupCosineLR: 0.5 (1 + cos(pi t / T)) from t = 0, times the warm-up factor
    values = [lr_factor(iteration, 1000, 0, 0.001, (), 0.1, "linear", "cosine") for iteration in (0, 250, 500, 1000)]
    assert values == pytest.approx([1.0, 0.8535533905932737, 0.5, 0.0], abs=1e-12)
    # iteration 10 of a 20-iteration linear warm-up from 0.5: 0.5 (1 + cos(0.01 pi)) * 0.75
    assert lr_factor(10, 1000, 20, 0.5, (), 0.1, "linear", "cosine") == pytest.approx(0.74981496014, rel=1e-10)
    assert lr_factor(10, 1000, 20, 0.5, (), 0.1, "constant", "cosine") == pytest.approx(0.49987664009, rel=1e-10)
    assert lr_factor(20, 1000, 20, 0.5, (), 0.1, "constant", "cosine") == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.02))
    )


def test_warmup_is_capped_at_a_tenth_of_the_run() -> None:
    assert warmup_iterations(1000, 270000) == 1000 and warmup_iterations(1000, 300) == 30
    assert warmup_iterations(10, 50) == 5 and warmup_iterations(0, 100) == 0


def test_scheduler_steps_per_iteration_and_keeps_group_factors() -> None:
    model = nn.Linear(1, 1)
    optimizer = build_optimizer(model, "sgd", 0.1, 0.0, bias_lr_factor=2.0)
    scheduler = build_scheduler(optimizer, 10, 2, 0.5, (0.5,), 0.1)
    used = []
    for _ in range(10):
        used.append({group["name"]: group["lr"] for group in optimizer.param_groups})
        optimizer.step()
        scheduler.step()
    expected = [0.05, 0.075, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.01]
    assert [lrs["weights"] for lrs in used] == pytest.approx(expected)
    assert [lrs["biases"] for lrs in used] == pytest.approx([2 * value for value in expected])


def test_constant_warmup_cosine_scheduler_values() -> None:
    optimizer = build_optimizer(nn.Linear(1, 1, bias=False), "sgd", 1.0, 0.0)
    scheduler = build_scheduler(optimizer, 4, 2, 0.25, (), 0.1, warmup_kind="constant", schedule="cosine")
    used = []
    for _ in range(4):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # 0.25 * 0.5 (1 + cos(pi t / 4)) during the warm-up (t = 0, 1), then the cosine alone (t = 2, 3)
    assert used == pytest.approx([0.25, 0.25 * 0.5 * (1 + 2**-0.5), 0.5, 0.5 * (1 - 2**-0.5)])


def test_bad_schedules_raise() -> None:
    optimizer = build_optimizer(nn.Linear(1, 1), "sgd", 0.1, 0.0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        build_scheduler(optimizer, 10, 2, 0.5, (0.5,), 0.1, schedule="poly")
    with pytest.raises(ValueError, match="warmup must be one of"):
        build_scheduler(optimizer, 10, 2, 0.5, (0.5,), 0.1, warmup_kind="exponential")
