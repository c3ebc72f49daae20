"""SparseInst matcher: scipy's optimum on an independently computed score, edge cases, errors naming the image."""

from __future__ import annotations

import warnings
from typing import Dict, List, Tuple

import pytest
import scipy.optimize
import torch
import torch.nn.functional as F

from pysalient.models.sparseinst import matcher as matcher_module
from pysalient.models.sparseinst.matcher import SparseInstMatcher, resize_target_masks

Targets = List[Dict[str, torch.Tensor]]


def random_batch(
    counts: List[int], *, queries: int = 20, classes: int = 3, mask_hw: Tuple[int, int] = (16, 16), seed: int = 0
) -> Tuple[Dict[str, torch.Tensor], Targets]:
    """Random predictions and targets; odd images have image-size masks smaller than the padded input."""
    generator = torch.Generator().manual_seed(seed)
    batch = len(counts)
    outputs = {
        "pred_logits": torch.randn(batch, queries, classes, generator=generator),
        "pred_masks": 3 * torch.randn(batch, queries, *mask_hw, generator=generator),
        "pred_scores": torch.randn(batch, queries, 1, generator=generator),
    }
    height, width = 4 * mask_hw[0], 4 * mask_hw[1]
    targets = []
    for index, count in enumerate(counts):
        size = (height - 9, width - 5) if index % 2 else (height, width)
        targets.append(
            {
                "labels": torch.randint(0, classes, (count,), generator=generator),
                "masks": torch.rand(count, *size, generator=generator) > 0.6,
            }
        )
    return outputs, targets


def expected_scores(outputs: Dict[str, torch.Tensor], targets: Targets, index: int) -> torch.Tensor:
    """The official score D^0.8 * p^0.2 of one image, written out from the paper's formulas (float64)."""
    masks = targets[index]["masks"].double()
    mask_hw = outputs["pred_masks"].shape[-2:]
    canvas = torch.zeros(masks.shape[0], 4 * mask_hw[0], 4 * mask_hw[1], dtype=torch.float64)
    canvas[:, : masks.shape[1], : masks.shape[2]] = masks
    resized = F.interpolate(canvas[:, None], size=tuple(mask_hw), mode="bilinear", align_corners=False)[:, 0]
    target = resized.flatten(1)
    probability = outputs["pred_masks"][index].double().flatten(1).sigmoid()
    dice = 2 * probability @ target.T / ((probability**2).sum(1)[:, None] + (target**2).sum(1)[None, :] + 1e-4)
    class_probability = outputs["pred_logits"][index].double().sigmoid()[:, targets[index]["labels"]]
    return dice**0.8 * class_probability**0.2


def assert_valid(rows: torch.Tensor, cols: torch.Tensor, queries: int, count: int) -> None:
    assert rows.dtype == cols.dtype == torch.int64 and rows.device.type == "cpu"
    assert rows.shape == cols.shape == (min(queries, count),)
    assert len(set(rows.tolist())) == rows.numel() and len(set(cols.tolist())) == cols.numel()
    assert all(0 <= row < queries for row in rows.tolist()) and all(0 <= col < count for col in cols.tolist())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_have_the_scipy_optimum(seed: int) -> None:
    counts = [5, 0, 12, 20]
    outputs, targets = random_batch(counts, seed=seed)
    matches = SparseInstMatcher()(outputs, targets)
    assert len(matches) == len(counts)
    for index, ((rows, cols), count) in enumerate(zip(matches, counts)):
        assert_valid(rows, cols, 20, count)
        if count == 0:
            continue
        scores = expected_scores(outputs, targets, index)
        best_rows, best_cols = scipy.optimize.linear_sum_assignment(scores.numpy(), maximize=True)
        optimum = float(scores[best_rows, best_cols].sum())
        assert float(scores[rows, cols].sum()) == pytest.approx(optimum, rel=1e-5)


