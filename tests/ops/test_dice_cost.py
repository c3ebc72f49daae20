"""pysalient.ops.dice_cost: SparseInst's dice matching score, reference parity, script and export."""

from __future__ import annotations

import pytest
import torch

from pysalient.ops import DiceCost, _reference, dice_cost
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip


def random_logits(n: int, p: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, p, generator=generator, dtype=torch.float64) * 3).to(dtype)


def random_masks(k: int, p: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + 1000)
    masks = torch.rand(k, p, generator=generator) > 0.6
    return masks if dtype == torch.bool else masks.to(dtype)


def official_dice_score(pred_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The SparseInst matcher's formula, evaluated in float64 as the ground truth."""
    inputs = pred_logits.double().sigmoid()
    targets = targets.double()
    numerator = 2 * torch.matmul(inputs, targets.t())
    denominator = (inputs * inputs).sum(-1)[:, None] + (targets * targets).sum(-1)
    return numerator / (denominator + 1e-4)


@pytest.mark.parametrize(
    ("n", "k", "p", "pred_dtype", "target_dtype"),
    [
        (5, 3, 64, torch.float32, torch.float32),
        (4, 2, 30, torch.float64, torch.float64),
        (3, 4, 16, torch.float16, torch.bool),
        (3, 4, 16, torch.bfloat16, torch.uint8),
        (0, 3, 16, torch.float32, torch.float32),
        (3, 0, 16, torch.float32, torch.float32),
        (3, 2, 0, torch.float32, torch.float32),
    ],
)
def test_opcheck(n: int, k: int, p: int, pred_dtype: torch.dtype, target_dtype: torch.dtype) -> None:
    args = (random_logits(n, p, n, pred_dtype), random_masks(k, p, k, target_dtype))
    assert_opcheck(torch.ops.pysalient.dice_cost.default, args)


@pytest.mark.parametrize("target_dtype", [torch.float32, torch.float64, torch.float16, torch.bool, torch.uint8])
@pytest.mark.parametrize("seed", range(3))
def test_matches_reference_and_official_formula(target_dtype: torch.dtype, seed: int, device: str) -> None:
    pred, targets = random_logits(20, 1000, seed), random_masks(7, 1000, seed, target_dtype)
    result = dice_cost(pred.to(device), targets.to(device)).cpu()
    assert result.dtype == torch.float32 and result.shape == (20, 7)
    torch.testing.assert_close(result, _reference.dice_cost(pred, targets), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(result.double(), official_dice_score(pred, targets), atol=1e-6, rtol=1e-5)


def test_float64_is_computed_in_float64(device: str) -> None:
    pred, targets = random_logits(9, 500, 4, torch.float64), random_masks(5, 500, 4, torch.float64)
    result = dice_cost(pred.to(device), targets.to(device)).cpu()
    assert result.dtype == torch.float64
    torch.testing.assert_close(result, official_dice_score(pred, targets), atol=1e-13, rtol=1e-12)
    # bool targets with float64 logits stay in float64.
    assert dice_cost(pred.to(device), targets.bool().to(device)).dtype == torch.float64


@pytest.mark.parametrize("pred_dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_are_widened_before_the_sigmoid(pred_dtype: torch.dtype, device: str) -> None:
    pred, targets = random_logits(16, 2000, 5, pred_dtype), random_masks(6, 2000, 5, torch.bool)
    result = dice_cost(pred.to(device), targets.to(device)).cpu()
    assert result.dtype == torch.float32
    # Ground truth from the same (rounded) logits: only float32 rounding separates them, far below half's 1e-3.
    torch.testing.assert_close(result.double(), official_dice_score(pred.float(), targets), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(result, _reference.dice_cost(pred, targets), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_float8_inputs_are_widened_like_half_precision(dtype: torch.dtype, device: str) -> None:
    # "Any floating dtype": float8 logits and targets are widened to float32 first, on CUDA as on the CPU.
    pred, targets = random_logits(6, 300, 11).to(dtype), random_masks(4, 300, 11).to(dtype)
    result = dice_cost(pred.to(device), targets.to(device)).cpu()
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, _reference.dice_cost(pred.float(), targets.float()), atol=1e-6, rtol=1e-5)
    mixed = dice_cost(pred.float().to(device), targets.to(device)).cpu()
    torch.testing.assert_close(mixed, result, atol=1e-6, rtol=1e-5)


def test_hand_computed_values(device: str) -> None:
    # Logit 0 -> probability 0.5 everywhere: <p, t> = 0.5 * |t|, ||p||^2 = 0.25 * P.
    pred = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 100.0, -100.0, -100.0]], device=device)
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], device=device)
    expected = torch.tensor(
        [
            [2 * 1.0 / (1.0 + 2.0 + 1e-4), 0.0, 2 * 1.0 / (1.0 + 2.0 + 1e-4)],
            [2 * 2.0 / (2.0 + 2.0 + 1e-4), 0.0, 0.0],  # sigmoid(+-100) is 1 / 0 in float32
        ],
        device=device,
    )
    torch.testing.assert_close(dice_cost(pred, targets), expected, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(dice_cost(pred, targets.to(torch.uint8)), expected, atol=1e-7, rtol=1e-6)


def test_soft_targets(device: str) -> None:
    pred = torch.tensor([[0.0, 0.0]], device=device)
    targets = torch.tensor([[0.5, 0.25]], device=device)
    expected = 2 * (0.5 * 0.5 + 0.5 * 0.25) / (0.5 + (0.25 + 0.0625) + 1e-4)
    torch.testing.assert_close(dice_cost(pred, targets).cpu(), torch.tensor([[expected]]), atol=1e-7, rtol=1e-6)


def test_empty_inputs(device: str) -> None:
    assert dice_cost(torch.zeros(0, 10, device=device), torch.zeros(3, 10, device=device)).shape == (0, 3)
    empty_targets = torch.zeros(0, 10, dtype=torch.bool, device=device)
    assert dice_cost(torch.zeros(4, 10, device=device), empty_targets).shape == (4, 0)
    empty = dice_cost(torch.zeros(0, 10, dtype=torch.float64, device=device), torch.zeros(0, 10, device=device))
    assert empty.shape == (0, 0) and empty.dtype == torch.float64
    # No pixels: numerator 0, denominator 1e-4 -> exactly 0 (not NaN).
    zero_pixels = dice_cost(torch.zeros(4, 0, device=device), torch.zeros(3, 0, device=device))
    assert zero_pixels.shape == (4, 3) and torch.equal(zero_pixels.cpu(), torch.zeros(4, 3))


def test_non_contiguous_inputs(device: str) -> None:
    pred = random_logits(300, 12, 6).to(device).t()  # [12, 300] view
    targets = random_masks(600, 5, 7).to(device).t()[:, ::2]  # [5, 300] with stride 2 along P
    assert not pred.is_contiguous() and not targets.is_contiguous()
    torch.testing.assert_close(dice_cost(pred, targets), dice_cost(pred.contiguous(), targets.contiguous()))


def test_result_never_requires_grad(device: str) -> None:
    pred = random_logits(4, 20, 8).to(device).requires_grad_()
    result = dice_cost(pred, random_masks(3, 20, 8).to(device))
    assert not result.requires_grad


@pytest.mark.parametrize(
    ("pred", "targets", "message"),
    [
        (torch.zeros(10), torch.zeros(3, 10), r"pred_logits must be a 2-D tensor \[N, P\]"),
        (torch.zeros(4, 10), torch.zeros(3, 10, 1), r"targets must be a 2-D tensor \[K, P\]"),
        (torch.zeros(4, 10), torch.zeros(3, 11), "pred_logits has P=10 pixels per mask but targets has P=11"),
        (torch.zeros(4, 10, dtype=torch.int64), torch.zeros(3, 10), "pred_logits must be a floating-point"),
        (torch.zeros(4, 10), torch.zeros(3, 10, dtype=torch.int32), "targets must be a floating-point, bool or uint8"),
    ],
)
def test_bad_inputs_raise(pred: torch.Tensor, targets: torch.Tensor, message: str, device: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        dice_cost(pred.to(device), targets.to(device))


def test_torchscript_round_trip() -> None:
    pred, targets = random_logits(10, 64, 9), random_masks(4, 64, 9, torch.bool)
    loaded = scripted_round_trip(DiceCost())
    torch.testing.assert_close(loaded(pred, targets), dice_cost(pred, targets))


def test_torch_export_with_dynamic_sizes() -> None:
    num_queries, num_targets = torch.export.Dim("num_queries"), torch.export.Dim("num_targets")
    pixel_dim = torch.export.Dim("pixels")
    program = exported_module(
        DiceCost(),
        (random_logits(10, 64, 10, torch.float16), random_masks(4, 64, 10)),
        dynamic_shapes=({0: num_queries, 1: pixel_dim}, {0: num_targets, 1: pixel_dim}),
    )
    pred, targets = random_logits(7, 100, 11, torch.float16), random_masks(9, 100, 11)
    torch.testing.assert_close(program(pred, targets), dice_cost(pred, targets))


def test_targets_outside_0_1_are_not_checked_and_follow_the_formula(device: str) -> None:
    pred = random_logits(4, 50, 9)
    targets = torch.linspace(-1.0, 3.0, 100).reshape(2, 50)
    result = dice_cost(pred.to(device), targets.to(device)).cpu()
    torch.testing.assert_close(result.double(), official_dice_score(pred, targets), atol=1e-6, rtol=1e-5)
    assert bool((result < 0).any())  # out of the [0, 1) a valid target gives, as documented
    nan_targets = targets.clone()
    nan_targets[0, 3] = float("nan")
    assert torch.isnan(dice_cost(pred.to(device), nan_targets.to(device)).cpu()[:, 0]).all()
