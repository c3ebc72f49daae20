"""pysalient.ops.roi_masking: S4Net RoIMasking values, reference parity, gradients, script and export."""

from __future__ import annotations

from typing import List

import pytest
import torch

from pysalient.ops import RoIMasking, _reference, roi_masking
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip

MODES = ["binary", "expanded_binary", "ternary"]
MODE_INDEX = {name: index for index, name in enumerate(MODES)}


def random_features(shape: List[int], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def random_rois(
    num: int, batch: int, image_h: float, image_w: float, seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """RoIs in input pixels in mixed image order: most inside the image, some partly or fully off it, a few
    inverted or degenerate."""
    generator = torch.Generator().manual_seed(seed)
    size = torch.tensor([image_w, image_h], dtype=torch.float64)
    corner = (torch.rand(num, 2, generator=generator, dtype=torch.float64) * 1.6 - 0.3) * size
    extent = torch.rand(num, 2, generator=generator, dtype=torch.float64) * 0.6 * size
    extent[::7] *= -0.2  # inverted boxes
    extent[3::11] = 0.0  # point boxes
    index = torch.randint(0, batch, (num, 1), generator=generator).to(torch.float64)
    return torch.cat([index, corner, corner + extent], dim=1).to(dtype)


def test_hand_computed_ternary_mask(device: str) -> None:
    # scale 0.5: x in [4, 7] -> cells [2, 4), y in [2, 5] -> cells [1, 3); ratio 0.5 -> a 1-cell ring.
    features = torch.ones(1, 1, 6, 6, device=device)
    rois = torch.tensor([[0.0, 4.0, 2.0, 7.0, 5.0]], device=device)
    expected = torch.tensor(
        [
            [0, -1, -1, -1, -1, 0],
            [0, -1, 1, 1, -1, 0],
            [0, -1, 1, 1, -1, 0],
            [0, -1, -1, -1, -1, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=torch.float32,
        device=device,
    )
    out = roi_masking(features, rois, 0.5, 0.5, "ternary")
    assert out.shape == (1, 1, 6, 6) and out.device == features.device
    assert torch.equal(out[0, 0], expected)
    assert torch.equal(roi_masking(features, rois, 0.5, 0.5, "binary")[0, 0], (expected == 1).float())
    assert torch.equal(roi_masking(features, rois, 0.5, 0.5, "expanded_binary")[0, 0], (expected != 0).float())
    assert torch.equal(_reference.roi_masking(features, rois, 0.5, 0.5, 2)[0, 0], expected)


def test_default_third_ring_is_clamped_at_the_border_and_multiplies_features(device: str) -> None:
    # Box cells [0, 3) x [0, 3); floor(3 * (1/3)) = 1 cell of ring, cut off above and left by the map border.
    features = torch.arange(32, dtype=torch.float32).reshape(1, 1, 4, 8) + 1.0
    rois = torch.tensor([[0.0, 0.0, 0.0, 2.5, 2.9]])
    mask = torch.zeros(4, 8)
    mask[:4, :4] = -1.0
    mask[:3, :3] = 1.0
    out = roi_masking(features.to(device), rois.to(device), 1.0).cpu()
    assert torch.equal(out[0, 0], features[0, 0] * mask)


def test_widths_divisible_by_three_get_exactly_a_third(device: str) -> None:
    # floor(w * (1/3)) == w // 3 in double precision: the official `w // 3` ring for every integer width.
    features = torch.ones(1, 1, 1, 200, device=device)
    for width in range(1, 60):
        rois = torch.tensor([[0.0, 70.0, 0.0, 70.0 + width - 1, 0.0]], device=device)
        mask = roi_masking(features, rois, 1.0)[0, 0, 0]
        assert int((mask == -1).sum()) == 2 * (width // 3)
        assert int((mask == 1).sum()) == width


def test_snapping_is_outward_to_whole_cells(device: str) -> None:
    features = torch.ones(1, 1, 1, 10, device=device)
    # x in [7.9, 8.0] at scale 1/4 -> cells floor(1.975) = 1 .. floor(2.0) + 1 = 3 (exclusive).
    out = roi_masking(features, torch.tensor([[0.0, 7.9, 0.0, 8.0, 0.0]], device=device), 0.25, 0.0, "binary")
    assert out[0, 0, 0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    # A point box covers the one cell it falls in.
    out = roi_masking(features, torch.tensor([[0.0, 5.5, 0.0, 5.5, 0.0]], device=device), 1.0, 0.0, "binary")
    assert out[0, 0, 0].tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "roi",
    [
        [0.0, 5.0, 1.0, 2.0, 3.0],  # inverted in x
        [0.0, 1.0, 3.0, 2.0, 1.0],  # inverted in y
        [0.0, 12.0, 0.0, 20.0, 4.0],  # right of the map
        [0.0, -9.0, -9.0, -0.5, -0.5],  # above and left of the map
        [0.0, 0.0, 6.0, 5.0, 9.0],  # below the map
    ],
)
def test_empty_boxes_give_all_zero_masks(roi: List[float], device: str) -> None:
    features = random_features([1, 2, 6, 10], 0).to(device)
    for mode in MODES:
        out = roi_masking(features, torch.tensor([roi], device=device), 1.0, 5.0, mode)
        assert torch.count_nonzero(out) == 0


def test_partly_off_map_box_is_clipped_before_the_ring(device: str) -> None:
    # x cells [-2, 3) clip to [0, 3): ring floor(3 * 0.5) = 1 on the right only.
    features = torch.ones(1, 1, 1, 8, device=device)
    out = roi_masking(features, torch.tensor([[0.0, -2.0, 0.0, 2.0, 0.0]], device=device), 1.0, 0.5)
    assert out[0, 0, 0].tolist() == [1, 1, 1, -1, 0, 0, 0, 0]


@pytest.mark.parametrize("mode", MODES)
def test_expand_ratio_zero_has_no_ring(mode: str, device: str) -> None:
    features = random_features([2, 3, 7, 9], 1).to(device)
    rois = random_rois(12, 2, 14.0, 18.0, 1).to(device)
    torch.testing.assert_close(
        roi_masking(features, rois, 0.5, 0.0, mode), roi_masking(features, rois, 0.5, 0.0, "binary")
    )


def test_huge_expand_ratio_covers_the_map(device: str) -> None:
    features = torch.ones(1, 1, 5, 5, device=device)
    rois = torch.tensor([[0.0, 2.0, 2.0, 2.0, 2.0]], device=device)
    out = roi_masking(features, rois, 1.0, 1e300, "expanded_binary")
    assert torch.equal(out[0, 0].cpu(), torch.ones(5, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(3))
def test_matches_reference_forward_and_backward(dtype: torch.dtype, mode: str, seed: int, device: str) -> None:
    features = random_features([3, 4, 11, 13], seed, dtype)
    rois = random_rois(25, 3, 44.0, 52.0, seed, dtype)
    weight = random_features([25, 4, 11, 13], seed + 100, dtype)
    native_in = features.to(device).requires_grad_(True)
    reference_in = features.clone().requires_grad_(True)
    out = roi_masking(native_in, rois.to(device), 0.25, 1.0 / 3.0, mode)
    expected = _reference.roi_masking(reference_in, rois, 0.25, 1.0 / 3.0, MODE_INDEX[mode])
    torch.testing.assert_close(out.cpu(), expected, rtol=0, atol=0)
    (grad,) = torch.autograd.grad((out * weight.to(device)).sum(), native_in)
    (expected_grad,) = torch.autograd.grad((expected * weight).sum(), reference_in)
    torch.testing.assert_close(grad.cpu(), expected_grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype: torch.dtype, device: str) -> None:
    features = random_features([2, 3, 9, 10], 4, dtype)
    rois = random_rois(10, 2, 18.0, 20.0, 4, dtype)
    native_in = features.to(device).requires_grad_(True)
    reference_in = features.float().requires_grad_(True)
    out = roi_masking(native_in, rois.to(device), 0.5)
    expected = _reference.roi_masking(reference_in, rois.float(), 0.5, 1.0 / 3.0, 2)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float().cpu(), expected, rtol=0, atol=0)  # multiplying by -1, 0, 1 is exact
    weight = random_features([10, 3, 9, 10], 5, dtype)
    (grad,) = torch.autograd.grad((out * weight.to(device)).sum(), native_in)
    (expected_grad,) = torch.autograd.grad((expected * weight.float()).sum(), reference_in)
    assert grad.dtype == dtype
    torch.testing.assert_close(grad.float().cpu(), expected_grad, rtol=1e-2, atol=1e-2)


def test_nan_coordinates_act_as_zero(device: str) -> None:
    features = random_features([1, 1, 5, 5], 6)
    rois = torch.tensor([[0.0, float("nan"), 1.0, 2.0, 3.0], [0.0, 1.0, 1.0, float("inf"), float("nan")]])
    torch.testing.assert_close(
        roi_masking(features.to(device), rois.to(device), 1.0).cpu(),
        _reference.roi_masking(features, rois, 1.0, 1 / 3, 2),
    )


def test_batch_rois_in_mixed_order_read_and_write_their_own_image(device: str) -> None:
    features = torch.stack([torch.full((1, 4, 4), float(b + 1)) for b in range(3)]).to(device)
    rois = torch.tensor(
        [[2.0, 0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 0.0, 3.0, 3.0], [2.0, 1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 3.0, 3.0]],
        device=device,
    )
    out = roi_masking(features.clone().requires_grad_(True), rois, 1.0, 0.0, "binary")
    assert out[:, 0, 0, 0].tolist() == [3.0, 1.0, 0.0, 2.0]
    features.requires_grad_(True)
    grad = torch.autograd.grad(roi_masking(features, rois, 1.0, 0.0, "binary").sum(), features)[0]
    expected = torch.ones(3, 1, 4, 4)
    expected[2, 0, 1, 1] = 2.0  # two RoIs of image 2 cover that cell
    assert torch.equal(grad.cpu(), expected)


def test_non_contiguous_features_and_rois(device: str) -> None:
    features = random_features([2, 3, 8, 9], 7).to(device).permute(0, 1, 3, 2)
    rois = torch.cat([random_rois(6, 2, 18.0, 16.0, 7), torch.zeros(6, 2)], dim=1).to(device)[:, :5]
    assert not features.is_contiguous() and not rois.is_contiguous()
    torch.testing.assert_close(
        roi_masking(features, rois, 0.5), roi_masking(features.contiguous(), rois.contiguous(), 0.5), rtol=0, atol=0
    )
    channels_last = features.contiguous().to(memory_format=torch.channels_last)
    torch.testing.assert_close(roi_masking(channels_last, rois, 0.5), roi_masking(features, rois, 0.5))


def test_empty_rois(device: str) -> None:
    features = random_features([2, 3, 5, 6], 8).to(device).requires_grad_(True)
    out = roi_masking(features, torch.zeros(0, 5, device=device), 0.5)
    assert out.shape == (0, 3, 5, 6)
    (grad,) = torch.autograd.grad(out.sum(), features)
    assert torch.equal(grad, torch.zeros_like(features))


def test_zero_size_map(device: str) -> None:
    features = torch.zeros(2, 3, 0, 4, requires_grad=True, device=device)
    out = roi_masking(features, torch.tensor([[1.0, 0.0, 0.0, 2.0, 2.0]], device=device), 1.0)
    assert out.shape == (1, 3, 0, 4)
    assert torch.autograd.grad(out.sum(), features)[0].shape == (2, 3, 0, 4)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode: str) -> None:
    features = random_features([2, 2, 5, 6], 9, torch.float64).requires_grad_(True)
    rois = torch.tensor(
        [
            [1.0, 2.0, 1.0, 7.0, 6.0],
            [0.0, -3.0, -2.0, 4.0, 3.0],  # partly off the map
            [1.0, 8.0, 6.0, 30.0, 30.0],  # partly off the map
            [0.0, 0.0, 0.0, 11.0, 9.0],
            [1.0, 6.0, 6.0, 2.0, 2.0],  # inverted: no gradient
        ],
        dtype=torch.float64,
    )
    assert torch.autograd.gradcheck(lambda f: roi_masking(f, rois, 0.5, 0.5, mode), (features,))
    assert torch.autograd.gradgradcheck(lambda f: roi_masking(f, rois, 0.5, 0.5, mode), (features,))


def test_rois_get_no_gradient(device: str) -> None:
    features = random_features([1, 1, 4, 4], 10).to(device).requires_grad_(True)
    rois = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]], requires_grad=True, device=device)
    grads = torch.autograd.grad(roi_masking(features, rois, 1.0).sum(), (features, rois), allow_unused=True)
    assert grads[0] is not None and grads[1] is None


@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("num_rois", [0, 1, 9])
def test_opcheck(mode: int, num_rois: int) -> None:
    features = random_features([2, 3, 6, 7], num_rois).requires_grad_(True)
    rois = random_rois(num_rois, 2, 12.0, 14.0, num_rois)
    assert_opcheck(torch.ops.pysalient.roi_masking.default, (features, rois, 0.5, 1.0 / 3.0, mode))
    grad_output = random_features([num_rois, 3, 6, 7], num_rois + 1).requires_grad_(True)
    assert_opcheck(torch.ops.pysalient._roi_masking_backward.default, (grad_output, rois, 0.5, 1.0 / 3.0, mode, 2))


@pytest.mark.parametrize(
    ("features", "rois", "kwargs", "message"),
    [
        (torch.zeros(3, 4, 4), torch.zeros(1, 5), {}, "features must be a 4-D tensor"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.int32), torch.zeros(1, 5), {}, "features must be a floating-point"),
        (torch.zeros(1, 1, 4, 4), torch.zeros(1, 4), {}, r"rois must have shape \[R, 5\]"),
        (torch.zeros(1, 1, 4, 4), torch.zeros(1, 5, dtype=torch.float64), {}, "rois must have the dtype of features"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([[2.0, 0, 0, 1, 1]]), {}, r"batch indices in \[2, 2\].*2 image"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([[-1.0, 0, 0, 1, 1]]), {}, r"batch indices in \[-1"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([[0.5, 0, 0, 1, 1]]), {}, "integral batch indices"),
        (torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), {"spatial_scale": 0.0}, "spatial_scale must be finite and > 0"),
        (torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), {"expand_ratio": -0.1}, "expand_ratio must be finite and >= 0"),
    ],
)
def test_bad_inputs_raise(features: torch.Tensor, rois: torch.Tensor, kwargs: dict, message: str, device: str) -> None:
    arguments = {"spatial_scale": 1.0, "expand_ratio": 0.25, **kwargs}
    with pytest.raises(RuntimeError, match=message):
        roi_masking(features.to(device), rois.to(device), **arguments)


