"""pysalient.ops.upsample_masks: SparseInst post-processing parity (reference and official fixture), script, export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
from torch import Tensor, nn

from pysalient.ops import UpsampleMasks, _reference, upsample_masks
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip

REPOSITORY = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("PYSALIENT_FIXTURES", REPOSITORY.parent / "shared" / "fixtures"))
SPARSEINST_FIXTURE = FIXTURES / "sparseinst_r50_giam_official.pt"

# Native probabilities compose both resizes into one map and may differ from the two-stage reference by float
# rounding; a pixel may flip only where the reference probability is this close to the threshold.
PROBABILITY_TOLERANCE = 1e-5

# (decoder h, w), padded_hw, image_hw, output_hw
SIZES = {
    "sparseinst_quarter_resolution": ((20, 28), [80, 112], [80, 107], [75, 100]),
    "odd_sizes_mixed_scales": ((7, 9), [13, 17], [11, 17], [30, 5]),
    "padded_equals_image_equals_output": ((10, 10), [40, 40], [40, 40], [40, 40]),
    "output_smaller_than_image": ((16, 16), [64, 64], [50, 33], [20, 13]),
    "no_first_upsampling": ((12, 8), [12, 8], [12, 8], [5, 3]),
    "padded_smaller_than_decoder_map": ((5, 6), [3, 4], [2, 4], [9, 9]),
}


def random_logits(n: int, h: int, w: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Wide logits put probabilities all over (0, 1), so every threshold cuts through the masks.
    return (torch.randn(n, h, w, generator=generator, dtype=torch.float64) * 4).to(dtype)


def assert_matches_reference(
    logits: Tensor,
    padded_hw: List[int],
    image_hw: List[int],
    output_hw: List[int],
    threshold: float,
    device: str = "cpu",
) -> None:
    """Runs the op on ``device`` and compares with the CPU reference."""
    outputs = upsample_masks(logits.to(device), padded_hw, image_hw, output_hw, threshold)
    assert all(output.device.type == device for output in outputs)
    masks, boxes, maskness = (output.cpu() for output in outputs)
    ref_masks, ref_boxes, ref_maskness = _reference.upsample_masks(logits, padded_hw, image_hw, output_hw, threshold)
    compute = torch.float64 if logits.dtype == torch.float64 else torch.float32
    probabilities = _reference.upsample_mask_probabilities(logits.to(compute), padded_hw, image_hw, output_hw)
    assert masks.dtype == torch.uint8 and masks.shape == ref_masks.shape
    assert boxes.dtype == compute and maskness.dtype == compute
    differing = masks != ref_masks
    near_threshold = (probabilities - threshold).abs() <= PROBABILITY_TOLERANCE
    assert not (differing & ~near_threshold).any(), "mask pixels differ away from the threshold"
    # Boxes are exactly the tight boxes of the returned masks (and the reference's where the masks agree).
    torch.testing.assert_close(boxes, _reference.mask_boxes(masks.bool()).to(compute), atol=0, rtol=0)
    same = ~differing.flatten(1).any(1)
    torch.testing.assert_close(boxes[same], ref_boxes[same], atol=0, rtol=0)
    torch.testing.assert_close(maskness, ref_maskness, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("threshold", [0.1, 0.45, 0.9])
def test_matches_reference(size: str, threshold: float, device: str) -> None:
    (h, w), padded_hw, image_hw, output_hw = SIZES[size]
    assert_matches_reference(random_logits(6, h, w, seed=h * w), padded_hw, image_hw, output_hw, threshold, device)


def test_probabilities_agree_at_every_threshold(device: str) -> None:
    # The op returns binary masks only; sweeping the threshold pins the native probability of every pixel
    # to within the tolerance of the reference (a pixel agrees at all thresholds farther away than that).
    (h, w), padded_hw, image_hw, output_hw = SIZES["sparseinst_quarter_resolution"]
    logits = random_logits(2, h, w, seed=1)
    probabilities = _reference.upsample_mask_probabilities(logits, padded_hw, image_hw, output_hw)
    for threshold in torch.linspace(0.002, 0.998, 250).tolist():
        masks = upsample_masks(logits.to(device), padded_hw, image_hw, output_hw, threshold)[0].cpu()
        expected = probabilities > torch.tensor(threshold, dtype=torch.float32)
        near_threshold = (probabilities - threshold).abs() <= PROBABILITY_TOLERANCE
        assert not ((masks.bool() != expected) & ~near_threshold).any(), threshold


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes(dtype: torch.dtype, device: str) -> None:
    (h, w), padded_hw, image_hw, output_hw = SIZES["odd_sizes_mixed_scales"]
    logits = random_logits(4, h, w, seed=2, dtype=dtype)
    assert_matches_reference(logits, padded_hw, image_hw, output_hw, 0.45, device)


def test_empty_and_single_mask(device: str) -> None:
    empty = torch.zeros(0, 20, 28, device=device)
    masks, boxes, maskness = upsample_masks(empty, [80, 112], [80, 107], [75, 100], 0.45)
    assert masks.shape == (0, 75, 100) and masks.dtype == torch.uint8 and masks.device.type == device
    assert boxes.shape == (0, 4) and boxes.dtype == torch.float32
    assert maskness.shape == (0,) and maskness.dtype == torch.float32
    assert_matches_reference(random_logits(1, 20, 28, seed=3), [80, 112], [80, 107], [75, 100], 0.45, device)


def test_non_contiguous_logits(device: str) -> None:
    logits = random_logits(5, 28, 20, seed=4).to(device).transpose(1, 2)
    assert not logits.is_contiguous()
    expected = upsample_masks(logits.contiguous(), [80, 112], [80, 107], [75, 100], 0.45)
    for got, want in zip(upsample_masks(logits, [80, 112], [80, 107], [75, 100], 0.45), expected):
        assert torch.equal(got, want)
    strided = random_logits(6, 20, 56, seed=5).to(device)[:, :, ::2]
    assert_matches_reference(strided, [80, 112], [80, 107], [75, 100], 0.45, device)


def test_hand_computed_masks_boxes_and_maskness(device: str) -> None:
    # One confident pixel in a 2x2 map, upsampled 2x (no padding): along each axis the output samples sit at
    # input positions 0 (clamped), 0.25, 0.75, 1.25, so the weights of pixel 0 are 1, 3/4, 1/4, 0.
    p = torch.sigmoid(torch.tensor(10.0)).item()
    q = torch.sigmoid(torch.tensor(-10.0)).item()
    logits = torch.tensor([[[10.0, -10.0], [-10.0, -10.0]]], device=device)
    profile = torch.tensor([1.0, 0.75, 0.25, 0.0], dtype=torch.float64)
    expected_probabilities = profile[:, None] * profile[None, :] * (p - q) + q
    for threshold, box in ((0.5, [0.0, 0.0, 2.0, 2.0]), (0.7, [0.0, 0.0, 2.0, 2.0]), (0.8, [0.0, 0.0, 1.0, 1.0])):
        masks, boxes, maskness = upsample_masks(logits, [2, 2], [2, 2], [4, 4], threshold)
        assert masks[0].tolist() == (expected_probabilities > threshold).to(torch.uint8).tolist()
        assert boxes[0].tolist() == box
        # Only the confident pixel is above threshold at decoder resolution.
        assert maskness[0].item() == pytest.approx(p / (1 + 1e-6), abs=1e-7)
    # 0.7 keeps the 3 pixels of weight >= 3/4 but not the diagonal one of weight 9/16.
    assert upsample_masks(logits, [2, 2], [2, 2], [4, 4], 0.7)[0][0, :2, :2].tolist() == [[1, 1], [1, 0]]
    # An empty mask has a zero box and zero maskness; a full one spans the output.
    masks, boxes, maskness = upsample_masks(torch.full((2, 3, 3), -5.0, device=device), [6, 6], [5, 4], [7, 9], 0.5)
    assert masks.sum() == 0 and boxes.abs().sum() == 0 and maskness.abs().sum() == 0
    masks, boxes, maskness = upsample_masks(torch.full((1, 3, 3), 5.0, device=device), [6, 6], [5, 4], [7, 9], 0.5)
    assert masks.all() and boxes[0].tolist() == [0.0, 0.0, 9.0, 7.0]
    assert maskness[0].item() == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item(), abs=1e-6)


@pytest.fixture(scope="module")
def sparseinst_fixture() -> Dict[str, Dict[str, Tensor]]:
    if not SPARSEINST_FIXTURE.is_file():
        pytest.skip(f"golden fixture {SPARSEINST_FIXTURE} not found (set PYSALIENT_FIXTURES to its folder)")
    return torch.load(SPARSEINST_FIXTURE, weights_only=True, mmap=True)


def test_golden_sparseinst_post_processing(sparseinst_fixture: Dict[str, Dict[str, Tensor]], device: str) -> None:
    decoder, instances = sparseinst_fixture["decoder"], sparseinst_fixture["instances"]
    # Decoder masks are at 1/4 of the padded 320x448 input; the resized image is 320x427, the original 300x400.
    logits = decoder["pred_masks"][0].to(device)
    masks, boxes, maskness = (t.cpu() for t in upsample_masks(logits, [320, 448], [320, 427], [300, 400], 0.45))
    expected = instances["pred_masks"]
    assert masks.shape == expected.shape == (100, 300, 400)
    differing = (masks.bool() != expected).sum().item()
    assert differing <= 1e-4 * expected.numel(), f"{differing} mask pixels differ"
    # Every query passes the 0.005 score threshold, so all 100 are kept in query order (README §3).
    class_scores = torch.sqrt(decoder["pred_logits"][0].sigmoid() * decoder["pred_scores"][0].sigmoid())
    scores = class_scores.max(dim=1).values * maskness
    torch.testing.assert_close(scores, instances["scores"], atol=1e-5, rtol=0)
    torch.testing.assert_close(boxes, _reference.mask_boxes(masks.bool()).float(), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("shape", "sizes", "dtype"),
    [
        ((3, 5, 7), ([20, 28], [18, 27], [9, 13]), torch.float32),
        ((2, 4, 4), ([4, 4], [4, 4], [7, 3]), torch.float64),
        ((2, 6, 5), ([12, 10], [11, 10], [5, 5]), torch.float16),
        ((0, 5, 7), ([20, 28], [18, 27], [9, 13]), torch.float32),
    ],
)
def test_opcheck(
    shape: Tuple[int, int, int], sizes: Tuple[List[int], List[int], List[int]], dtype: torch.dtype
) -> None:
    logits = random_logits(*shape, seed=6, dtype=dtype)
    assert_opcheck(torch.ops.pysalient.upsample_masks.default, (logits, *sizes, 0.45))


@pytest.mark.parametrize(
    ("logits", "padded_hw", "image_hw", "output_hw", "message"),
    [
        (torch.zeros(5, 7), [8, 8], [8, 8], [8, 8], r"mask_logits must be a 3-D tensor \[N, h, w\]"),
        (torch.zeros(2, 5, 7, dtype=torch.int64), [8, 8], [8, 8], [8, 8], "floating-point"),
        (torch.zeros(2, 0, 7), [8, 8], [8, 8], [8, 8], r"non-empty \[h, w\] map"),
        (torch.zeros(2, 5, 7), [8, 8], [9, 8], [8, 8], "must be at least image_hw"),
        (torch.zeros(2, 5, 7), [8, 8], [0, 8], [8, 8], "image_hw must be at least 1x1"),
        (torch.zeros(2, 5, 7), [8, 8], [8, 8], [8, 0], "output_hw must be at least 1x1"),
    ],
)
def test_bad_inputs_raise(
    logits: Tensor, padded_hw: List[int], image_hw: List[int], output_hw: List[int], message: str, device: str
) -> None:
    with pytest.raises(RuntimeError, match=f"pysalient::upsample_masks: .*{message}"):
        upsample_masks(logits.to(device), padded_hw, image_hw, output_hw, 0.45)


def test_size_lists_must_hold_two_entries(device: str) -> None:
    logits = torch.zeros(1, 4, 4, device=device)
    with pytest.raises(ValueError, match="must each hold 2 sizes"):
        upsample_masks(logits, [8, 8, 8], [8, 8], [8, 8], 0.45)
    with pytest.raises(RuntimeError, match=r"pysalient::upsample_masks: padded_hw must hold 2 sizes \(height, width\)"):
        torch.ops.pysalient.upsample_masks(logits, [8, 8, 8], [8, 8], [8, 8], 0.45)


def test_torchscript_round_trip() -> None:
    loaded = scripted_round_trip(UpsampleMasks(0.45))
    logits = random_logits(4, 20, 28, seed=7)
    for got, want in zip(
        loaded(logits, [80, 112], [80, 107], [75, 100]),
        upsample_masks(logits, [80, 112], [80, 107], [75, 100], 0.45),
    ):
        assert torch.equal(got, want)


class SparseInstMasks(nn.Module):
    """Masks at the original image size from decoder logits at 1/4 of the padded input; every size is dynamic."""

    def forward(self, mask_logits: Tensor, resized: Tensor, original: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        padded_hw = [mask_logits.shape[1] * 4, mask_logits.shape[2] * 4]
        image_hw = [resized.shape[0], resized.shape[1]]
        output_hw = [original.shape[0], original.shape[1]]
        return upsample_masks(mask_logits, padded_hw, image_hw, output_hw, 0.45)


def test_torch_export_with_dynamic_sizes() -> None:
    count, h, w = (
        torch.export.Dim("count"),
        torch.export.Dim("h", min=2, max=512),
        torch.export.Dim("w", min=2, max=512),
    )
    image_h, image_w = torch.export.Dim("image_h", min=2, max=2048), torch.export.Dim("image_w", min=2, max=2048)
    out_h, out_w = torch.export.Dim("out_h", min=2, max=4096), torch.export.Dim("out_w", min=2, max=4096)
    module = SparseInstMasks()
    args = (random_logits(5, 20, 28, seed=8), torch.zeros(80, 107, 3), torch.zeros(75, 100, 3))
    program = exported_module(
        module, args, dynamic_shapes=({0: count, 1: h, 2: w}, {0: image_h, 1: image_w}, {0: out_h, 1: out_w})
    )
    other = (random_logits(3, 10, 12, seed=9), torch.zeros(40, 37, 3), torch.zeros(61, 55, 3))
    for got, want in zip(program(*other), module(*other)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("threshold", [-0.1, 1.0, 1.5, float("nan")])
def test_threshold_outside_0_1_is_refused_as_by_paste_masks(threshold: float) -> None:
    with pytest.raises(RuntimeError, match=r"threshold must be in \[0, 1\)"):
        torch.ops.pysalient.upsample_masks(torch.randn(1, 4, 4), [8, 8], [8, 8], [8, 8], threshold)
