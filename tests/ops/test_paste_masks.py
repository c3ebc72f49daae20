"""pysalient.ops.paste_masks: detectron2 paste semantics and maskrcnn-benchmark's Masker (legacy=True, against the
official fixture and a literal Masker), reference parity, edge cases, script and export."""

from __future__ import annotations

from typing import Tuple

import pytest
import torch
from torch import Tensor, nn

from pysalient.ops import PasteMasks, _reference, paste_masks
from tests.fixtures import load_fixture
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip

# Native sampling and the grid_sample reference round differently; a pixel may differ only where the reference
# sample is this close to the threshold.
SAMPLE_TOLERANCE = 1e-5


def random_masks(r: int, mh: int, mw: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.rand(r, mh, mw, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def random_boxes(r: int, height: int, width: int, seed: int) -> Tensor:
    """Boxes inside, across the border of and outside a height x width image, of every size down to < 1 px."""
    generator = torch.Generator().manual_seed(seed)
    size = torch.tensor([width, height], dtype=torch.float64)
    corners = torch.rand(r, 2, generator=generator, dtype=torch.float64) * size * 1.4 - 0.2 * size
    extents = torch.rand(r, 2, generator=generator, dtype=torch.float64) ** 2 * size * 0.8
    return torch.cat([corners, corners + extents], dim=1).float()


def assert_matches_reference(
    masks: Tensor, boxes: Tensor, height: int, width: int, threshold: float, device: str = "cpu"
) -> Tensor:
    """Pastes on ``device`` and compares with the CPU reference; returns the pasted masks on the CPU."""
    pasted = paste_masks(masks.to(device), boxes.to(device), height, width, threshold).cpu()
    samples = _reference.paste_mask_samples(masks, boxes, height, width)
    assert pasted.dtype == torch.uint8 and pasted.shape == (masks.shape[0], height, width)
    differing = pasted != (samples >= threshold).to(torch.uint8)
    near_threshold = (samples - threshold).abs() <= SAMPLE_TOLERANCE
    assert not (differing & ~near_threshold).any(), "pasted pixels differ away from the threshold"
    return pasted


@pytest.mark.parametrize(("mask_size", "height", "width"), [((28, 28), 60, 80), ((2, 2), 50, 50), ((5, 9), 33, 21)])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_matches_reference(mask_size: Tuple[int, int], height: int, width: int, threshold: float, device: str) -> None:
    masks = random_masks(25, *mask_size, seed=height)
    boxes = random_boxes(25, height, width, seed=width)
    pasted = assert_matches_reference(masks, boxes, height, width, threshold, device)
    assert pasted.any()


def test_hand_computed_two_by_two_mask(device: str) -> None:
    # A 2x2 mask of ones in the box [2, 6) x [2, 6) of an 8x8 image: cells are 2 px wide, so pixel x samples
    # u = (x + 0.5 - 2) / 2 - 0.5 = -0.75, -0.25, 0.25, 0.75, 1.25, 1.75 for x = 1..6, and the zero padding
    # weighs the sample down to 0.25, 0.75, 1, 1, 0.75, 0.25 along each axis.
    masks, boxes = torch.ones(1, 2, 2, device=device), torch.tensor([[2.0, 2.0, 6.0, 6.0]], device=device)
    inside = torch.zeros(8, 8, dtype=torch.uint8, device=device)
    inside[2:6, 2:6] = 1  # 0.75 * 0.75 = 0.5625 at the box corners
    assert torch.equal(paste_masks(masks, boxes, 8, 8, 0.5)[0], inside)
    assert torch.equal(paste_masks(masks, boxes, 8, 8, 0.3)[0], inside)  # 0.25 outside the box stays off
    centre = torch.zeros(8, 8, dtype=torch.uint8, device=device)
    centre[3:5, 3:5] = 1
    assert torch.equal(paste_masks(masks, boxes, 8, 8, 1.0)[0], centre)
    corners_off = inside.clone()
    corners_off[[2, 2, 5, 5], [2, 5, 2, 5]] = 0  # 0.5625 < 0.6 <= 0.75
    assert torch.equal(paste_masks(masks, boxes, 8, 8, 0.6)[0], corners_off)


def test_bilinear_tail_reaches_beyond_the_box_below_one_half(device: str) -> None:
    # Cells 8 px wide: half a cell of bilinear tail extends past the box, which only a threshold below 0.5 sees.
    masks, boxes = torch.ones(1, 2, 2, device=device), torch.tensor([[0.0, 0.0, 16.0, 16.0]], device=device)
    u = (torch.arange(20, dtype=torch.float64) + 0.5) / 16 * 2 - 0.5
    weight = torch.minimum(u + 1, 2 - u).clamp(0, 1)  # all-ones mask with zero padding
    expected = weight[:, None] * weight[None, :]
    for threshold in (0.5, 0.3):
        pasted = paste_masks(masks, boxes, 20, 20, threshold)[0].cpu()
        assert torch.equal(pasted, (expected >= threshold).to(torch.uint8))
    assert paste_masks(masks, boxes, 20, 20, 0.3)[0, 5, 16:].tolist() == [1, 1, 0, 0]  # x = 16, 17 lie outside
    assert paste_masks(masks, boxes, 20, 20, 0.5)[0, 5, 15:].tolist() == [1, 0, 0, 0, 0]


def test_degenerate_and_off_image_boxes(device: str) -> None:
    masks = torch.ones(6, 4, 4)
    boxes = torch.tensor(
        [
            [5.0, 5.0, 5.0, 9.0],  # zero width
            [5.0, 9.0, 9.0, 2.0],  # negative height
            [float("nan"), 1.0, 4.0, 4.0],  # not finite
            [-30.0, -30.0, -20.0, -20.0],  # fully off the image
            [12.0, -3.0, 30.0, 4.0],  # partly off the image
            [3.2, 3.3, 3.7, 3.6],  # smaller than a pixel
        ]
    )
    pasted = assert_matches_reference(masks, boxes, 16, 16, 0.5, device)
    assert pasted[:4].sum() == 0
    # Cells of the partly visible box are 4.5 x 1.75 px: its border pixels sample below 0.5 (e.g. 0.61 * 0.79).
    assert pasted[4, :4, 13:].all() and pasted[4, 4:].sum() == 0 and pasted[4, :, :12].sum() == 0
    # A sub-pixel box still sets the one pixel whose centre (3.5, 3.5) it covers.
    assert pasted[5].nonzero().tolist() == [[3, 3]]


def test_empty_inputs(device: str) -> None:
    empty = paste_masks(torch.zeros(0, 28, 28, device=device), torch.zeros(0, 4, device=device), 30, 40)
    assert empty.shape == (0, 30, 40) and empty.device.type == device
    boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0]] * 2, device=device)
    assert paste_masks(torch.ones(2, 28, 28, device=device), boxes, 0, 40).shape == (2, 0, 40)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes(dtype: torch.dtype, device: str) -> None:
    masks = random_masks(10, 14, 14, seed=1, dtype=dtype)
    assert_matches_reference(masks, random_boxes(10, 40, 50, seed=2), 40, 50, 0.5, device)


