"""CUDA kernels against the CPU kernels, opcheck on CUDA tensors and float64 gradcheck on CUDA, for every op.

The CPU kernels are the tested implementation of each contract (tests/ops/test_<op>.py), so the CUDA kernels are
compared with them on the same inputs: exactly where both evaluate the same arithmetic (integer/fixed-point,
selection, masks of -1/0/1, double-precision pasting), else within fp32 <= 1e-5 and the precision of fp16/bf16.
Every test takes the ``cuda`` fixture (tests/ops/conftest.py): skipped without a GPU or without CUDA kernels.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

import pytest
import torch

from pysalient.ops import assemble_instances, multilevel_roi_align, roi_masking
from tests.ops.helpers import assert_opcheck

ops = torch.ops.pysalient
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Tolerances of values computed with a different summation order (or atomics) on the two devices.
TOLERANCE = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float64: {"atol": 1e-12, "rtol": 1e-12},
    torch.float16: {"atol": 2e-3, "rtol": 2e-3},
    torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2},
}
EXACT = {"atol": 0.0, "rtol": 0.0}


# --------------------------------------------------------------------------------------------------------------- inputs
def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normal(shape: Sequence[int], seed: int, dtype: torch.dtype = torch.float32, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=generator(seed), dtype=torch.float64) * scale).to(dtype)


def rois(count: int, batch: int, height: float, width: float, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """[count, 5] RoIs in input pixels: inside, partly and fully off the image, inverted, points."""
    g = generator(seed)
    size = torch.tensor([width, height], dtype=torch.float64)
    corner = (torch.rand(count, 2, generator=g, dtype=torch.float64) * 1.6 - 0.3) * size
    extent = torch.rand(count, 2, generator=g, dtype=torch.float64) * 0.6 * size
    extent[::7] *= -0.2
    extent[3::11] = 0.0
    index = torch.randint(0, batch, (count, 1), generator=g).double()
    return torch.cat([index, corner, corner + extent], dim=1).to(dtype)


def boxes(count: int, height: float, width: float, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return rois(count, 1, height, width, seed, torch.float64)[:, 1:].contiguous().to(dtype)


def windows(count: int, batch: int, height: int, width: int, m: int, seed: int) -> torch.Tensor:
    g = generator(seed)
    index = torch.randint(0, batch, (count,), generator=g)
    y0 = torch.randint(-m - 1, height + 2, (count,), generator=g)
    x0 = torch.randint(-m - 1, width + 2, (count,), generator=g)
    return torch.stack([index, y0, x0], dim=1)


def pyramid(seed: int, dtype: torch.dtype, batch: int = 2) -> List[torch.Tensor]:
    return [normal((batch, c, 64 // s, 80 // s), seed + s, dtype) for c, s in ((4, 4), (3, 8), (2, 16))]


SCALES, SIZES = [1 / 4, 1 / 8, 1 / 16], [6, 5, 4, 3, 2, 2]


# -------------------------------------------------------------------------------------------------------------- helpers
def to(device: str, value: Any) -> Any:
    """Moves tensors (also inside lists/tuples) to ``device``; other values pass through."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(to(device, item) for item in value)
    return value


def run_both(function: Callable[..., Any], args: Tuple[Any, ...], cuda: str) -> Tuple[Any, Any]:
    """function(*args) on the CPU and on CUDA; the CUDA outputs are checked to live on CUDA and moved back."""
    expected = function(*args)
    actual = function(*to(cuda, args))
    flat = list(actual) if isinstance(actual, (list, tuple)) else [actual]
    assert all(t.device == torch.device(cuda) for t in flat)
    return to("cpu", actual), expected


def assert_close(actual: Any, expected: Any, **tolerance: float) -> None:
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected)
        for got, want in zip(actual, expected):
            assert_close(got, want, **tolerance)
        return
    torch.testing.assert_close(actual, expected, **tolerance)


