"""crop_and_resize_masks: bitmask crops resampled to a grid, by hand."""

from __future__ import annotations

import torch

from pysalient.detection.mask_targets import crop_and_resize_masks


def test_box_equal_to_the_mask_is_all_ones_and_halves_split() -> None:
    masks = torch.zeros(2, 20, 30, dtype=torch.bool)
    masks[0, 4:12, 6:22] = True
    masks[1, 0:20, 0:15] = True  # the left half
    boxes = torch.tensor([[6.0, 4.0, 22.0, 12.0], [0.0, 0.0, 30.0, 20.0], [6.0, 4.0, 22.0, 12.0]])
    targets = crop_and_resize_masks(masks, boxes, torch.tensor([0, 1, 1]), 4)
    assert targets.dtype == torch.float32 and targets.shape == (3, 4, 4)
    assert targets[0].eq(1).all()
    # The whole image with the left half set: the two left columns are 1, the two right ones 0.
    assert targets[1].tolist() == [[1.0, 1.0, 0.0, 0.0]] * 4
    # Mask 1 inside box [6, 22] x [4, 12]: columns centred at x = 8, 12, 16, 20: left of 15 for the first two.
    assert targets[2].tolist() == [[1.0, 1.0, 0.0, 0.0]] * 4


def test_empty_boxes() -> None:
    masks = torch.ones(1, 8, 8, dtype=torch.bool)
    assert crop_and_resize_masks(masks, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 32).shape == (0, 32, 32)
