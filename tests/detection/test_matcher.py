"""IoUMatcher against hand-made IoU matrices (detectron2 ``test_matcher.py`` style)."""

from __future__ import annotations

import pytest
import torch

from pysalient.detection.matcher import IoUMatcher


def test_single_threshold_rdpnet_mask_rule() -> None:
    # 2 ground truths x 4 proposals.
    iou = torch.tensor([[0.7, 0.5, 0.2, 0.0], [0.6, 0.49, 0.3, 0.0]])
    matches, labels = IoUMatcher([0.5], [0, 1])(iou)
    assert matches.tolist() == [0, 0, 1, 0]  # column-wise argmax, the first among ties (column 3)
    assert labels.tolist() == [1, 1, 0, 0]  # IoU >= 0.5 is positive (0.5 exactly included)
    assert labels.dtype == torch.int8


def test_ignore_band_and_low_quality_matches() -> None:
    iou = torch.tensor([[0.45, 0.3, 0.8], [0.1, 0.35, 0.2]])
    matcher = IoUMatcher([0.4, 0.5], [0, -1, 1])
    assert matcher(iou)[1].tolist() == [-1, 0, 1]
    matches, labels = IoUMatcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)(iou)
    # Ground truth 1's best prediction is column 1 (0.35): promoted to positive, its match stays its own best (1).
    assert labels.tolist() == [-1, 1, 1] and matches.tolist() == [0, 1, 0]


def test_no_ground_truth_is_all_negative() -> None:
    matches, labels = IoUMatcher([0.5], [0, 1])(torch.zeros(0, 3))
    assert matches.tolist() == [0, 0, 0] and labels.tolist() == [0, 0, 0]


@pytest.mark.parametrize("thresholds, labels", [([0.5, 0.4], [0, -1, 1]), ([0.5], [0, 1, 1]), ([0.5], [0, 2])])
def test_bad_configuration_raises(thresholds, labels) -> None:
    with pytest.raises(ValueError, match="IoUMatcher"):
        IoUMatcher(thresholds, labels)


def test_bad_iou_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"\[G, N\]"):
        IoUMatcher([0.5], [0, 1])(torch.zeros(3))
