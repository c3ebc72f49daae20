"""pysalient.ops.multilevel_roi_align: torchvision RoIAlign per level, autograd, reference parity, script, export."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import pytest
import torch

from pysalient.ops import MultiLevelRoIAlign, _reference, multilevel_roi_align
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip

OP = torch.ops.pysalient.multilevel_roi_align.default
BACKWARD_OP = torch.ops.pysalient._multilevel_roi_align_backward.default

# Three levels with different channels and strides 4 / 8 / 16 of a 64x80 image.
SCALES = [1 / 4, 1 / 8, 1 / 16]
SIZES = [6, 5, 4, 3, 2, 2]  # (out_h, out_w) per level: non-square on purpose
CHANNELS = [4, 3, 2]


def pyramid(seed: int, batch: int = 2, dtype: torch.dtype = torch.float32, shape: Tuple[int, int] = (64, 80)):
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, c, shape[0] // s, shape[1] // s, generator=generator, dtype=torch.float64).to(dtype)
        for c, s in zip(CHANNELS, (4, 8, 16))
    ]


def edge_case_rois(seed: int, batch: int = 2, count: int = 24, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random RoIs plus RoIs partly and fully off the map, tiny, degenerate (x2 <= x1) and on the last row/column."""
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 90 - 10
    extents = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 50 + 0.1
    random = torch.cat([corners, corners + extents], dim=1)
    special = torch.tensor(
        [
            [-20.0, -15.0, 10.0, 12.0],  # partly off the top-left
            [70.0, 50.0, 95.0, 75.0],  # partly off the bottom-right
            [200.0, 200.0, 260.0, 240.0],  # fully off the map
            [-50.0, -40.0, -30.0, -20.0],  # fully off, negative
            [30.0, 20.0, 30.0, 20.0],  # a point
            [40.0, 30.0, 35.0, 25.0],  # x2 < x1 and y2 < y1
            [10.0, 10.0, 10.3, 10.2],  # tiny
            [60.0, 40.0, 80.0, 64.0],  # samples on the last row and column
            [0.0, 0.0, 80.0, 64.0],  # the whole image
            [-5.0, 3.0, 300.0, 7.0],  # very wide: many adaptive samples
        ],
        dtype=torch.float64,
    )
    boxes = torch.cat([random, special], dim=0)
    index = torch.randint(0, batch, (boxes.shape[0], 1), generator=generator).double()
    return torch.cat([index, boxes], dim=1).to(dtype)


def pooled_pairs(sizes: Sequence[int], levels: int) -> List[Tuple[int, int]]:
    if len(sizes) == levels:
        return [(size, size) for size in sizes]
    return [(sizes[2 * level], sizes[2 * level + 1]) for level in range(levels)]


def reference(features: Sequence[torch.Tensor], rois: torch.Tensor, sampling_ratio: int, aligned: bool):
    return _reference.multilevel_roi_align(list(features), rois, SCALES, SIZES, sampling_ratio, aligned)


def assert_all_close(actual: Sequence[torch.Tensor], expected: Sequence[torch.Tensor], **tolerance) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        torch.testing.assert_close(got, want, **tolerance)


def requires_grad(features: List[torch.Tensor]) -> List[torch.Tensor]:
    return [level.detach().clone().requires_grad_(True) for level in features]


