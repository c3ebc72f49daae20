"""pysalient.ops.roi_align / RoIAlign: torchvision's one-level RoIAlign, hand-computed values, script and export."""

from __future__ import annotations

import math
from typing import List

import pytest
import torch

from pysalient.ops import RoIAlign, _reference, multilevel_roi_align, roi_align
from tests.ops.helpers import exported_module, scripted_round_trip


def x_coordinate_map(height: int = 4, width: int = 4, offset: float = 0.0) -> torch.Tensor:
    """[1, 1, H, W] map whose value at (y, x) is x + offset."""
    return (torch.arange(width, dtype=torch.float64) + offset).expand(1, 1, height, width).contiguous()


def naive_roi_align(
    features: torch.Tensor, rois: torch.Tensor, out_h: int, out_w: int, scale: float, sampling_ratio: int, aligned: bool
) -> torch.Tensor:
    """The definition as plain scalar loops in Python floats (an implementation independent of both kernels)."""
    _, channels, height, width = features.shape
    values = features.tolist()
    output = torch.zeros(rois.shape[0], channels, out_h, out_w, dtype=torch.float64)

    def sample(plane: List[List[float]], y: float, x: float) -> float:
        if y < -1 or y > height or x < -1 or x > width:
            return 0.0
        y, x = max(y, 0.0), max(x, 0.0)
        y0, x0 = int(y), int(x)
        y1, x1 = y0 + 1, x0 + 1
        if y0 >= height - 1:
            y0 = y1 = height - 1
            y = float(y0)
        if x0 >= width - 1:
            x0 = x1 = width - 1
            x = float(x0)
        ly, lx = y - y0, x - x0
        hy, hx = 1 - ly, 1 - lx
        return hy * hx * plane[y0][x0] + hy * lx * plane[y0][x1] + ly * hx * plane[y1][x0] + ly * lx * plane[y1][x1]

    offset = 0.5 if aligned else 0.0
    for r, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        start_x, start_y = x1 * scale - offset, y1 * scale - offset
        roi_w, roi_h = x2 * scale - offset - start_x, y2 * scale - offset - start_y
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_h / out_h), 0)
        grid_w = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_w / out_w), 0)
        count = max(grid_h * grid_w, 1)
        for c in range(channels):
            plane = values[int(b)][c]
            for p in range(out_h):
                for q in range(out_w):
                    total = 0.0
                    for i in range(grid_h):
                        y = start_y + p * bin_h + (i + 0.5) * bin_h / grid_h
                        for j in range(grid_w):
                            total += sample(plane, y, start_x + q * bin_w + (j + 0.5) * bin_w / grid_w)
                    output[r, c, p, q] = total / count
    return output


def random_case(seed: int, batch: int = 2, channels: int = 3, height: int = 11, width: int = 14, count: int = 12):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, channels, height, width, generator=generator, dtype=torch.float64)
    corners = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 70 - 10
    extents = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 40 - 4  # some x2 < x1
    index = torch.randint(0, batch, (count, 1), generator=generator).double()
    return features, torch.cat([index, corners, corners + extents], dim=1)


# ------------------------------------------------------------------------------------------- hand-computed values
def test_aligned_values_on_an_x_coordinate_map(device: str) -> None:
    values = x_coordinate_map().to(device)
    roi = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]], dtype=torch.float64, device=device)
    # aligned: the RoI covers cells [-0.5, 3.5]; one bin of 4x4 adaptive samples at x = 0, 1, 2, 3.
    assert roi_align(values, roi, 1, aligned=True).item() == pytest.approx(1.5)
    # 2x2 bins of 2x2 samples: x = 0, 1 (mean 0.5) and x = 2, 3 (mean 2.5) on every row.
    expected = torch.tensor([[[[0.5, 2.5], [0.5, 2.5]]]], dtype=torch.float64)
    torch.testing.assert_close(roi_align(values, roi, 2, aligned=True).cpu(), expected)


def test_legacy_values_use_the_last_column_alone_past_the_border(device: str) -> None:
    values = x_coordinate_map().to(device)
    roi = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]], dtype=torch.float64, device=device)
    # legacy: samples at x = 0.5, 1.5, 2.5, 3.5; x = 3.5 lies past the last column and reads column 3 alone.
    assert roi_align(values, roi, 1, aligned=False).item() == pytest.approx((0.5 + 1.5 + 2.5 + 3) / 4)
    expected = torch.tensor([[[[1.0, 3.0], [1.0, 3.0]]]], dtype=torch.float64)
    torch.testing.assert_close(roi_align(values, roi, 2, sampling_ratio=1).cpu(), expected)


