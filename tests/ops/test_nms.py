"""pysalient.ops.nms / batched_nms: torchvision semantics, reference parity, script and export."""

from __future__ import annotations

import pytest
import torch

from pysalient.ops import NMS, _reference, batched_nms, nms
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