def on(device: str, levels: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    return [level.to(device) for level in levels]


def on_cpu(levels: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    return [level.cpu() for level in levels]


# ------------------------------------------------------------------------------------------- opcheck
@pytest.mark.parametrize(
    ("levels", "count", "sizes", "sampling_ratio", "aligned"),
    [
        (1, 0, [3], 2, False),
        (1, 5, [3], -1, True),
        (3, 0, SIZES, 2, True),
        (3, 7, SIZES, 0, False),
    ],
)
def test_opcheck(levels: int, count: int, sizes: List[int], sampling_ratio: int, aligned: bool) -> None:
    features = requires_grad(pyramid(0)[:levels])
    rois = edge_case_rois(1)[:count]
    args = (features, rois, SCALES[:levels], sizes, sampling_ratio, aligned)
    assert_opcheck(OP, args)
    grads = [torch.randn(count, f.shape[1], h, w) for f, (h, w) in zip(features, pooled_pairs(sizes, levels))]
    heights, widths = [f.shape[2] for f in features], [f.shape[3] for f in features]
    assert_opcheck(BACKWARD_OP, (grads, rois, SCALES[:levels], sizes, sampling_ratio, aligned, 2, heights, widths))


# ------------------------------------------------------------------------------------------- autograd
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_gradcheck(aligned: bool, sampling_ratio: int) -> None:
    features = requires_grad(pyramid(2, dtype=torch.float64, shape=(16, 32)))
    rois = edge_case_rois(3, count=4, dtype=torch.float64) * torch.tensor([1.0, 0.3, 0.25, 0.3, 0.25]).double()

    def pooled(*levels: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(OP(list(levels), rois, SCALES, SIZES, sampling_ratio, aligned))

    assert torch.autograd.gradcheck(pooled, tuple(features))


def test_double_backward() -> None:
    features = requires_grad(pyramid(2, dtype=torch.float64, shape=(16, 32)))[:2]
    rois = edge_case_rois(3, count=2, dtype=torch.float64) * torch.tensor([1.0, 0.3, 0.25, 0.3, 0.25]).double()

    def pooled(*levels: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(OP(list(levels), rois, SCALES[:2], SIZES[:4], 2, True))

    assert torch.autograd.gradgradcheck(pooled, tuple(features))


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_backward_matches_reference_autograd(aligned: bool, sampling_ratio: int, device: str) -> None:
    features, rois = pyramid(4), edge_case_rois(5)
    native_inputs, reference_inputs = requires_grad(on(device, features)), requires_grad(features)
    native = multilevel_roi_align(native_inputs, rois.to(device), SCALES, SIZES, sampling_ratio, aligned)
    expected = reference(reference_inputs, rois, sampling_ratio, aligned)
    grads = [torch.randn_like(level) for level in expected]
    assert_all_close(
        on_cpu(torch.autograd.grad(native, native_inputs, on(device, grads))),
        torch.autograd.grad(expected, reference_inputs, grads),
        atol=1e-5,
        rtol=1e-5,
    )


def test_levels_left_out_of_the_loss_get_zero_gradient_and_rois_none(device: str) -> None:
    features, rois = requires_grad(on(device, pyramid(6))), edge_case_rois(7).to(device).requires_grad_(True)
    outputs = multilevel_roi_align(features, rois, SCALES, SIZES, 2, True)
    outputs[1].sum().backward()
    assert features[0].grad.abs().max() == 0 and features[2].grad.abs().max() == 0
    assert features[1].grad.abs().max() > 0
    assert rois.grad is None


def test_backward_is_deterministic_across_thread_counts() -> None:
    features, rois = pyramid(8), edge_case_rois(9, count=60)
    grads = [torch.randn(rois.shape[0], c, h, w) for c, h, w in zip(CHANNELS, SIZES[::2], SIZES[1::2])]
    heights, widths = [f.shape[2] for f in features], [f.shape[3] for f in features]
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2, 2):
            torch.set_num_threads(count)
            forward = OP(features, rois, SCALES, SIZES, -1, True)
            backward = BACKWARD_OP(grads, rois, SCALES, SIZES, -1, True, 2, heights, widths)
            results.append((forward, backward))
    finally:
        torch.set_num_threads(threads)
    for forward, backward in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(forward, results[0][0]))
        assert all(torch.equal(a, b) for a, b in zip(backward, results[0][1]))


# ------------------------------------------------------------------------------------------- reference parity
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2])
def test_matches_reference(aligned: bool, sampling_ratio: int, device: str) -> None:
    features, rois = pyramid(10), edge_case_rois(11)
    native = on_cpu(multilevel_roi_align(on(device, features), rois.to(device), SCALES, SIZES, sampling_ratio, aligned))
    assert [tuple(level.shape) for level in native] == [(34, 4, 6, 5), (34, 3, 4, 3), (34, 2, 2, 2)]
    assert_all_close(native, reference(features, rois, sampling_ratio, aligned), atol=1e-5, rtol=1e-5)


def test_square_sizes_and_float64(device: str) -> None:
    features, rois = pyramid(12, dtype=torch.float64), edge_case_rois(13, dtype=torch.float64)
    native = on_cpu(multilevel_roi_align(on(device, features), rois.to(device), SCALES, [7, 3, 1], 2, True))
    assert [tuple(level.shape[2:]) for level in native] == [(7, 7), (3, 3), (1, 1)]
    expected = _reference.multilevel_roi_align(features, rois, SCALES, [7, 3, 1], 2, True)
    assert_all_close(native, expected, atol=1e-12, rtol=1e-12)