def test_resize_pads_image_size_masks_at_the_top_left() -> None:
    masks = torch.zeros(1, 24, 20, dtype=torch.uint8)
    masks[0, :8, :12] = 1
    resized = resize_target_masks([masks], (8, 8), input_hw=(32, 32))
    expected = torch.zeros(1, 8, 8)
    expected[0, :2, :3] = 1  # 4x4 blocks: bilinear /4 samples between two pixels of the same block
    torch.testing.assert_close(resized, expected)
    torch.testing.assert_close(resize_target_masks([masks], (8, 8)), resized)  # default input = 4 x (h, w)
    with pytest.raises(ValueError, match=r"image 0: target masks must be \[K, H, W\] with H <= 16"):
        resize_target_masks([masks], (4, 4))


def test_all_scores_reach_the_solver_in_one_host_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    solved: List[torch.Tensor] = []
    solver = matcher_module.linear_sum_assignment

    def recording_solver(scores: torch.Tensor, maximize: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        solved.append(scores)
        return solver(scores, maximize)

    monkeypatch.setattr(matcher_module, "linear_sum_assignment", recording_solver)
    outputs, targets = random_batch([3, 4, 0, 6])
    SparseInstMatcher()(outputs, targets)
    assert [tuple(scores.shape) for scores in solved] == [(20, 3), (20, 4), (20, 0), (20, 6)]
    # Views of one tensor: the batch crossed to the host in a single copy, not one per image.
    assert len({scores.untyped_storage().data_ptr() for scores in solved}) == 1


def test_batch_without_any_instance_gives_empty_matches() -> None:
    outputs, targets = random_batch([0, 0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matches = SparseInstMatcher()(outputs, targets)
    assert len(matches) == 3
    for rows, cols in matches:
        assert_valid(rows, cols, 20, 0)


def test_more_instances_than_queries_matches_every_query_and_warns() -> None:
    outputs, targets = random_batch([2, 7], queries=4)
    with pytest.warns(UserWarning, match="image 1: 7 target instances but only 4 queries; matching 4 of them"):
        matches = SparseInstMatcher()(outputs, targets)
    assert_valid(*matches[0], 4, 2)
    assert_valid(*matches[1], 4, 7)
    scores = expected_scores(outputs, targets, 1)
    best_rows, best_cols = scipy.optimize.linear_sum_assignment(scores.numpy(), maximize=True)
    rows, cols = matches[1]
    assert float(scores[rows, cols].sum()) == pytest.approx(float(scores[best_rows, best_cols].sum()), rel=1e-5)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pred_masks", float("nan"), r"image 2: matching cost contains NaN \(pred_masks has non-finite values\)"),
        ("pred_logits", float("nan"), r"image 2: matching cost contains NaN \(pred_logits has non-finite values\)"),
        # A saturated sigmoid keeps the score finite, but the loss would not be: still refused.
        ("pred_masks", float("inf"), r"image 2: cannot match non-finite predictions \(pred_masks has non-finite"),
    ],
)
def test_non_finite_predictions_raise_naming_the_image(key: str, value: float, message: str) -> None:
    outputs, targets = random_batch([2, 0, 3, 1])
    outputs[key][2, 5] = value  # every class / pixel of query 5, so the matched labels see it
    with pytest.raises(ValueError, match=message):
        SparseInstMatcher()(outputs, targets)


def test_labels_out_of_range_raise_naming_the_image() -> None:
    outputs, targets = random_batch([2, 3], classes=3)
    targets[1]["labels"][0] = 3
    with pytest.raises(ValueError, match=r"image 1: target labels outside \[0, 3\)"):
        SparseInstMatcher()(outputs, targets)


def test_inconsistent_targets_raise() -> None:
    outputs, targets = random_batch([2, 3])
    labels = [target["labels"] for target in targets]
    with pytest.raises(ValueError, match="5 labels and 4 target masks for a batch of 2 images"):
        SparseInstMatcher().match(outputs["pred_logits"], outputs["pred_masks"], labels, torch.zeros(4, 16, 16))