def test_non_contiguous_inputs(device: str) -> None:
    masks = random_masks(8, 28, 28, seed=3).to(device).transpose(1, 2)
    boxes = torch.cat([random_boxes(8, 45, 45, seed=4), torch.zeros(8, 3)], dim=1).to(device)[:, :4]
    assert not masks.is_contiguous() and not boxes.is_contiguous()
    expected = paste_masks(masks.contiguous(), boxes.contiguous(), 45, 45)
    assert torch.equal(paste_masks(masks, boxes, 45, 45), expected)
    assert_matches_reference(masks.cpu(), boxes.cpu(), 45, 45, 0.5, device)


def test_large_image_keeps_sub_pixel_precision(device: str) -> None:
    # Pixel coordinates in the thousands with small boxes: positions are formed in float64.
    masks = random_masks(2, 28, 28, seed=5)
    boxes = torch.tensor([[3001.3, 20.2, 3013.9, 31.1], [3070.0, 10.5, 3099.0, 19.0]], dtype=torch.float64)
    assert assert_matches_reference(masks, boxes, 40, 3100, 0.5, device).any()
    assert assert_matches_reference(masks, boxes[:, [1, 0, 3, 2]], 3100, 40, 0.5, device).any()


@pytest.mark.parametrize(
    ("r", "mask_size", "threshold"), [(3, (28, 28), 0.5), (2, (5, 7), 0.3), (1, (1, 1), 1.0), (0, (28, 28), 0.5)]
)
def test_opcheck(r: int, mask_size: Tuple[int, int], threshold: float) -> None:
    masks, boxes = random_masks(r, *mask_size, seed=6), random_boxes(r, 20, 24, seed=7)
    assert_opcheck(torch.ops.pysalient.paste_masks.default, (masks, boxes, 20, 24, threshold))