def test_bad_mode_and_backward_inputs_raise(device: str) -> None:
    features, rois = torch.zeros(1, 1, 4, 4, device=device), torch.zeros(2, 5, device=device)
    with pytest.raises(ValueError, match="mode must be one of"):
        roi_masking(features, rois, 1.0, 0.25, "quaternary")
    with pytest.raises(ValueError, match="spatial_scale must be > 0"):
        RoIMasking(-1.0)
    with pytest.raises(RuntimeError, match=r"mode must be 0 \(binary\)"):
        torch.ops.pysalient.roi_masking(features, rois, 1.0, 0.25, 3)
    with pytest.raises(RuntimeError, match="grad_output has 3 RoIs but rois has 2"):
        torch.ops.pysalient._roi_masking_backward(torch.zeros(3, 1, 4, 4, device=device), rois, 1.0, 0.25, 2, 1)
    with pytest.raises(RuntimeError, match=r"batch indices in \[0, 0\] but the batch has 0 image"):
        torch.ops.pysalient._roi_masking_backward(torch.zeros(2, 1, 4, 4, device=device), rois, 1.0, 0.25, 2, 0)


def test_torchscript_round_trip() -> None:
    features, rois = random_features([2, 3, 10, 12], 11), random_rois(7, 2, 20.0, 24.0, 11)
    module = RoIMasking(0.5, 0.25, "ternary")
    loaded = scripted_round_trip(module)
    torch.testing.assert_close(loaded(features, rois), module(features, rois), rtol=0, atol=0)


def test_torch_export_with_dynamic_rois_and_map_size() -> None:
    features, rois = random_features([2, 3, 10, 12], 12), random_rois(7, 2, 20.0, 24.0, 12)
    num_rois, height, width = torch.export.Dim("num_rois"), torch.export.Dim("height"), torch.export.Dim("width")
    module = RoIMasking(0.5)
    program = exported_module(module, (features, rois), dynamic_shapes=({2: height, 3: width}, {0: num_rois}))
    other_features, other_rois = random_features([2, 3, 7, 15], 13), random_rois(4, 2, 14.0, 30.0, 13)
    torch.testing.assert_close(program(other_features, other_rois), module(other_features, other_rois), rtol=0, atol=0)
