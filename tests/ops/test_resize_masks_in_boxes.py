"""pysalient.ops.resize_masks_in_boxes: S4Net's test-time mask step (hand-computed cases, reference parity,
F.interpolate equivalence, box edge cases, dtypes, bad inputs), opcheck, script and export."""

from __future__ import annotations

from typing import List, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.ops import ResizeMasksInBoxes, _reference, resize_masks_in_boxes
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip

# F.interpolate forms its positions in float32 (and may contract to FMAs): a pixel may differ from the op's only
# where the interpolated probability is this close to the threshold.
PROBABILITY_TOLERANCE = 1e-5
NAN = float("nan")
INF = float("inf")

# (map h, w), padded_hw, image_hw, output_hw
SIZES = {
    "s4net_stride8_map": ((40, 56), [320, 448], [320, 427], [300, 400]),
    "non_square_padded": ((9, 13), [72, 104], [60, 97], [45, 71]),
    "output_smaller_than_map": ((30, 40), [30, 40], [24, 37], [11, 13]),
    "image_equals_padded": ((10, 12), [80, 96], [80, 96], [37, 53]),
    "one_by_one_map": ((1, 1), [8, 8], [5, 8], [7, 3]),
    "one_pixel_output": ((5, 6), [40, 48], [33, 48], [1, 1]),
}