# ---------------------------------------------------------------------------------------------- forward/backward parity
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_roi_masking(cuda: str, dtype: torch.dtype, mode: int) -> None:
    features, regions = normal((3, 8, 20, 24), 1, dtype), rois(30, 3, 80.0, 96.0, 2, dtype)
    assert_close(*run_both(ops.roi_masking, (features, regions, 0.25, 1 / 3, mode), cuda), **EXACT)
    grad = normal((30, 8, 20, 24), 3, dtype)
    actual, expected = run_both(ops._roi_masking_backward, (grad, regions, 0.25, 1 / 3, mode, 3), cuda)
    assert_close(actual, expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("m", "k"), [(7, 3), (4, 2), (2, 3), (21, 5)])
def test_assemble_instances(cuda: str, dtype: torch.dtype, m: int, k: int) -> None:
    maps, places = normal((2, k * k, 12, 10), m, dtype), windows(40, 2, 12, 10, m, k)
    assert_close(*run_both(ops.assemble_instances, (maps, places, m, k), cuda), **EXACT)
    grad = normal((40, m, m), m + 1, dtype)
    actual, expected = run_both(ops._assemble_instances_backward, (grad, places, m, k, 2, 12, 10), cuda)
    assert_close(actual, expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("sampling_ratio", "aligned"), [(-1, True), (2, False), (0, True), (1, False)])
def test_multilevel_roi_align(cuda: str, dtype: torch.dtype, sampling_ratio: int, aligned: bool) -> None:
    features, regions = pyramid(4, dtype), rois(34, 2, 64.0, 80.0, 5, dtype)
    args = (features, regions, SCALES, SIZES, sampling_ratio, aligned)
    assert_close(*run_both(ops.multilevel_roi_align, args, cuda), **TOLERANCE[dtype])
    grads = [
        normal((34, f.shape[1], h, w), 6 + i, dtype) for i, (f, h, w) in enumerate(zip(features, [6, 4, 2], [5, 3, 2]))
    ]
    heights, widths = [f.shape[2] for f in features], [f.shape[3] for f in features]
    backward_args = (grads, regions, SCALES, SIZES, sampling_ratio, aligned, 2, heights, widths)
    assert_close(*run_both(ops._multilevel_roi_align_backward, backward_args, cuda), **TOLERANCE[dtype])


def test_multilevel_roi_align_many_levels_and_empty_levels(cuda: str) -> None:
    # More levels than one launch takes (8), with empty ones in between: every chunk and offset is exercised.
    features = [normal((2, 3, 4 + level, 6), level) for level in range(11)]
    features[3] = torch.zeros(2, 0, 5, 6)
    features[8] = torch.zeros(2, 3, 0, 6)
    regions = rois(9, 2, 8.0, 6.0, 7, torch.float32)
    args = (features, regions, [1.0] * 11, [2] * 11, 2, True)
    assert_close(*run_both(ops.multilevel_roi_align, args, cuda), **TOLERANCE[torch.float32])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("count", [1, 63, 64, 65, 500, 3000])
def test_nms(cuda: str, dtype: torch.dtype, count: int) -> None:
    # Counts around the 64-box words of the CUDA bitmask; 3000 boxes take many scan steps.
    candidates, scores = boxes(count, 400.0, 500.0, count, dtype), torch.rand(count, generator=generator(count))
    for threshold in (0.0, 0.3, 0.7, 1.0):
        assert_close(*run_both(ops.nms, (candidates, scores.to(dtype), threshold), cuda), **EXACT)


def test_nms_ties_nan_and_degenerate_boxes(cuda: str) -> None:
    candidates = boxes(200, 50.0, 50.0, 8)
    candidates[::5] = candidates[1::5]  # duplicates
    candidates[::9, 2:] = candidates[::9, :2]  # zero area: NaN IoU with each other
    candidates[7, 0] = float("nan")
    scores = torch.randint(0, 5, (200,), generator=generator(9)).float()  # many ties
    scores[11] = float("nan")
    assert_close(*run_both(ops.nms, (candidates, scores, 0.5), cuda), **EXACT)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("mask_size", "height", "width"), [((28, 28), 60, 80), ((2, 3), 37, 21), ((1, 1), 9, 9)])