@pytest.mark.parametrize(
    ("masks", "boxes", "height", "threshold", "message"),
    [
        (torch.zeros(3, 28), torch.zeros(3, 4), 10, 0.5, r"masks must be a 3-D tensor \[R, Mh, Mw\]"),
        (torch.zeros(3, 28, 28, dtype=torch.uint8), torch.zeros(3, 4), 10, 0.5, "floating-point"),
        (torch.zeros(3, 28, 28), torch.zeros(3, 5), 10, 0.5, r"boxes must have shape \[R, 4\]"),
        (torch.zeros(3, 28, 28), torch.zeros(2, 4), 10, 0.5, "masks has 3 RoIs but boxes has 2 rows"),
        (torch.zeros(3, 0, 28), torch.zeros(3, 4), 10, 0.5, "at least 1x1"),
        (torch.zeros(3, 28, 28), torch.zeros(3, 4), -1, 0.5, "non-negative"),
        (torch.zeros(3, 28, 28), torch.zeros(3, 4), 10, 0.0, r"threshold must be in \(0, 1\]"),
        (torch.zeros(3, 28, 28), torch.zeros(3, 4), 10, 1.5, r"threshold must be in \(0, 1\]"),
    ],
)
def test_bad_inputs_raise(
    masks: Tensor, boxes: Tensor, height: int, threshold: float, message: str, device: str
) -> None:
    with pytest.raises(RuntimeError, match=f"pysalient::paste_masks: .*{message}"):
        paste_masks(masks.to(device), boxes.to(device), height, 12, threshold)


def test_torchscript_round_trip() -> None:
    masks, boxes = random_masks(6, 28, 28, seed=8), random_boxes(6, 30, 40, seed=9)
    loaded = scripted_round_trip(PasteMasks(0.4))
    assert torch.equal(loaded(masks, boxes, 30, 40), paste_masks(masks, boxes, 30, 40, 0.4))


class PasteIntoImage(nn.Module):
    """Pastes RoI masks at the size of the image they belong to (image size and RoI count are dynamic)."""

    def forward(self, masks: Tensor, boxes: Tensor, image: Tensor) -> Tensor:
        return paste_masks(masks, boxes, image.shape[0], image.shape[1], 0.5)


def test_torch_export_with_dynamic_sizes() -> None:
    count = torch.export.Dim("count")
    height, width = torch.export.Dim("height", min=2, max=4096), torch.export.Dim("width", min=2, max=4096)
    module = PasteIntoImage()
    args = (random_masks(7, 28, 28, seed=10), random_boxes(7, 30, 40, seed=11), torch.zeros(30, 40, 3))
    program = exported_module(module, args, dynamic_shapes=({0: count}, {0: count}, {0: height, 1: width}))
    other = (random_masks(3, 28, 28, seed=12), random_boxes(3, 57, 23, seed=13), torch.zeros(57, 23, 3))
    assert torch.equal(program(*other), module(*other))


# -------------------------------------------------------------------- legacy: maskrcnn-benchmark's Masker
# F.interpolate's CPU kernel is built with FMA contraction for AVX2/AVX512; the legacy kernels reproduce those
# FMAs explicitly, so bit-exact parity with the Masker reference (which calls F.interpolate) needs such a build.
needs_fma_interpolate = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="F.interpolate rounds without FMAs on this CPU capability",
)