def random_probabilities(n: int, h: int, w: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.rand(n, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def random_boxes(n: int, height: int, width: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Boxes inside, across the border of and fully off a height x width image, plus degenerate, inverted, NaN and
    infinite ones (n >= 12)."""
    generator = torch.Generator().manual_seed(seed)
    size = torch.tensor([width, height], dtype=torch.float64)
    corners = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size * 1.4 - 0.2 * size
    extents = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size * 0.8
    boxes = torch.cat([corners, corners + extents], dim=1)
    boxes[0] = torch.tensor([-3.0, -2.0, width + 5.0, height + 7.0])  # covers the image
    boxes[1] = torch.tensor([width + 1.0, 0.0, width + 9.0, height - 1.0])  # right of the image
    boxes[2] = torch.tensor([1.3, -9.0, 4.2, -2.5])  # above the image
    boxes[3] = torch.tensor([0.4, 0.7, 0.4, 0.7])  # a point: one pixel
    boxes[4] = torch.tensor([width - 1.5, 0.0, width - 1.5, height * 2.0])  # x1 == x2: one column
    boxes[5] = torch.tensor([5.0, 4.0, 2.0, 9.0])  # inverted columns
    boxes[6] = torch.tensor([NAN, 1.0, 5.0, 5.0])
    boxes[7] = torch.tensor([1.0, 1.0, 5.0, NAN])
    boxes[8] = torch.tensor([-INF, -INF, INF, INF])
    boxes[9] = torch.tensor([-INF, 0.0, 2.5, INF])
    boxes[10] = torch.tensor([INF, 0.0, INF, 3.0])
    boxes[11] = torch.tensor([-0.5, -0.5, width - 0.01, height - 0.01])
    return boxes.to(dtype)


def assert_matches_reference(
    probabilities: Tensor,
    boxes: Tensor,
    padded_hw: List[int],
    image_hw: List[int],
    output_hw: List[int],
    threshold: float,
    device: str = "cpu",
) -> Tensor:
    """Runs the op on ``device``; both devices evaluate the reference's arithmetic, so the masks agree exactly."""
    masks = resize_masks_in_boxes(probabilities.to(device), boxes.to(device), padded_hw, image_hw, output_hw, threshold)
    assert masks.device.type == device and masks.dtype == torch.uint8
    masks = masks.cpu()
    expected = _reference.resize_masks_in_boxes(probabilities, boxes, padded_hw, image_hw, output_hw, threshold)
    assert masks.shape == expected.shape == (probabilities.shape[0], *output_hw)
    assert torch.equal(masks, expected)
    return masks


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.9])
def test_matches_reference(size: str, threshold: float, device: str) -> None:
    (h, w), padded_hw, image_hw, output_hw = SIZES[size]
    probabilities = random_probabilities(20, h, w, seed=h * w)
    boxes = random_boxes(20, *output_hw, seed=h + w)
    masks = assert_matches_reference(probabilities, boxes, padded_hw, image_hw, output_hw, threshold, device)
    # Nothing is ever set outside the box rectangles.
    assert not (masks.bool() & ~_reference.box_rectangles(boxes, output_hw)).any()
    if threshold <= 0.5 and output_hw != [1, 1]:
        assert masks.any()


def test_box_rectangles_edge_cases(device: str) -> None:
    height, width = 9, 11
    boxes = random_boxes(12, height, width, seed=1)
    masks = resize_masks_in_boxes(torch.ones(12, 3, 4, device=device), boxes.to(device), [6, 8], [5, 8], [9, 11], 0.5)
    masks = masks.cpu()
    pixels = [mask.nonzero().tolist() for mask in masks]
    assert masks[0].all() and masks[8].all()
    assert not masks[1].any() and not masks[2].any() and not masks[5].any()
    assert not masks[6].any() and not masks[7].any() and not masks[10].any()  # NaN corners, +inf x1
    assert pixels[3] == [[0, 0]]  # a point box at (0.4, 0.7) covers pixel (0, 0)
    assert pixels[4] == [[y, width - 2] for y in range(height)]  # x1 == x2 == 9.5: the one column 9
    assert masks[9][:, :3].all() and not masks[9][:, 3:].any()  # columns floor(-inf) .. floor(2.5)
    assert masks[11].all()  # floor(-0.5) = -1 clipped to 0, floor(W - 0.01) + 1 = W


def test_hand_computed_upsampling(device: str) -> None:
    # A 2x2 map, no padding, 4x4 output: rows and columns sample the map at 0 (clamped), 0.25, 0.75, 1.25 -> the
    # first map row/column weighs 1, 3/4, 1/4, 0 (the last position clamps to the last map cell).
    probabilities = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]], device=device)
    profile = torch.tensor([1.0, 0.75, 0.25, 0.0])
    expected = profile[:, None] * profile[None, :]
    samples = _reference.resized_probabilities(probabilities.cpu(), [2, 2], [2, 2], [4, 4])
    assert torch.equal(samples[0], expected)
    whole = torch.tensor([[0.0, 0.0, 3.0, 3.0]], device=device)
    masks = resize_masks_in_boxes(probabilities, whole, [2, 2], [2, 2], [4, 4], 0.5)
    assert masks[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # 0.7 keeps the weights >= 3/4 but not the diagonal 9/16.
    masks = resize_masks_in_boxes(probabilities, whole, [2, 2], [2, 2], [4, 4], 0.7)
    assert masks[0].tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # A zero-width box at x = 1.0 is the single column 1, here on row 0 only.
    point = torch.tensor([[1.0, 0.0, 1.0, 0.0]], device=device)
    masks = resize_masks_in_boxes(probabilities, point, [2, 2], [2, 2], [4, 4], 0.5)
    assert masks[0].nonzero().tolist() == [[0, 1]]


def test_hand_computed_padded_map(device: str) -> None:
    # The 2x2 map covers a 4x4 padded input whose top-left 2x2 is the image, resized to 4x4: scale (2/4)(2/4) = 1/4,
    # positions (y + 0.5) / 4 - 0.5 = 0 (clamped), 0 (clamped), 0.125, 0.375 -> weights 1, 1, 7/8, 5/8 of map cell 0.
    probabilities = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]] * 2, device=device)
    profile = torch.tensor([1.0, 1.0, 0.875, 0.625])
    samples = _reference.resized_probabilities(probabilities.cpu(), [4, 4], [2, 2], [4, 4])
    assert torch.equal(samples[0], profile[:, None] * profile[None, :])
    boxes = torch.tensor([[0.0, 0.0, 3.9, 3.9], [1.5, 0.2, 2.9, 2.0]], device=device)
    masks = resize_masks_in_boxes(probabilities, boxes, [4, 4], [2, 2], [4, 4], 0.6)
    # 5/8 > 0.6 > 7/8 * 5/8: the corner of the whole-image box drops out.
    assert masks[0].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
    # Columns floor(1.5) = 1 .. floor(2.9) = 2, rows floor(0.2) = 0 .. floor(2.0) = 2.
    assert masks[1].tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("map_hw", "output_hw"), [((7, 9), (30, 41)), ((20, 28), (75, 100)), ((32, 24), (13, 17)), ((5, 5), (5, 5))]
)
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_equals_interpolate_without_padding(
    map_hw: Tuple[int, int], output_hw: Tuple[int, int], threshold: float, device: str
) -> None:
    # image_hw == padded_hw: the map covers exactly the image, so the op is F.interpolate + box cut + threshold.
    probabilities = random_probabilities(12, *map_hw, seed=sum(output_hw))
    boxes = random_boxes(12, *output_hw, seed=map_hw[0])
    padded = [map_hw[0] * 8, map_hw[1] * 8]
    masks = resize_masks_in_boxes(
        probabilities.to(device), boxes.to(device), padded, padded, list(output_hw), threshold
    )
    interpolated = F.interpolate(probabilities[:, None], size=output_hw, mode="bilinear", align_corners=False)[:, 0]
    expected = (interpolated > threshold) & _reference.box_rectangles(boxes, output_hw)
    near_threshold = (interpolated - threshold).abs() <= PROBABILITY_TOLERANCE
    assert not ((masks.cpu().bool() != expected) & ~near_threshold).any()


