"""Result: validation, boxes from masks, COCO round trip, plotting and saving."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from pysalient.structures import Result, masks_to_boxes


def make_result() -> Result:
    masks = torch.zeros(3, 20, 30, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 10:20, 0:30] = True
    masks[1, 0, 29] = True
    return Result(
        masks=masks,
        boxes=masks_to_boxes(masks),
        scores=torch.tensor([0.9, 0.5, 0.1]),
        labels=torch.tensor([0, 0, 0]),
        names={0: "salient"},
        orig_img=np.full((20, 30, 3), 100, np.uint8),
    )


def test_masks_to_boxes_uses_exclusive_edges_and_zero_for_empty() -> None:
    result = make_result()
    assert result.boxes.tolist() == [[3.0, 2.0, 9.0, 5.0], [0.0, 0.0, 30.0, 20.0], [0.0, 0.0, 0.0, 0.0]]
    assert masks_to_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)


def test_to_coco_round_trips_through_pycocotools() -> None:
    result = make_result()
    entries = result.to_coco(image_id=42)
    assert [entry["category_id"] for entry in entries] == [1, 1, 1]
    assert entries[0]["bbox"] == [3.0, 2.0, 6.0, 3.0] and entries[0]["image_id"] == 42
    for entry, mask in zip(entries, result.masks):
        rle = dict(entry["segmentation"], counts=entry["segmentation"]["counts"].encode("ascii"))
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask.numpy())
    assert result.to_coco(7, category_ids={0: 3})[0]["category_id"] == 3


def test_plot_colours_masks_only_where_they_are(tmp_path) -> None:
    result = make_result()
    canvas = result.plot(show_boxes=False)
    assert canvas.shape == (20, 30, 3) and canvas.dtype == np.uint8
    untouched = ~(result.masks[0] | result.masks[1]).numpy()
    assert np.all(canvas[untouched] == 100)
    assert np.all(canvas[result.masks[0].numpy()] != 100)
    saved = result.save(str(tmp_path / "out" / "plot.png"), show_boxes=False)
    assert np.array_equal(cv2.imread(saved), canvas)
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic write leaves no temporary behind


def test_inconsistent_fields_are_rejected() -> None:
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="scores must have shape"):
        Result(masks, masks_to_boxes(masks), torch.zeros(3), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="masks must be bool"):
        Result(masks.float(), masks_to_boxes(masks), torch.zeros(2), torch.zeros(2, dtype=torch.int64))


def test_empty_result_keeps_every_field() -> None:
    masks = torch.zeros(0, 8, 9, dtype=torch.bool)
    result = Result(masks, masks_to_boxes(masks), torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    assert len(result) == 0 and result.image_size == (8, 9) and result.to_coco(1) == []
    assert result.plot().shape == (8, 9, 3)


def test_to_supervision_explains_missing_dependency() -> None:
    try:
        import supervision  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install supervision"):
            make_result().to_supervision()
    else:
        detections = make_result().to_supervision()
        assert len(detections) == 3


def test_indexing_selects_instances_like_detectron2_instances() -> None:
    masks = torch.zeros(3, 4, 5, dtype=torch.bool)
    for index in range(3):
        masks[index, index, index] = True
    result = Result(masks, masks_to_boxes(masks), torch.tensor([0.9, 0.6, 0.2]), torch.tensor([0, 1, 0]))
    confident = result[result.scores > 0.5]
    assert len(confident) == 2 and torch.equal(confident.scores, torch.tensor([0.9, 0.6]))
    assert torch.equal(confident.masks, masks[:2]) and confident.names == result.names
    assert torch.equal(result[1:].labels, torch.tensor([1, 0])) and len(result[:0]) == 0
    assert torch.equal(result[-1].boxes, result.boxes[2:]) and len(result[0]) == 1
    assert torch.equal(result[[2, 0]].scores, torch.tensor([0.2, 0.9]))
    with pytest.raises(IndexError, match="out of range"):
        result[3]
    with pytest.raises(IndexError, match="bool mask must have shape"):
        result[torch.tensor([True, False])]