def test_non_contiguous_inputs(device: str) -> None:
    features, rois = on(device, pyramid(14)), edge_case_rois(15).to(device)
    strided = [torch.cat([level, level], dim=3)[..., ::2] for level in features]  # every other column
    channels_last = [level.contiguous(memory_format=torch.channels_last) for level in features]
    wide_rois = torch.cat([rois, rois], dim=1)[:, ::2]
    assert not strided[0].is_contiguous() and not wide_rois.is_contiguous()
    expected = reference(features, rois, 2, True)
    assert_all_close(multilevel_roi_align(strided, rois, SCALES, SIZES, 2, True), reference(strided, rois, 2, True))
    assert_all_close(multilevel_roi_align(channels_last, rois, SCALES, SIZES, 2, True), expected, atol=1e-5, rtol=1e-5)
    wide_expected = reference(features, wide_rois.contiguous(), -1, False)
    assert_all_close(
        multilevel_roi_align(features, wide_rois, SCALES, SIZES, -1, False), wide_expected, atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_against_float_reference(dtype: torch.dtype, device: str) -> None:
    features, rois = pyramid(16, dtype=dtype), edge_case_rois(17, dtype=dtype)
    native = on_cpu(multilevel_roi_align(on(device, features), rois.to(device), SCALES, SIZES, 2, True))
    assert all(level.dtype == dtype for level in native)
    expected = reference([level.float() for level in features], rois.float(), 2, True)
    tolerance = 1e-2 if dtype == torch.float16 else 5e-2
    assert_all_close([level.float() for level in native], expected, atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(
        native[0].float(), reference(features, rois, 2, True)[0].float(), atol=tolerance, rtol=tolerance
    )


def test_empty_maps_and_empty_channels_pool_zeros(device: str) -> None:
    rois = edge_case_rois(18, count=3).to(device)
    features = [torch.zeros(2, 3, 0, 5, device=device), torch.randn(2, 0, 4, 4, device=device)]
    outputs = multilevel_roi_align(features, rois, [1.0, 1.0], [2, 2], 2, True)
    assert outputs[0].shape == (13, 3, 2, 2) and outputs[0].abs().max() == 0
    assert outputs[1].shape == (13, 0, 2, 2)


# ------------------------------------------------------------------------------------------- bad inputs
def _bad_cases():
    good = pyramid(0)
    rois = edge_case_rois(0, count=3)
    return [
        ([], rois, [], [], RuntimeError, "features must be a non-empty list"),
        ([good[0][0]], rois, [1.0], [2], RuntimeError, r"features\[0\] must be a 4-D tensor"),
        ([good[0], good[1].double()], rois, [1.0, 1.0], [2, 2], RuntimeError, "every level must have one dtype"),
        ([good[0].int()], rois, [1.0], [2], RuntimeError, "must be a floating-point tensor"),
        ([good[0], good[1][:1]], rois, [1.0, 1.0], [2, 2], RuntimeError, "every level must have the batch size"),
        ([good[0]], rois[:, :4], [1.0], [2], RuntimeError, r"rois must have shape \[R, 5\]"),
        ([good[0]], rois.double(), [1.0], [2], RuntimeError, "rois must have the dtype of features"),
        ([good[0]], rois + torch.tensor([5.0, 0, 0, 0, 0]), [1.0], [2], RuntimeError, "batch indices in"),
        ([good[0]], rois - torch.tensor([1.0, 0, 0, 0, 0]), [1.0], [2], RuntimeError, "batch indices in"),
        ([good[0]], rois, [1.0, 2.0], [2], ValueError, "expected 1 spatial_scales"),
        ([good[0]], rois, [1.0], [2, 2, 2], ValueError, "output_sizes must hold 1 or 2 entries"),
        ([good[0]], rois, [1.0], [2, 0], RuntimeError, "output sizes must be >= 1"),
    ]


@pytest.mark.parametrize("case", range(12))
def test_bad_inputs_raise(case: int, device: str) -> None:
    features, rois, scales, sizes, error, message = _bad_cases()[case]
    with pytest.raises(error, match=message):
        multilevel_roi_align(on(device, features), rois.to(device), scales, sizes, 2, True)


def test_native_op_checks_what_python_checks(device: str) -> None:
    features, rois = on(device, pyramid(0)[:1]), edge_case_rois(0, count=3).to(device)
    with pytest.raises(RuntimeError, match="spatial_scales must hold one scale per level"):
        OP(features, rois, [1.0, 2.0], [2], 2, True)
    with pytest.raises(RuntimeError, match=r"output_sizes must hold 1 entries \(square outputs\) or 2 entries"):
        OP(features, rois, [1.0], [2, 2, 2], 2, True)
    with pytest.raises(RuntimeError, match=r"grad_outputs\[0\] must have shape \[13, C, 2, 2\]"):
        BACKWARD_OP([torch.zeros(13, 4, 3, 2, device=device)], rois, [1.0], [2], 2, True, 2, [16], [20])
    with pytest.raises(RuntimeError, match="heights and widths must hold one size per level"):
        BACKWARD_OP([torch.zeros(13, 4, 2, 2, device=device)], rois, [1.0], [2], 2, True, 2, [16, 8], [20])


def test_module_validates_its_configuration() -> None:
    with pytest.raises(ValueError, match="one output size per spatial scale"):
        MultiLevelRoIAlign([0.25, 0.125], [7])
    module = MultiLevelRoIAlign([0.25, 0.125, 1 / 16], [(6, 5), (4, 3), 2])
    assert module.output_sizes == SIZES
    assert "sampling_ratio=2, aligned=False" in repr(module)


# ------------------------------------------------------------------------------------------- script and export
def test_torchscript_round_trip() -> None:
    features, rois = pyramid(20), edge_case_rois(21)
    module = MultiLevelRoIAlign(SCALES, [(6, 5), (4, 3), (2, 2)], sampling_ratio=-1, aligned=True)
    loaded = scripted_round_trip(module)
    assert_all_close(loaded(features, rois), multilevel_roi_align(features, rois, SCALES, SIZES, -1, True))


def test_torch_export_with_dynamic_rois_and_map_sizes() -> None:
    features, rois = pyramid(22), edge_case_rois(23)
    module = MultiLevelRoIAlign(SCALES, [(6, 5), (4, 3), (2, 2)], sampling_ratio=2, aligned=False)
    count = torch.export.Dim("count")
    dims = [{2: torch.export.Dim(f"h{i}", min=2), 3: torch.export.Dim(f"w{i}", min=2)} for i in range(3)]
    program = exported_module(module, (features, rois), dynamic_shapes=(dims, {0: count}))
    other_features, other_rois = pyramid(24, shape=(96, 48)), edge_case_rois(25, count=5)
    assert_all_close(program(other_features, other_rois), module(other_features, other_rois))


@pytest.mark.parametrize("scale", [-0.5, 0.0, float("nan"), float("inf")])
def test_scales_must_be_finite_and_positive(scale: float, device: str) -> None:
    features, rois = on(device, pyramid(0)[:1]), edge_case_rois(0, count=3).to(device)
    with pytest.raises(ValueError, match="spatial_scales must be finite and > 0"):
        multilevel_roi_align(features, rois, [scale], [2], 2, True)
    with pytest.raises(RuntimeError, match="spatial_scales must be finite and > 0"):
        OP(features, rois, [scale], [2], 2, True)


def test_huge_sampling_ratio_is_refused_instead_of_running_for_hours(device: str) -> None:
    features, rois = on(device, pyramid(0)[:1]), edge_case_rois(0, count=3).to(device)
    with pytest.raises(ValueError, match="sampling_ratio must be <= 1024"):
        multilevel_roi_align(features, rois, [1.0], [2], 10**6, True)
    with pytest.raises(RuntimeError, match="sampling_ratio must be <= 1024"):
        OP(features, rois, [1.0], [2], 10**6, True)
    assert multilevel_roi_align(features, rois[:1], [1.0], [1], 1024, True)[0].shape[-1] == 1  # the bound is allowed


def test_fractional_batch_indices_are_refused(device: str) -> None:
    features, rois = on(device, pyramid(0)[:1]), edge_case_rois(0, count=3).to(device)
    rois[0, 0] = 0.5
    with pytest.raises(RuntimeError, match="integral batch indices"):
        OP(features, rois, [1.0], [2], 2, True)