def legacy_boxes(r: int, height: int, width: int, seed: int) -> Tensor:
    """Boxes of every size (zero, sub-pixel, larger than the image) and place, coordinates on a 0.1 px grid."""
    boxes = random_boxes(r, height, width, seed)
    boxes[::7, 2:] = boxes[::7, :2]  # zero-size boxes
    return (boxes * 10).round() / 10


def test_legacy_matches_the_official_masker_fixture(device: str) -> None:
    # RDPNET.md §8: Masker(0.5, 1) on boxes left of/above/past the image, 1-pixel, sub-pixel, zero-size and
    # zero-width boxes, enlarged coordinates in (-1, 0) (truncation, not floor, changes 214 pixels there).
    case = load_fixture("rdpnet_modules_official.pt")["masker"]
    height, width = case["image_hw"]
    masks = paste_masks(case["mask_prob"][:, 0].to(device), case["boxes"].to(device), height, width, 0.5, True, 1)
    assert torch.equal(masks.cpu(), case["masks"].to(torch.uint8))


@needs_fma_interpolate
@pytest.mark.parametrize(("size", "padding", "height", "width"), [(32, 1, 57, 83), (28, 1, 90, 140), (14, 2, 40, 30)])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_legacy_matches_the_masker_reference_bit_for_bit(
    size: int, padding: int, height: int, width: int, threshold: float, device: str
) -> None:
    masks = random_masks(40, size, size, seed=size)
    # Half the masks within a few float32 ulps of the threshold (some exactly at it): there the resized values
    # round across the threshold unless every operation is F.interpolate's (a float64 resize flips ~15 %).
    noise = random_masks(20, size, size, seed=size + 1) - 0.5
    masks[::2] = (threshold + noise * 4e-7).float().double()
    masks[::4, ::3] = threshold
    boxes = legacy_boxes(40, height, width, seed=height)
    pasted = paste_masks(masks.to(device), boxes.to(device), height, width, threshold, legacy=True, padding=padding)
    expected = _reference.paste_masks_masker(masks, boxes, height, width, threshold, padding)
    assert pasted.dtype == torch.uint8 and torch.equal(pasted.cpu(), expected)
    assert pasted.any()


def test_legacy_hand_computed_box(device: str) -> None:
    # A 2x2 mask of ones, padding 1: the 4x4 padded map is resized to the integer box enlarged by 4 / 2 = 2 about
    # its centre: (2, 2, 6, 6) -> half 2 * 2 = 4 about 4 -> (0, 0, 8, 8), 9 x 9 pixels. The resized value at
    # output i is the 1-D profile p(i) squared (rows times columns): source u = 4 / 9 * (i + 0.5) - 0.5.
    masks, boxes = torch.ones(1, 2, 2, device=device), torch.tensor([[2.0, 2.0, 6.0, 6.0]], device=device)
    u = (4.0 / 9.0 * (torch.arange(9, dtype=torch.float64) + 0.5) - 0.5).clamp(min=0)
    padded = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    low = u.floor().long().clamp(max=3)
    profile = padded[low] * (1 - (u - low)) + padded[(low + 1).clamp(max=3)] * (u - low)
    expected = torch.zeros(10, 10, dtype=torch.uint8)
    expected[:9, :9] = (profile[:, None] * profile[None, :] > 0.5).to(torch.uint8)
    assert torch.equal(paste_masks(masks, boxes, 10, 10, 0.5, legacy=True)[0].cpu(), expected)
    # Truncation toward zero: an enlarged corner at -0.5 becomes 0 (floor would give -1 and shift the mask).
    shifted = torch.tensor([[0.25, 0.25, 2.0, 2.0]], device=device)  # -> (-0.625, -0.625, 2.875, 2.875) -> (0, 0, 2, 2)
    pasted = paste_masks(masks, shifted, 5, 5, 0.0, legacy=True)[0].cpu()
    assert pasted[:3, :3].all() and pasted.sum() == 9