def test_samples_off_the_map_count_but_contribute_zero(device: str) -> None:
    values = x_coordinate_map(offset=1.0).to(device)  # column 0 holds 1
    # x samples at -2 (beyond -1: contributes 0 but counts) and 0 (column 0); y samples at rows 1 and 3.
    far = torch.tensor([[0.0, -3.0, 0.0, 1.0, 4.0]], dtype=torch.float64, device=device)
    assert roi_align(values, far, 1, sampling_ratio=2).item() == pytest.approx((0 + 1 + 0 + 1) / 4)
    # x samples at -1 (clamped to column 0) and 1.
    near = torch.tensor([[0.0, -2.0, 0.0, 2.0, 4.0]], dtype=torch.float64, device=device)
    assert roi_align(values, near, 1, sampling_ratio=2).item() == pytest.approx((1 + 2) / 2)
    # A RoI entirely off the map pools zeros.
    gone = torch.tensor([[0.0, 20.0, 20.0, 30.0, 30.0]], dtype=torch.float64, device=device)
    assert roi_align(values, gone, (2, 3), sampling_ratio=2).abs().max().item() == 0


def test_legacy_mode_stretches_degenerate_rois_to_one_cell(device: str) -> None:
    values = x_coordinate_map().to(device)
    point = torch.tensor([[0.0, 1.0, 1.0, 1.0, 1.0]], dtype=torch.float64, device=device)
    # legacy: extent max(0, 1) = 1, one sample at x = 1.5 -> value 1.5; aligned: empty adaptive grid -> 0.
    assert roi_align(values, point, 1, sampling_ratio=-1).item() == pytest.approx(1.5)
    assert roi_align(values, point, 1, sampling_ratio=-1, aligned=True).item() == 0


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2])
def test_matches_an_independent_scalar_implementation(aligned: bool, sampling_ratio: int, device: str) -> None:
    features, rois = random_case(seed=sampling_ratio + 10 * aligned, channels=2, count=8)
    expected = naive_roi_align(features, rois, 3, 2, 0.25, sampling_ratio, aligned)
    output = roi_align(features.to(device), rois.to(device), (3, 2), 0.25, sampling_ratio, aligned)
    torch.testing.assert_close(output.cpu(), expected)
    reference = _reference.multilevel_roi_align([features], rois, [0.25], [3, 2], sampling_ratio, aligned)[0]
    torch.testing.assert_close(reference, expected)


# ------------------------------------------------------------------------------------------- API
def test_list_of_boxes_equals_the_indexed_tensor_form(device: str) -> None:
    features, rois = random_case(seed=3, batch=3)
    features, rois = features.to(device), rois.to(device)
    rois = rois[rois[:, 0].argsort(stable=True)]
    per_image = [rois[rois[:, 0] == b, 1:] for b in range(3)]
    torch.testing.assert_close(roi_align(features, per_image, 4, 0.5, 2), roi_align(features, rois, 4, 0.5, 2))
    torch.testing.assert_close(RoIAlign(4, 0.5, 2)(features, per_image), roi_align(features, rois, 4, 0.5, 2))


def test_is_the_one_level_case_of_multilevel_roi_align() -> None:
    features, rois = random_case(seed=4)
    levels = multilevel_roi_align([features, features[:, :1]], rois, [0.5, 0.25], [3, 5, 2, 2], -1, True)
    torch.testing.assert_close(roi_align(features, rois, (3, 5), 0.5, -1, True), levels[0])
    torch.testing.assert_close(roi_align(features[:, :1], rois, 2, 0.25, -1, True), levels[1])


def test_integer_and_pair_output_sizes() -> None:
    features, rois = random_case(seed=5)
    assert roi_align(features, rois, 3).shape == (12, 3, 3, 3)
    assert roi_align(features, rois, (2, 5)).shape == (12, 3, 2, 5)
    assert roi_align(features, rois, [4, 1]).shape == (12, 3, 4, 1)
    assert roi_align(features, rois[:0], 3).shape == (0, 3, 3, 3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float(dtype: torch.dtype, device: str) -> None:
    features, rois = random_case(seed=6)
    features, rois = features.to(device, dtype), rois.to(device, dtype)
    output = roi_align(features, rois, 4, 0.5, 2, True)
    assert output.dtype == dtype
    expected = roi_align(features.float(), rois.float(), 4, 0.5, 2, True)
    torch.testing.assert_close(output.float(), expected, atol=1e-2, rtol=1e-2)


def test_gradcheck_through_roi_align() -> None:
    features, rois = random_case(seed=7, channels=2, height=6, width=7, count=5)
    features.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, 2, 0.5, 2, True), (features,))