def test_paste_masks(cuda: str, dtype: torch.dtype, mask_size: Tuple[int, int], height: int, width: int) -> None:
    masks = torch.rand(30, *mask_size, generator=generator(height), dtype=torch.float64).to(dtype)
    places = boxes(30, height, width, width)
    places[4] = torch.tensor([1.0, float("nan"), 5.0, 5.0])
    for threshold in (0.5, 0.25, 1.0):
        assert_close(*run_both(ops.paste_masks, (masks, places, height, width, threshold), cuda), **EXACT)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("shape", "padded_hw", "image_hw", "output_hw"),
    [
        ((8, 20, 28), [80, 112], [80, 107], [75, 100]),
        ((5, 7, 9), [13, 17], [11, 17], [30, 5]),
        ((3, 16, 16), [64, 64], [50, 33], [20, 13]),
        ((2, 5, 6), [3, 4], [2, 4], [9, 9]),
    ],
)
def test_upsample_masks(
    cuda: str,
    dtype: torch.dtype,
    shape: Tuple[int, ...],
    padded_hw: List[int],
    image_hw: List[int],
    output_hw: List[int],
) -> None:
    logits = normal(shape, shape[1], dtype, scale=4.0)
    (masks, box, maskness), (cpu_masks, cpu_box, cpu_maskness) = run_both(
        ops.upsample_masks, (logits, padded_hw, image_hw, output_hw, 0.45), cuda
    )
    # The device exp may differ from the host's in the last bit: a pixel may flip only at the threshold.
    assert masks.dtype == torch.uint8 and masks.shape == cpu_masks.shape
    assert (masks != cpu_masks).float().mean() <= 1e-3
    same = ~(masks != cpu_masks).flatten(1).any(1)
    assert_close(box[same], cpu_box[same], **EXACT)
    assert_close(maskness, cpu_maskness, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("shape", "padded_hw", "image_hw", "output_hw"),
    [
        ((30, 40, 56), [320, 448], [320, 427], [300, 400]),
        ((20, 9, 13), [72, 104], [60, 97], [45, 71]),
        ((10, 30, 40), [30, 40], [24, 37], [11, 13]),
        ((4, 1, 1), [8, 8], [5, 8], [7, 3]),
    ],
)
def test_resize_masks_in_boxes(
    cuda: str,
    dtype: torch.dtype,
    shape: Tuple[int, ...],
    padded_hw: List[int],
    image_hw: List[int],
    output_hw: List[int],
) -> None:
    probabilities = torch.rand(*shape, generator=generator(shape[1]), dtype=torch.float64).to(dtype)
    places = boxes(shape[0], output_hw[0], output_hw[1], shape[2])
    places[1] = torch.tensor([2.0, float("nan"), 5.0, 5.0])
    places[2] = torch.tensor([-float("inf"), 0.0, 3.0, float("inf")])
    # Same double positions, same weights, same operation order without FMA contraction: identical masks.
    for threshold in (0.0, 0.5, 0.9):
        args = (probabilities, places, padded_hw, image_hw, output_hw, threshold)
        assert_close(*run_both(ops.resize_masks_in_boxes, args, cuda), **EXACT)


@pytest.mark.parametrize(
    ("shape", "out_h", "out_w"),
    [
        ((30, 40, 3), 67, 91),
        ((97, 131, 3), 23, 45),
        ((2, 120, 60, 3), 40, 50),
        ((200, 150, 1), 7, 5),
        ((9, 13, 4), 9, 2),
    ],
)
def test_resize_image(cuda: str, shape: Tuple[int, ...], out_h: int, out_w: int) -> None:
    image = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator(out_h))
    assert_close(*run_both(ops.resize_image, (image, out_h, out_w), cuda), **EXACT)


