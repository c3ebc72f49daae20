"""pysalient.ops.nms / batched_nms: torchvision and legacy (maskrcnn-benchmark) semantics, reference parity, the
official FCOS keep, script and export (with a data-dependent candidate count)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pysalient.ops import NMS, _reference, batched_nms, nms
from tests.fixtures import load_fixture
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip


def random_boxes(n: int, seed: int, dtype: torch.dtype = torch.float32, size: float = 100.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size
    extents = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size * 0.3
    return torch.cat([corners, corners + extents], dim=1).to(dtype)


def random_scores(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed + 1000), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_opcheck(n: int) -> None:
    assert_opcheck(torch.ops.pysalient.nms.default, (random_boxes(n, n), random_scores(n, n), 0.5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_matches_reference(dtype: torch.dtype, threshold: float, seed: int, device: str) -> None:
    boxes, scores = random_boxes(500, seed, dtype), random_scores(500, seed, dtype)
    keep = nms(boxes.to(device), scores.to(device), threshold)
    assert keep.device.type == device
    torch.testing.assert_close(keep.cpu(), _reference.nms(boxes, scores, threshold))


def test_threshold_is_strict_and_no_plus_one(device: str) -> None:
    # IoU of these two boxes is exactly 0.5 without the legacy +1 (it would be 8/12 with it).
    boxes = torch.tensor([[0.0, 0.0, 3.0, 1.0], [1.0, 0.0, 4.0, 1.0]], device=device)
    scores = torch.tensor([0.9, 0.8], device=device)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.49).tolist() == [0]


def test_ties_keep_the_lower_index_first(device: str) -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]], device=device)
    scores = torch.tensor([0.5, 0.5, 0.5], device=device)
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]


def test_degenerate_boxes_are_never_suppressed(device: str) -> None:
    # Zero-area boxes have IoU 0/0 = NaN with each other; NaN > threshold is false, so both stay.
    boxes = torch.tensor([[5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 10.0, 10.0]], device=device)
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    assert nms(boxes, scores, 0.1).tolist() == [0, 1, 2]
    assert _reference.nms(boxes, scores, 0.1).tolist() == [0, 1, 2]


@pytest.mark.parametrize("legacy", [False, True])
def test_nan_and_inverted_inputs_are_tolerated_as_documented(legacy: bool, device: str) -> None:
    nan = float("nan")
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, nan, 10], [20, 20, 10, 10], [0, 0, 10, 10.0]], device=device
    )
    scores = torch.tensor([0.9, 0.8, 0.95, 0.7, nan], device=device)
    # the NaN score sorts first and suppresses the boxes it overlaps (0 and 1); the NaN box and the inverted box stay
    assert nms(boxes, scores, 0.5, legacy).tolist() == [4, 2, 3]
    assert _reference.nms(boxes.cpu(), scores.cpu(), 0.5, legacy).tolist() == [4, 2, 3]


def test_keep_is_sorted_by_score_and_suppresses_overlaps(device: str) -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]], device=device)
    scores = torch.tensor([0.2, 0.9, 0.5], device=device)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]


def test_non_contiguous_inputs(device: str) -> None:
    wide = torch.cat([random_boxes(200, 3), torch.zeros(200, 4)], dim=1).to(device)[:, :4]
    scores = random_scores(400, 3).to(device)[::2]
    assert not wide.is_contiguous() and not scores.is_contiguous()
    torch.testing.assert_close(nms(wide, scores, 0.4), nms(wide.contiguous(), scores.contiguous(), 0.4))


def test_half_precision_is_accepted(device: str) -> None:
    boxes, scores = random_boxes(100, 5).half(), random_scores(100, 5).half()
    torch.testing.assert_close(nms(boxes.to(device), scores.to(device), 0.5).cpu(), _reference.nms(boxes, scores, 0.5))


@pytest.mark.parametrize("num_boxes", [40, 1500])  # below and above the per-category switch (N > 1000 on CPU)
def test_batched_nms_never_suppresses_across_categories(num_boxes: int, device: str) -> None:
    boxes, scores = random_boxes(num_boxes, 11), random_scores(num_boxes, 11)
    idxs = torch.randint(0, 4, (num_boxes,), generator=torch.Generator().manual_seed(2))
    keep = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), 0.5).cpu()
    expected = []
    for category in range(4):
        members = torch.where(idxs == category)[0]
        expected.append(members[_reference.nms(boxes[members], scores[members], 0.5)])
    expected = torch.cat(expected)
    assert sorted(keep.tolist()) == sorted(expected.tolist())
    assert torch.all(scores[keep][:-1] >= scores[keep][1:])
    # Identical boxes in two categories are both kept.
    twin = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]], device=device)
    twin_scores, twin_idxs = torch.tensor([0.9, 0.8], device=device), torch.tensor([0, 1], device=device)
    assert batched_nms(twin, twin_scores, twin_idxs, 0.5).tolist() == [0, 1]


def test_batched_nms_empty(device: str) -> None:
    empty_idxs = torch.zeros(0, dtype=torch.int64, device=device)
    keep = batched_nms(torch.zeros(0, 4, device=device), torch.zeros(0, device=device), empty_idxs, 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64 and keep.device.type == device


@pytest.mark.parametrize(
    ("boxes", "scores", "message"),
    [
        (torch.zeros(3, 5), torch.zeros(3), "boxes must have shape"),
        (torch.zeros(3, 4), torch.zeros(4), "scores has 4 entries"),
        (torch.zeros(3, 4), torch.zeros(3, 1), "scores must be a 1-D"),
        (torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3), "floating-point"),
    ],
)
def test_bad_inputs_raise(boxes: torch.Tensor, scores: torch.Tensor, message: str, device: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        nms(boxes.to(device), scores.to(device), 0.5)


def test_torchscript_round_trip() -> None:
    boxes, scores = random_boxes(100, 7), random_scores(100, 7)
    idxs = torch.randint(0, 3, (100,), generator=torch.Generator().manual_seed(0))
    loaded = scripted_round_trip(NMS(0.45))
    torch.testing.assert_close(loaded(boxes, scores), nms(boxes, scores, 0.45))
    torch.testing.assert_close(loaded(boxes, scores, idxs), batched_nms(boxes, scores, idxs, 0.45))


def test_torch_export_with_dynamic_box_count() -> None:
    boxes, scores = random_boxes(100, 8), random_scores(100, 8)
    count = torch.export.Dim("count")
    program = exported_module(NMS(0.45), (boxes, scores), dynamic_shapes=({0: count}, {0: count}))
    other_boxes, other_scores = random_boxes(37, 9), random_scores(37, 9)
    torch.testing.assert_close(program(other_boxes, other_scores), nms(other_boxes, other_scores, 0.45))


# ------------------------------------------------------------------------- legacy (maskrcnn-benchmark) semantics
@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_opcheck_legacy(n: int) -> None:
    assert_opcheck(torch.ops.pysalient.nms.default, (random_boxes(n, n), random_scores(n, n), 0.5, True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.6, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_legacy_matches_reference(dtype: torch.dtype, threshold: float, seed: int, device: str) -> None:
    # Small boxes (a few pixels), where the +1 changes most IoUs.
    boxes, scores = random_boxes(400, seed, dtype, size=30.0), random_scores(400, seed, dtype)
    keep = nms(boxes.to(device), scores.to(device), threshold, legacy=True)
    assert keep.device.type == device
    torch.testing.assert_close(keep.cpu(), _reference.nms(boxes, scores, threshold, legacy=True))


def test_legacy_suppresses_at_exact_threshold_with_plus_one(device: str) -> None:
    # With +1: widths 4 and 4, intersection 3 x 2 = 6, union 8 + 8 - 6 = 10, IoU exactly 0.6 (in float32 too:
    # 6 / 10 rounds to float32(0.6)). Without +1 the IoU is 2 / 4 = 0.5.
    boxes = torch.tensor([[0.0, 0.0, 3.0, 1.0], [1.0, 0.0, 4.0, 1.0]], device=device)
    scores = torch.tensor([0.9, 0.8], device=device)
    assert nms(boxes, scores, 0.6, legacy=True).tolist() == [0]  # IoU >= 0.6 suppresses
    assert nms(boxes, scores, 0.6).tolist() == [0, 1]  # torchvision: 0.5 > 0.6 is false
    assert nms(boxes, scores, 0.61, legacy=True).tolist() == [0, 1]
    # torchvision at its own exact threshold (IoU 0.5) keeps both; legacy at 0.5 suppresses (0.6 >= 0.5).
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.5, legacy=True).tolist() == [0]


def test_legacy_plus_one_matters_for_small_boxes(device: str) -> None:
    # Two 1-pixel-wide boxes side by side: no overlap without +1 (touching edges), IoU 1/3 with +1
    # ((x2 - x1 + 1) = 2 columns each, one shared column).
    boxes = torch.tensor([[10.0, 10.0, 11.0, 11.0], [11.0, 10.0, 12.0, 11.0]], device=device)
    scores = torch.tensor([0.5, 0.7], device=device)
    assert nms(boxes, scores, 0.3).tolist() == [1, 0]
    assert nms(boxes, scores, 0.3, legacy=True).tolist() == [1]
    assert nms(boxes, scores, 0.34, legacy=True).tolist() == [1, 0]
    # Zero-area boxes are one pixel in the legacy convention: identical ones suppress each other (IoU 1).
    points = torch.tensor([[5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0]], device=device)
    assert nms(points, scores, 0.9, legacy=True).tolist() == [1]
    assert nms(points, scores, 0.9).tolist() == [1, 0]  # NaN IoU never suppresses


def test_legacy_keep_is_in_score_order_and_sorts_to_the_official_order(device: str) -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [1.0, 1.0, 11.0, 11.0]], device=device)
    scores = torch.tensor([0.2, 0.5, 0.9], device=device)
    keep = nms(boxes, scores, 0.5, legacy=True)
    assert keep.tolist() == [2, 1]
    assert keep.sort().values.tolist() == [1, 2]  # maskrcnn-benchmark's ascending original index order


def test_legacy_reproduces_the_official_fcos_postprocessing_keep() -> None:
    # RDPNET.md §8: the official FCOSPostProcessor's NMS (IoU 0.6, +1, >=) on its 1141 pre-NMS boxes; its keep
    # is in ascending index order. Includes a hand-placed pair with IoU 0.576 without +1 and 0.635 with it.
    case = load_fixture("rdpnet_modules_official.pt")["fcos_postproc"]
    boxes, scores = case["pre_nms"]["boxes"], case["pre_nms"]["scores"]
    keep = nms(boxes, scores, 0.6, legacy=True)
    torch.testing.assert_close(keep.sort().values, case["nms_keep"], rtol=0, atol=0)
    assert not torch.equal(nms(boxes, scores, 0.6).sort().values, case["nms_keep"])
    # One category (label 1): the offset trick shifts every box by the same amount, the same decisions here.
    labels = case["pre_nms"]["labels"]
    torch.testing.assert_close(batched_nms(boxes, scores, labels, 0.6, legacy=True).sort().values, case["nms_keep"])


def test_batched_nms_legacy_never_suppresses_across_categories(device: str) -> None:
    boxes, scores = random_boxes(60, 4, size=20.0), random_scores(60, 4)
    idxs = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(5))
    keep = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), 0.5, legacy=True).cpu()
    expected = torch.cat(
        [
            members[_reference.nms(boxes[members], scores[members], 0.5, True)]
            for members in (torch.where(idxs == c)[0] for c in range(3))
        ]
    )
    assert sorted(keep.tolist()) == sorted(expected.tolist())
    # Touching 1-pixel boxes in two categories overlap with +1; the offsets must still keep them apart.
    twin = torch.tensor([[0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 2.0, 1.0]], device=device)
    twin_scores, twin_idxs = torch.tensor([0.9, 0.8], device=device), torch.tensor([0, 1], device=device)
    assert batched_nms(twin, twin_scores, twin_idxs, 0.1, legacy=True).tolist() == [0, 1]


@pytest.mark.parametrize("legacy", [1, "yes", None])
def test_legacy_must_be_a_bool(legacy: object) -> None:
    boxes, scores = random_boxes(5, 0), random_scores(5, 0)
    with pytest.raises(ValueError, match="legacy must be a bool"):
        nms(boxes, scores, 0.5, legacy=legacy)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="legacy must be a bool"):
        batched_nms(boxes, scores, torch.zeros(5, dtype=torch.int64), 0.5, legacy=legacy)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="legacy must be a bool"):
        NMS(0.5, legacy=legacy)  # type: ignore[arg-type]


def test_torchscript_round_trip_legacy() -> None:
    boxes, scores = random_boxes(100, 7, size=30.0), random_scores(100, 7)
    idxs = torch.randint(0, 3, (100,), generator=torch.Generator().manual_seed(0))
    loaded = scripted_round_trip(NMS(0.45, legacy=True))
    torch.testing.assert_close(loaded(boxes, scores), nms(boxes, scores, 0.45, legacy=True))
    torch.testing.assert_close(loaded(boxes, scores, idxs), batched_nms(boxes, scores, idxs, 0.45, legacy=True))


# ------------------------------------------------------------------ batched_nms with a data-dependent count
class ThresholdThenBatchedNMS(nn.Module):
    """Candidates selected by a score threshold (an unbacked size under export), then per-category NMS."""

    def __init__(self, legacy: bool) -> None:
        super().__init__()
        self.legacy = legacy

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        candidates = torch.nonzero(scores > 0.3).squeeze(1)
        keep = batched_nms(boxes[candidates], scores[candidates], labels[candidates], 0.5, self.legacy)
        return candidates[keep]


@pytest.mark.parametrize("legacy", [False, True])
def test_batched_nms_exports_with_a_data_dependent_candidate_count(legacy: bool) -> None:
    module = ThresholdThenBatchedNMS(legacy)

    def inputs(n: int, seed: int, score_scale: float = 1.0):
        labels = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(seed))
        return random_boxes(n, seed), random_scores(n, seed) * score_scale, labels

    count = torch.export.Dim("count", min=1)
    program = exported_module(module, inputs(200, 0), dynamic_shapes=({0: count}, {0: count}, {0: count}))
    cases = [inputs(200, 1), inputs(57, 2), inputs(1, 3), inputs(30, 4, score_scale=0.25), inputs(300, 5)]
    for boxes, scores, labels in cases:
        expected = module(boxes, scores, labels)
        torch.testing.assert_close(program(boxes, scores, labels), expected, rtol=0, atol=0)
    boxes, scores, labels = cases[3]
    assert module(boxes, scores, labels).numel() == 0  # zero candidates: every score <= 0.25


def test_batched_nms_scripts_without_data_dependent_branches() -> None:
    scripted = torch.jit.script(batched_nms)
    boxes, scores = random_boxes(50, 12), random_scores(50, 12)
    idxs = torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(scripted(boxes, scores, idxs, 0.5, False), batched_nms(boxes, scores, idxs, 0.5))
    empty = scripted(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5, True)
    assert empty.shape == (0,) and empty.dtype == torch.int64


@pytest.mark.parametrize("iou_threshold", [-0.1, 1.5, float("nan")])
def test_iou_threshold_outside_0_1_is_refused(iou_threshold: float) -> None:
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0]])
    scores = torch.tensor([0.9, 0.8])
    with pytest.raises(RuntimeError, match=r"iou_threshold must be in \[0, 1\]"):
        torch.ops.pysalient.nms(boxes, scores, iou_threshold, False)
    for threshold in (0.0, 1.0):  # the bounds are allowed
        assert torch.ops.pysalient.nms(boxes, scores, threshold, False).shape[0] in (1, 2)


@pytest.mark.parametrize("idxs_length", [1, 3])
def test_batched_nms_names_mismatched_idxs(idxs_length: int) -> None:
    from pysalient import ops

    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0]])
    with pytest.raises(RuntimeError, match=r"batched_nms: boxes \[N, 4\], scores \[N\] and idxs \[N\] must"):
        ops.batched_nms(boxes, torch.tensor([0.9, 0.8]), torch.zeros(idxs_length, dtype=torch.int64), 0.5)