def test_equals_crop_then_interpolate_inside_the_image_cells(device: str) -> None:
    # hi / Hp * h = 40 / 80 * 10 = 5 map rows and wi / Wp * w = 72 / 96 * 12 = 9 map columns cover the image:
    # resampling from them is F.interpolate of the cropped map, except where a position passes the centre of the
    # last image cell (4 along y, 8 along x): there the op blends in the next map cell (upper index
    # min(lower + 1, h - 1)) while the crop repeats its last cell.
    probabilities = random_probabilities(10, 10, 12, seed=2)
    boxes = random_boxes(12, 31, 45, seed=3)[:10]
    masks = resize_masks_in_boxes(probabilities.to(device), boxes.to(device), [80, 96], [40, 72], [31, 45], 0.5)
    cropped = probabilities[:, None, :5, :9]
    interpolated = F.interpolate(cropped, size=(31, 45), mode="bilinear", align_corners=False)[:, 0]
    expected = (interpolated > 0.5) & _reference.box_rectangles(boxes, (31, 45))
    near_threshold = (interpolated - 0.5).abs() <= PROBABILITY_TOLERANCE
    sy = (torch.arange(31, dtype=torch.float64) + 0.5) * (5 / 31) - 0.5
    sx = (torch.arange(45, dtype=torch.float64) + 0.5) * (9 / 45) - 0.5
    inside = (sy <= 4)[:, None] & (sx <= 8)[None, :]
    assert inside.sum() < inside.numel()
    differing = (masks.cpu().bool() != expected) & ~near_threshold
    assert not (differing & inside).any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes(dtype: torch.dtype, device: str) -> None:
    (h, w), padded_hw, image_hw, output_hw = SIZES["non_square_padded"]
    probabilities = random_probabilities(15, h, w, seed=4, dtype=dtype)
    # Boxes of any floating dtype: float16 boxes are exact in float64.
    for box_dtype in (dtype, torch.float32, torch.float64):
        boxes = random_boxes(15, *output_hw, seed=5, dtype=box_dtype)
        assert_matches_reference(probabilities, boxes, padded_hw, image_hw, output_hw, 0.5, device)


def test_reduced_precision_interpolates_in_float32(device: str) -> None:
    (h, w), padded_hw, image_hw, output_hw = SIZES["image_equals_padded"]
    half = random_probabilities(12, h, w, seed=6, dtype=torch.float16)
    boxes = random_boxes(12, *output_hw, seed=7)
    masks = resize_masks_in_boxes(half.to(device), boxes.to(device), padded_hw, image_hw, output_hw, 0.5).cpu()
    assert torch.equal(masks, resize_masks_in_boxes(half.float(), boxes, padded_hw, image_hw, output_hw, 0.5))


def test_empty_and_single_mask(device: str) -> None:
    empty = resize_masks_in_boxes(
        torch.zeros(0, 40, 56, device=device), torch.zeros(0, 4, device=device), [320, 448], [320, 427], [300, 400]
    )
    assert empty.shape == (0, 300, 400) and empty.dtype == torch.uint8 and empty.device.type == device
    (h, w), padded_hw, image_hw, output_hw = SIZES["s4net_stride8_map"]
    probabilities = random_probabilities(1, h, w, seed=8)
    box = torch.tensor([[35.2, 60.9, 250.1, 199.5]])
    assert assert_matches_reference(probabilities, box, padded_hw, image_hw, output_hw, 0.5, device).any()


