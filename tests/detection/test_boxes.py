"""Box arithmetic against hand-computed values (detectron2 ``test_boxes.py`` style)."""

from __future__ import annotations

import torch

from pysalient.detection.boxes import box_area, box_iou, clip_boxes


def test_area_and_iou_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]])
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 5.0, 5.0]])
    assert box_area(a).tolist() == [100.0, 100.0] and box_area(a, legacy=True).tolist() == [121.0, 121.0]
    iou = box_iou(a, b)
    # [5,5,15,15] vs [0,0,10,10]: 25 / (100 + 100 - 25); vs [0,0,5,5]: touching corners, 0.
    expected = torch.tensor([[1.0, 0.0, 25 / 100], [25 / 175, 0.0, 0.0]])
    torch.testing.assert_close(iou, expected)
    legacy = box_iou(a, b, legacy=True)
    # +1 convention: intersection 6x6 = 36 of 121 + 121 - 36; the corner pixel (5, 5) is shared: 1 / (121 + 36 - 1).
    torch.testing.assert_close(legacy[1, 0], torch.tensor(36 / 206))
    torch.testing.assert_close(legacy[1, 2], torch.tensor(1 / 156))


def test_iou_of_empty_and_degenerate_boxes_is_zero() -> None:
    point = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    assert box_iou(point, point).item() == 0.0
    assert box_iou(point, point, legacy=True).item() == 1.0  # a one-pixel box in the +1 convention
    assert box_iou(torch.zeros(0, 4), point).shape == (0, 1)


def test_clip_conventions() -> None:
    boxes = torch.tensor([[-3.0, -1.0, 50.0, 12.5], [2.0, 3.0, 4.0, 5.0]])
    assert clip_boxes(boxes, [10, 40]).tolist() == [[0.0, 0.0, 40.0, 10.0], [2.0, 3.0, 4.0, 5.0]]
    assert clip_boxes(boxes, [10, 40], legacy=True).tolist() == [[0.0, 0.0, 39.0, 9.0], [2.0, 3.0, 4.0, 5.0]]
    assert torch.jit.script(clip_boxes)(boxes, [10, 40], True).tolist() == [[0.0, 0.0, 39.0, 9.0], [2.0, 3.0, 4.0, 5.0]]