@pytest.mark.parametrize(
    ("boxes", "output_size", "error", "message"),
    [
        ([], 2, ValueError, "non-empty list"),
        ([torch.zeros(3, 5, dtype=torch.float64)], 2, ValueError, r"boxes\[0\] must have shape \[L, 4\]"),
        (torch.zeros(3, 4, dtype=torch.float64), 2, RuntimeError, r"rois must have shape \[R, 5\]"),
        (torch.zeros(3, 5), 2, RuntimeError, "rois must have the dtype of features"),
        (torch.zeros(3, 5, dtype=torch.float64), (2, 2, 2), ValueError, "output size must be an int or a pair"),
        (torch.zeros(3, 5, dtype=torch.float64), 0, RuntimeError, "output sizes must be >= 1"),
        (torch.full((3, 5), 2.0, dtype=torch.float64), 2, RuntimeError, r"batch indices in \[2, 2\] but the batch"),
    ],
)
def test_bad_inputs_raise(boxes, output_size, error: type, message: str, device: str) -> None:
    features = torch.zeros(2, 3, 8, 8, dtype=torch.float64, device=device)
    boxes = [b.to(device) for b in boxes] if isinstance(boxes, list) else boxes.to(device)
    with pytest.raises(error, match=message):
        roi_align(features, boxes, output_size)


@pytest.mark.parametrize(
    ("spatial_scale", "sampling_ratio", "message"),
    [
        (float("nan"), 2, r"roi_align: spatial_scale must be finite and > 0, got nan"),
        (-0.5, 2, r"roi_align: spatial_scale must be finite and > 0, got -0.5"),
        (0.0, 2, r"roi_align: spatial_scale must be finite and > 0"),
        (1.0, 10**6, r"roi_align: sampling_ratio must be <= 1024 .* got 1000000"),
    ],
)
def test_bad_scale_or_sampling_ratio_names_roi_align(spatial_scale: float, sampling_ratio: int, message: str) -> None:
    features, rois = random_case(seed=3)
    with pytest.raises(ValueError, match=message):
        roi_align(features, rois, 2, spatial_scale, sampling_ratio)
    # The scripted function refuses them the same way (no hang on a huge sampling_ratio).
    with pytest.raises(torch.jit.Error, match=message.split(",")[0]):
        torch.jit.script(roi_align)(features, rois, 2, spatial_scale, sampling_ratio, False)


def test_torchscript_round_trip() -> None:
    features, rois = random_case(seed=8)
    loaded = scripted_round_trip(RoIAlign((3, 2), 0.5, -1, aligned=True))
    expected = roi_align(features, rois, (3, 2), 0.5, -1, True)
    torch.testing.assert_close(loaded(features, rois), expected)
    per_image = [rois[rois[:, 0] == b, 1:] for b in range(2)]
    order = torch.cat([torch.where(rois[:, 0] == b)[0] for b in range(2)])
    torch.testing.assert_close(loaded(features, per_image), expected[order])
    # Scripted functions accept a plain int output size too (broadcast to a pair, as in torchvision).
    scripted = torch.jit.script(roi_align)
    torch.testing.assert_close(scripted(features, rois, 3, 0.5, 2, False), roi_align(features, rois, 3, 0.5, 2, False))


def test_torch_export_with_dynamic_rois_and_map_size() -> None:
    features, rois = random_case(seed=9, height=12, width=10)
    count, height, width = torch.export.Dim("count"), torch.export.Dim("height"), torch.export.Dim("width")
    program = exported_module(
        RoIAlign(4, 0.5, 2, aligned=True), (features, rois), dynamic_shapes=({2: height, 3: width}, {0: count})
    )
    other_features, other_rois = random_case(seed=10, height=17, width=9, count=5)
    torch.testing.assert_close(
        program(other_features, other_rois), roi_align(other_features, other_rois, 4, 0.5, 2, True)
    )