def test_non_contiguous_inputs(device: str) -> None:
    (h, w), padded_hw, image_hw, output_hw = SIZES["non_square_padded"]
    probabilities = random_probabilities(12, w, h, seed=9).to(device).transpose(1, 2)
    boxes = torch.cat([random_boxes(12, *output_hw, seed=10), torch.zeros(12, 3)], dim=1).to(device)[:, :4]
    assert not probabilities.is_contiguous() and not boxes.is_contiguous()
    expected = resize_masks_in_boxes(probabilities.contiguous(), boxes.contiguous(), padded_hw, image_hw, output_hw)
    assert torch.equal(resize_masks_in_boxes(probabilities, boxes, padded_hw, image_hw, output_hw), expected)
    strided = random_probabilities(24, h, 2 * w, seed=11)[::2, :, ::2]
    assert not strided.is_contiguous()
    assert_matches_reference(strided, boxes.cpu(), padded_hw, image_hw, output_hw, 0.5, device)


def test_inputs_requiring_grad_return_plain_masks(device: str) -> None:
    probabilities = random_probabilities(3, 6, 7, seed=12).to(device).requires_grad_(True)
    boxes = random_boxes(12, 20, 24, seed=13)[:3].to(device).requires_grad_(True)
    masks = resize_masks_in_boxes(probabilities, boxes, [48, 56], [40, 56], [20, 24], 0.5)
    assert masks.dtype == torch.uint8 and not masks.requires_grad
    expected = resize_masks_in_boxes(probabilities.detach(), boxes.detach(), [48, 56], [40, 56], [20, 24], 0.5)
    assert torch.equal(masks, expected)


@pytest.mark.parametrize(
    ("n", "map_hw", "sizes", "dtype"),
    [
        (4, (5, 7), ([40, 56], [36, 50], [25, 33]), torch.float32),
        (3, (4, 4), ([4, 4], [4, 4], [9, 6]), torch.float64),
        (2, (6, 5), ([48, 40], [41, 40], [7, 7]), torch.float16),
        (0, (5, 7), ([40, 56], [36, 50], [25, 33]), torch.float32),
    ],
)
def test_opcheck(
    n: int, map_hw: Tuple[int, int], sizes: Tuple[List[int], List[int], List[int]], dtype: torch.dtype
) -> None:
    probabilities = random_probabilities(n, *map_hw, seed=14, dtype=dtype)
    boxes = random_boxes(12, *sizes[2], seed=15, dtype=dtype)[:n]
    assert_opcheck(torch.ops.pysalient.resize_masks_in_boxes.default, (probabilities, boxes, *sizes, 0.5))


def test_opcheck_with_inputs_requiring_grad() -> None:
    probabilities = random_probabilities(3, 5, 7, seed=16).requires_grad_(True)
    boxes = random_boxes(12, 25, 33, seed=17)[:3]
    args = (probabilities, boxes, [40, 56], [36, 50], [25, 33], 0.5)
    assert_opcheck(torch.ops.pysalient.resize_masks_in_boxes.default, args)


GOOD = (torch.zeros(2, 5, 7), torch.zeros(2, 4), [40, 56], [36, 50], [25, 33], 0.5)


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (0, torch.zeros(5, 7), r"probabilities must be a 3-D tensor \[N, h, w\]"),
        (0, torch.zeros(2, 5, 7, dtype=torch.uint8), "probabilities must be a floating-point tensor"),
        (0, torch.zeros(2, 0, 7), r"probabilities must have a non-empty \[h, w\] map"),
        (1, torch.zeros(2, 5), r"boxes must have shape \[N, 4\]"),
        (1, torch.zeros(2, 4, dtype=torch.int64), "boxes must be a floating-point tensor"),
        (1, torch.zeros(3, 4), "probabilities has 2 masks but boxes has 3 rows"),
        (2, [40, 49], "padded_hw .* must be at least image_hw"),
        (3, [0, 50], "image_hw must be at least 1x1"),
        (4, [25, 0], "output_hw must be at least 1x1"),
        (5, float("nan"), r"threshold must be a finite value in \[0, 1\)"),
        (5, 1.0, r"threshold must be a finite value in \[0, 1\)"),
        (5, -0.1, r"threshold must be a finite value in \[0, 1\)"),
        (5, float("inf"), r"threshold must be a finite value in \[0, 1\)"),
    ],
)
def test_bad_inputs_raise(index: int, value: object, message: str, device: str) -> None:
    args = list(GOOD)
    args[index] = value
    args = [arg.to(device) if isinstance(arg, Tensor) else arg for arg in args]
    with pytest.raises(RuntimeError, match=f"pysalient::resize_masks_in_boxes: .*{message}"):
        torch.ops.pysalient.resize_masks_in_boxes(*args)
    with pytest.raises(RuntimeError, match=f"pysalient::resize_masks_in_boxes: .*{message}"):
        resize_masks_in_boxes(*args)