@pytest.mark.parametrize("pred_dtype", FLOATS)
@pytest.mark.parametrize("target_dtype", [torch.float32, torch.bool, torch.uint8, torch.float16])
def test_dice_cost(cuda: str, pred_dtype: torch.dtype, target_dtype: torch.dtype) -> None:
    pred = normal((20, 1000), 10, pred_dtype, scale=3.0)
    targets = (torch.rand(7, 1000, generator=generator(11)) > 0.6).to(target_dtype)
    tolerance = TOLERANCE[torch.float64 if pred_dtype == torch.float64 else torch.float32]
    assert_close(*run_both(ops.dice_cost, (pred, targets), cuda), **tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize(("n", "k"), [(30, 45), (45, 30), (1, 1), (100, 10)])
@pytest.mark.parametrize("maximize", [False, True])
def test_linear_sum_assignment(cuda: str, dtype: torch.dtype, n: int, k: int, maximize: bool) -> None:
    cost = normal((n, k), n * k, dtype, scale=10.0)
    assert_close(*run_both(ops.linear_sum_assignment, (cost, maximize), cuda), **EXACT)


# --------------------------------------------------------------------------------------------------------- empty inputs
EMPTY_CASES: Dict[str, Tuple[Callable[..., Any], Tuple[Any, ...]]] = {
    "roi_masking": (ops.roi_masking, (normal((2, 3, 5, 6), 0), torch.zeros(0, 5), 0.5, 0.3, 2)),
    "roi_masking_backward": (ops._roi_masking_backward, (torch.zeros(0, 3, 5, 6), torch.zeros(0, 5), 0.5, 0.3, 2, 2)),
    "assemble_instances": (
        ops.assemble_instances,
        (normal((2, 4, 5, 5), 0), torch.zeros(0, 3, dtype=torch.long), 3, 2),
    ),
    "multilevel_roi_align": (
        ops.multilevel_roi_align,
        (pyramid(0, torch.float32), torch.zeros(0, 5), SCALES, SIZES, 2, True),
    ),
    "nms": (ops.nms, (torch.zeros(0, 4), torch.zeros(0), 0.5)),
    "paste_masks": (ops.paste_masks, (torch.zeros(0, 28, 28), torch.zeros(0, 4), 30, 40, 0.5)),
    "paste_masks_zero_height": (ops.paste_masks, (torch.ones(2, 28, 28), torch.ones(2, 4), 0, 40, 0.5)),
    "upsample_masks": (ops.upsample_masks, (torch.zeros(0, 20, 28), [80, 112], [80, 107], [75, 100], 0.45)),
    "resize_masks_in_boxes": (
        ops.resize_masks_in_boxes,
        (torch.zeros(0, 40, 56), torch.zeros(0, 4), [320, 448], [320, 427], [300, 400], 0.5),
    ),
    "resize_image": (ops.resize_image, (torch.zeros(0, 6, 5, 3, dtype=torch.uint8), 4, 4)),
    "dice_cost": (ops.dice_cost, (torch.zeros(4, 10), torch.zeros(0, 10))),
    "dice_cost_no_pixels": (ops.dice_cost, (torch.zeros(4, 0), torch.zeros(3, 0))),
    "linear_sum_assignment": (ops.linear_sum_assignment, (torch.zeros(0, 4), False)),
}


@pytest.mark.parametrize("case", list(EMPTY_CASES))
def test_empty_inputs(cuda: str, case: str) -> None:
    function, args = EMPTY_CASES[case]
    actual, expected = run_both(function, args, cuda)
    assert_close(actual, expected, **EXACT)


# ------------------------------------------------------------------------------------------------------ opcheck on CUDA
def opcheck_cases() -> Dict[str, Tuple[Any, Tuple[Any, ...]]]:
    features, regions = normal((2, 3, 6, 7), 0), rois(9, 2, 12.0, 14.0, 1, torch.float32)
    maps, places = normal((2, 9, 7, 6), 2), windows(13, 2, 7, 6, 4, 3)
    levels, level_rois = pyramid(4, torch.float64), rois(7, 2, 64.0, 80.0, 5, torch.float64)
    level_grads = [
        normal((7, f.shape[1], h, w), i, torch.float64) for i, (f, h, w) in enumerate(zip(levels, [6, 4, 2], [5, 3, 2]))
    ]
    heights, widths = [f.shape[2] for f in levels], [f.shape[3] for f in levels]
    return {
        "roi_masking": (ops.roi_masking.default, (features.requires_grad_(True), regions, 0.5, 1 / 3, 2)),
        "roi_masking_empty": (ops.roi_masking.default, (features, regions[:0], 0.5, 1 / 3, 1)),
        "roi_masking_backward": (
            ops._roi_masking_backward.default,
            (normal((9, 3, 6, 7), 1).requires_grad_(True), regions, 0.5, 1 / 3, 2, 2),
        ),
        "assemble_instances": (ops.assemble_instances.default, (maps.requires_grad_(True), places, 4, 3)),
        "assemble_instances_empty": (ops.assemble_instances.default, (maps, places[:0], 4, 3)),
        "assemble_instances_backward": (
            ops._assemble_instances_backward.default,
            (normal((13, 4, 4), 4).requires_grad_(True), places, 4, 3, 2, 7, 6),
        ),
        # float64: the CUDA backward adds with atomics, and opcheck compares repeated runs.
        "multilevel_roi_align": (
            ops.multilevel_roi_align.default,
            ([level.requires_grad_(True) for level in levels], level_rois, SCALES, SIZES, 2, True),
        ),
        "multilevel_roi_align_empty": (
            ops.multilevel_roi_align.default,
            (levels, level_rois[:0], SCALES, SIZES, 2, True),
        ),
        "multilevel_roi_align_backward": (
            ops._multilevel_roi_align_backward.default,
            (level_grads, level_rois, SCALES, SIZES, -1, False, 2, heights, widths),
        ),
        "nms": (ops.nms.default, (boxes(300, 100.0, 100.0, 6), torch.rand(300, generator=generator(6)), 0.5)),
        "nms_empty": (ops.nms.default, (torch.zeros(0, 4), torch.zeros(0), 0.5)),
        "paste_masks": (
            ops.paste_masks.default,
            (torch.rand(3, 28, 28, generator=generator(7)), boxes(3, 20, 24, 7), 20, 24, 0.5),
        ),
        "paste_masks_empty": (ops.paste_masks.default, (torch.zeros(0, 28, 28), torch.zeros(0, 4), 20, 24, 0.5)),
        "upsample_masks": (
            ops.upsample_masks.default,
            (normal((3, 5, 7), 8, scale=4.0), [20, 28], [18, 27], [9, 13], 0.45),
        ),
        "upsample_masks_half": (
            ops.upsample_masks.default,
            (normal((2, 6, 5), 9, torch.float16, 4.0), [12, 10], [11, 10], [5, 5], 0.45),
        ),
        "upsample_masks_empty": (ops.upsample_masks.default, (torch.zeros(0, 5, 7), [20, 28], [18, 27], [9, 13], 0.45)),
        "resize_masks_in_boxes": (
            ops.resize_masks_in_boxes.default,
            (torch.rand(4, 5, 7, generator=generator(13)), boxes(4, 25, 33, 13), [40, 56], [36, 50], [25, 33], 0.5),
        ),
        "resize_masks_in_boxes_half": (
            ops.resize_masks_in_boxes.default,
            (torch.rand(3, 6, 5, generator=generator(14)).half(), boxes(3, 7, 7, 14), [48, 40], [41, 40], [7, 7], 0.5),
        ),
        "resize_masks_in_boxes_empty": (
            ops.resize_masks_in_boxes.default,
            (torch.zeros(0, 5, 7), torch.zeros(0, 4), [40, 56], [36, 50], [25, 33], 0.5),
        ),
        "resize_image": (ops.resize_image.default, (torch.randint(0, 256, (2, 7, 6, 3), dtype=torch.uint8), 13, 4)),
        "dice_cost": (ops.dice_cost.default, (normal((5, 64), 10), torch.rand(3, 64, generator=generator(10)) > 0.5)),
        "dice_cost_empty": (ops.dice_cost.default, (torch.zeros(0, 16), torch.zeros(3, 16))),
        "linear_sum_assignment": (ops.linear_sum_assignment.default, (normal((4, 6), 11, torch.float64), False)),
        "linear_sum_assignment_tall": (ops.linear_sum_assignment.default, (normal((6, 4), 12, torch.float64), True)),
    }


@pytest.mark.parametrize("case", list(opcheck_cases()))
def test_opcheck(cuda: str, case: str) -> None:
    op, args = opcheck_cases()[case]

    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().to(cuda).requires_grad_(value.requires_grad)
        if isinstance(value, list):
            return [move(item) for item in value]
        return value

    assert_opcheck(op, tuple(move(arg) for arg in args))


# ---------------------------------------------------------------------------------------------------- gradcheck on CUDA
@pytest.mark.parametrize("mode", ["binary", "expanded_binary", "ternary"])
def test_gradcheck_roi_masking(cuda: str, mode: str) -> None:
    features = normal((2, 2, 5, 6), 12, torch.float64).to(cuda).requires_grad_(True)
    regions = torch.tensor(
        [
            [1.0, 2.0, 1.0, 7.0, 6.0],
            [0.0, -3.0, -2.0, 4.0, 3.0],
            [1.0, 8.0, 6.0, 30.0, 30.0],
            [0.0, 0.0, 0.0, 11.0, 9.0],
        ],
        dtype=torch.float64,
        device=cuda,
    )
    assert torch.autograd.gradcheck(lambda f: roi_masking(f, regions, 0.5, 0.5, mode), (features,))
    assert torch.autograd.gradgradcheck(lambda f: roi_masking(f, regions, 0.5, 0.5, mode), (features,))


@pytest.mark.parametrize(("m", "k"), [(4, 2), (5, 2), (2, 3)])
def test_gradcheck_assemble_instances(cuda: str, m: int, k: int) -> None:
    maps = normal((2, k * k, 5, 6), 13, torch.float64).to(cuda).requires_grad_(True)
    places = torch.tensor([[1, 0, 0], [0, -2, 3], [1, 1, 1], [0, 3, -1], [1, 1, 2], [0, 9, 0]], device=cuda)
    assert torch.autograd.gradcheck(lambda s: assemble_instances(s, places, m, k), (maps,))
    assert torch.autograd.gradgradcheck(lambda s: assemble_instances(s, places, m, k), (maps,))


@pytest.mark.parametrize(("sampling_ratio", "aligned"), [(2, True), (-1, False)])
def test_gradcheck_multilevel_roi_align(cuda: str, sampling_ratio: int, aligned: bool) -> None:
    levels = [
        normal((2, c, 16 // s, 32 // s), s, torch.float64).to(cuda).requires_grad_(True) for c, s in ((3, 1), (2, 2))
    ]
    regions = rois(4, 2, 16.0, 32.0, 14, torch.float64).to(cuda)

    def pooled(*features: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(multilevel_roi_align(list(features), regions, [1.0, 0.5], [3, 2], sampling_ratio, aligned))

    # The CUDA backward adds with atomics: repeated backward passes agree only up to rounding.
    assert torch.autograd.gradcheck(pooled, tuple(levels), nondet_tol=1e-10)


# ---------------------------------------------------------------------------------------- determinism, streams, devices
def test_build_reports_archs_that_cover_this_gpu(cuda: str) -> None:
    from pysalient import _C

    assert _C.with_cuda, "pysalient._C says the CUDA kernels were not built"
    # "7.5 8.0 ... 9.0+PTX": native code for each listed arch, PTX (JIT-compiled for newer GPUs) for "+PTX" ones.
    archs = [entry for entry in _C.cuda_archs.replace(";", " ").split() if entry]
    assert archs, "pysalient._C reports no CUDA architectures"
    native = {tuple(int(part) for part in entry.split("+")[0].split(".")) for entry in archs}
    ptx = {tuple(int(part) for part in entry.split("+")[0].split(".")) for entry in archs if entry.endswith("+PTX")}
    capability = torch.cuda.get_device_capability(torch.device(cuda))
    assert capability in native or any(arch <= capability for arch in ptx), (capability, _C.cuda_archs)


def test_backward_kernels_without_atomics_are_bitwise_reproducible(cuda: str) -> None:
    regions = rois(200, 2, 40.0, 48.0, 15, torch.float32).to(cuda)
    grad = normal((200, 4, 10, 12), 16).to(cuda)
    first = ops._roi_masking_backward(grad, regions, 0.25, 1 / 3, 2, 2)
    assert all(torch.equal(first, ops._roi_masking_backward(grad, regions, 0.25, 1 / 3, 2, 2)) for _ in range(3))
    places = torch.cat([windows(150, 2, 9, 9, 5, 17), torch.tensor([[0, 1, 1]] * 50)]).to(cuda)
    grad = normal((200, 5, 5), 18).to(cuda)
    first = ops._assemble_instances_backward(grad, places, 5, 2, 2, 9, 9)
    assert all(torch.equal(first, ops._assemble_instances_backward(grad, places, 5, 2, 2, 9, 9)) for _ in range(3))


def test_atomic_backward_refuses_deterministic_mode(cuda: str) -> None:
    features, regions = pyramid(19, torch.float32), rois(5, 2, 64.0, 80.0, 19, torch.float32)
    grads = [torch.ones(5, f.shape[1], h, w, device=cuda) for f, h, w in zip(features, [6, 4, 2], [5, 3, 2])]
    args = (grads, regions.to(cuda), SCALES, SIZES, 2, True, 2, [16, 8, 4], [20, 10, 5])
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match="deterministic"):
            ops._multilevel_roi_align_backward(*args)
    finally:
        torch.use_deterministic_algorithms(previous)


def test_kernels_run_on_the_current_stream(cuda: str) -> None:
    features, regions = normal((2, 8, 40, 48), 20).to(cuda), rois(64, 2, 160.0, 192.0, 21, torch.float32).to(cuda)
    expected = ops.roi_masking(features, regions, 0.25, 1 / 3, 2)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        outputs = [ops.roi_masking(features, regions, 0.25, 1 / 3, 2) for _ in range(4)]
        masks = ops.paste_masks(torch.rand(16, 28, 28, device=cuda), boxes(16, 60, 80, 22).to(cuda), 60, 80, 0.5)
    torch.cuda.current_stream().wait_stream(side)
    assert all(torch.equal(output, expected) for output in outputs)
    assert masks.shape == (16, 60, 80)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_inputs_on_a_second_gpu(cuda: str) -> None:
    # The device guard: kernels must run on the inputs' device, not on the current one (cuda:0).
    features, regions = normal((2, 4, 10, 12), 23), rois(20, 2, 40.0, 48.0, 24, torch.float32)
    cases = [
        (ops.roi_masking, (features, regions, 0.25, 1 / 3, 2)),
        (
            ops.multilevel_roi_align,
            (pyramid(25, torch.float32), rois(10, 2, 64.0, 80.0, 26, torch.float32), SCALES, SIZES, 2, True),
        ),
        (ops.nms, (boxes(100, 50.0, 50.0, 27), torch.rand(100, generator=generator(27)), 0.5)),
        (ops.upsample_masks, (normal((3, 20, 28), 28, scale=4.0), [80, 112], [80, 107], [75, 100], 0.45)),
        (
            ops.resize_masks_in_boxes,
            (torch.rand(5, 10, 14, generator=generator(31)), boxes(5, 60, 90, 31), [80, 112], [80, 107], [60, 90], 0.5),
        ),
        (ops.resize_image, (torch.randint(0, 256, (30, 40, 3), dtype=torch.uint8), 17, 23)),
        (ops.dice_cost, (normal((6, 50), 29), torch.rand(4, 50, generator=generator(29)) > 0.5)),
        (ops.linear_sum_assignment, (normal((5, 7), 30), False)),
    ]
    for function, args in cases:
        on_first, on_second = function(*to("cuda:0", args)), function(*to("cuda:1", args))
        flat = list(on_second) if isinstance(on_second, (list, tuple)) else [on_second]
        assert all(t.device == torch.device("cuda:1") for t in flat)
        assert_close(to("cpu", on_second), to("cpu", on_first), **(EXACT if function is not ops.dice_cost else {}))