def test_legacy_zero_size_box_pastes_one_pixel_and_degenerate_boxes_nothing(device: str) -> None:
    masks = torch.ones(4, 4, 4, device=device)
    boxes = torch.tensor(
        [[5.5, 6.5, 5.5, 6.5], [9.0, 9.0, 2.0, 2.0], [float("nan"), 0.0, 3.0, 3.0], [-40.0, 1.0, -20.0, 5.0]],
        device=device,
    )
    pasted = paste_masks(masks, boxes, 12, 12, 0.5, legacy=True).cpu()
    assert pasted[0].nonzero().tolist() == [[6, 5]]
    assert pasted[1:].sum() == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_legacy_other_dtypes_are_pasted_in_float32(dtype: torch.dtype, device: str) -> None:
    masks, boxes = random_masks(10, 16, 16, seed=3, dtype=dtype), legacy_boxes(10, 40, 50, seed=4)
    expected = paste_masks(masks.float(), boxes, 40, 50, 0.5, legacy=True)
    assert torch.equal(paste_masks(masks.to(device), boxes.to(device), 40, 50, 0.5, legacy=True).cpu(), expected)
    assert torch.equal(paste_masks(masks.float(), boxes.double(), 40, 50, 0.5, legacy=True), expected)


def test_legacy_empty_inputs(device: str) -> None:
    empty = paste_masks(torch.zeros(0, 28, 28, device=device), torch.zeros(0, 4, device=device), 30, 40, legacy=True)
    assert empty.shape == (0, 30, 40) and empty.device.type == device
    boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0]], device=device)
    assert paste_masks(torch.ones(1, 28, 28, device=device), boxes, 30, 0, legacy=True).shape == (1, 30, 0)


@pytest.mark.parametrize(("r", "threshold", "padding"), [(3, 0.5, 1), (2, 0.0, 0), (0, 0.5, 1)])
def test_opcheck_legacy(r: int, threshold: float, padding: int) -> None:
    masks, boxes = random_masks(r, 12, 12, seed=6), legacy_boxes(r, 20, 24, seed=7)
    assert_opcheck(torch.ops.pysalient.paste_masks.default, (masks, boxes, 20, 24, threshold, True, padding))


@pytest.mark.parametrize(
    ("masks", "threshold", "padding", "message"),
    [
        (torch.zeros(3, 28, 14), 0.5, 1, r"legacy \(Masker\) pasting needs square masks"),
        (torch.zeros(3, 28, 28), 1.5, 1, r"threshold must be in \[0, 1\] with legacy=True"),
        (torch.zeros(3, 28, 28), -0.1, 1, r"threshold must be in \[0, 1\] with legacy=True"),
        (torch.zeros(3, 28, 28), 0.5, -1, "padding must be non-negative"),
    ],
)
def test_legacy_bad_inputs_raise(masks: Tensor, threshold: float, padding: int, message: str, device: str) -> None:
    with pytest.raises(RuntimeError, match=f"pysalient::paste_masks: .*{message}"):
        paste_masks(masks.to(device), torch.zeros(3, 4, device=device), 10, 12, threshold, True, padding)


def test_legacy_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="legacy must be a bool"):
        paste_masks(torch.zeros(1, 4, 4), torch.zeros(1, 4), 5, 5, 0.5, legacy=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="legacy must be a bool"):
        PasteMasks(0.5, legacy="yes")  # type: ignore[arg-type]


def test_legacy_torchscript_and_export() -> None:
    masks, boxes = random_masks(6, 28, 28, seed=8), legacy_boxes(6, 30, 40, seed=9)
    loaded = scripted_round_trip(PasteMasks(0.5, legacy=True, padding=1))
    expected = paste_masks(masks, boxes, 30, 40, 0.5, legacy=True)
    assert torch.equal(loaded(masks, boxes, 30, 40), expected)
    count = torch.export.Dim("count")
    shapes = ({0: count}, {0: count}, None, None)
    program = exported_module(PasteMasks(0.5, legacy=True), (masks, boxes, 30, 40), dynamic_shapes=shapes)
    assert torch.equal(program(masks[:3], boxes[:3], 30, 40), expected[:3])