def test_reference_rejects_bad_inputs_with_value_errors() -> None:
    for index, value, message in ((5, float("nan"), "threshold"), (1, torch.zeros(3, 4), "boxes has 3 rows")):
        args = list(GOOD)
        args[index] = value
        with pytest.raises(ValueError, match=f"resize_masks_in_boxes: .*{message}"):
            _reference.resize_masks_in_boxes(*args)


def test_meta_and_cpu_tensors_do_not_mix() -> None:
    probabilities, boxes = GOOD[0], GOOD[1]
    for first, second in ((probabilities, boxes.to("meta")), (probabilities.to("meta"), boxes)):
        with pytest.raises(RuntimeError, match="resize_masks_in_boxes: all tensor arguments must be on one device"):
            resize_masks_in_boxes(first, second, *GOOD[2:])
    # All-meta inputs are shape propagation.
    masks = resize_masks_in_boxes(probabilities.to("meta"), boxes.to("meta"), *GOOD[2:])
    assert masks.device.type == "meta" and masks.shape == (2, 25, 33) and masks.dtype == torch.uint8


def test_cuda_and_cpu_tensors_do_not_mix(cuda: str) -> None:
    with pytest.raises(RuntimeError, match="pysalient::resize_masks_in_boxes: boxes is on cpu but probabilities"):
        resize_masks_in_boxes(GOOD[0].to(cuda), GOOD[1], *GOOD[2:])


def test_size_lists_must_hold_two_entries() -> None:
    probabilities, boxes = GOOD[0], GOOD[1]
    with pytest.raises(ValueError, match="must each hold 2 sizes"):
        resize_masks_in_boxes(probabilities, boxes, [40, 56, 1], [36, 50], [25, 33])
    with pytest.raises(RuntimeError, match=r"pysalient::resize_masks_in_boxes: output_hw must hold 2 sizes"):
        torch.ops.pysalient.resize_masks_in_boxes(probabilities, boxes, [40, 56], [36, 50], [25], 0.5)


class S4NetMasks(nn.Module):
    """Masks at the original image size from stride-8 maps of the padded input; every size is dynamic."""

    def __init__(self) -> None:
        super().__init__()
        self.resize = ResizeMasksInBoxes(0.5)

    def forward(self, probabilities: Tensor, boxes: Tensor, resized: Tensor, original: Tensor) -> Tensor:
        padded_hw = [probabilities.shape[1] * 8, probabilities.shape[2] * 8]
        image_hw = [resized.shape[0], resized.shape[1]]
        output_hw = [original.shape[0], original.shape[1]]
        return self.resize(probabilities, boxes, padded_hw, image_hw, output_hw)


def test_torchscript_round_trip() -> None:
    loaded = scripted_round_trip(S4NetMasks())
    probabilities, boxes = random_probabilities(12, 10, 14, seed=18), random_boxes(12, 60, 90, seed=19)
    resized, original = torch.zeros(80, 107, 3), torch.zeros(60, 90, 3)
    expected = resize_masks_in_boxes(probabilities, boxes, [80, 112], [80, 107], [60, 90], 0.5)
    assert torch.equal(loaded(probabilities, boxes, resized, original), expected)
    assert "threshold=0.5" in repr(ResizeMasksInBoxes())


def test_torch_export_with_dynamic_sizes() -> None:
    count = torch.export.Dim("count")
    h, w = torch.export.Dim("h", min=2, max=512), torch.export.Dim("w", min=2, max=512)
    image_h, image_w = torch.export.Dim("image_h", min=2, max=4096), torch.export.Dim("image_w", min=2, max=4096)
    out_h, out_w = torch.export.Dim("out_h", min=2, max=4096), torch.export.Dim("out_w", min=2, max=4096)
    module = S4NetMasks()
    args = (
        random_probabilities(12, 10, 14, seed=20),
        random_boxes(12, 60, 90, seed=21),
        torch.zeros(80, 107, 3),
        torch.zeros(60, 90, 3),
    )
    program = exported_module(
        module,
        args,
        dynamic_shapes=({0: count, 1: h, 2: w}, {0: count}, {0: image_h, 1: image_w}, {0: out_h, 1: out_w}),
    )
    other = (
        random_probabilities(13, 6, 9, seed=22),
        random_boxes(13, 41, 37, seed=23),
        torch.zeros(48, 70, 3),
        torch.zeros(41, 37, 3),
    )
    assert torch.equal(program(*other), module(*other))
