"""Result: validation, boxes from masks, COCO round trip, numpy and summary views, plotting and saving."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from pysalient.structures import (
    CAPTION_FONT,
    CAPTION_SCALE,
    CAPTION_THICKNESS,
    Result,
    ResultArrays,
    caption_origin,
    masks_to_boxes,
)


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


def test_numpy_returns_array_copies_with_the_same_fields() -> None:
    result = make_result()
    result.path = "photo.jpg"
    arrays = result.numpy()
    assert isinstance(arrays, ResultArrays) and arrays._fields[:4] == ("masks", "boxes", "scores", "labels")
    assert arrays.masks.dtype == np.bool_ and np.array_equal(arrays.masks, result.masks.numpy())
    assert arrays.boxes.dtype == np.float32 and arrays.boxes.tolist() == result.boxes.tolist()
    assert np.allclose(arrays.scores, [0.9, 0.5, 0.1]) and arrays.labels.tolist() == [0, 0, 0]
    assert arrays.names == {0: "salient"} and arrays.path == "photo.jpg" and arrays.orig_img is result.orig_img
    arrays.boxes[0] = -1  # a copy: the Result is unchanged
    arrays.masks[:] = False
    assert result.boxes[0].tolist() == [3.0, 2.0, 9.0, 5.0] and bool(result.masks[0].any())


def test_summary_lists_one_plain_dict_per_instance() -> None:
    result = make_result()
    result.names = {0: "cat"}
    summary = result.summary()
    assert summary[0] == {
        "name": "cat",
        "class": 0,
        "confidence": 0.9,
        "box": {"x1": 3.0, "y1": 2.0, "x2": 9.0, "y2": 5.0},
        "area": 18,
    }
    assert [entry["area"] for entry in summary] == [18, 301, 0]
    assert [entry["confidence"] for entry in summary] == [0.9, 0.5, 0.1]
    assert result.summary(decimals=0)[1]["confidence"] == 0.0
    assert json.loads(json.dumps(summary)) == summary  # plain Python types only
    empty = Result(torch.zeros(0, 4, 4, dtype=torch.bool), torch.zeros(0, 4), torch.zeros(0), torch.zeros(0).long())
    assert empty.summary() == []


def caption_pixels(result: Result) -> np.ndarray:
    """bool [H, W]: where the captions change the plot."""
    return np.any(result.plot(show_labels=True) != result.plot(show_labels=False), axis=2)


def boxed_result(box, height: int = 60, width: int = 120) -> Result:
    masks = torch.zeros(1, height, width, dtype=torch.bool)
    return Result(masks, torch.tensor([box], dtype=torch.float32), torch.tensor([0.87]), torch.tensor([0]))


def test_a_caption_at_the_top_edge_goes_inside_its_box() -> None:
    result = boxed_result([10, 0, 100, 50])
    rows, columns = np.nonzero(caption_pixels(result))
    assert rows.size > 0
    assert rows.min() >= 2 and rows.max() < 50  # under the box's top line, inside the box
    assert columns.min() >= 10 and columns.max() < 100
    roomy = np.nonzero(caption_pixels(boxed_result([10, 30, 100, 50])))[0]
    assert rows.max() - rows.min() == roomy.max() - roomy.min()  # the whole caption is drawn, not its lower half


def test_a_caption_at_the_right_edge_is_shifted_left_to_stay_whole() -> None:
    (text_width, _), _ = cv2.getTextSize("salient 0.87", CAPTION_FONT, CAPTION_SCALE, CAPTION_THICKNESS)
    result = boxed_result([110, 30, 120, 50])
    columns = np.nonzero(caption_pixels(result))[1]
    assert columns.max() <= 119 and columns.min() <= 120 - text_width + 1
    assert columns.max() - columns.min() + 1 >= text_width - 3  # not cut by the edge
    roomy = np.nonzero(caption_pixels(boxed_result([10, 30, 20, 50])))[1]
    assert columns.max() - columns.min() == roomy.max() - roomy.min()  # same caption, only moved


def test_caption_origin_prefers_above_then_inside_then_clamps() -> None:
    assert caption_origin((20, 30, 60, 50), (40, 10), 4, (100, 200)) == (20, 26)  # above the box
    assert caption_origin((20, 5, 60, 50), (40, 10), 4, (100, 200)) == (20, 19)  # no room above: inside
    assert caption_origin((180, 30, 200, 50), (40, 10), 4, (100, 200)) == (160, 26)  # shifted left
    assert caption_origin((0, 95, 5, 100), (40, 10), 4, (100, 200)) == (0, 91)  # low box: caption above it
    assert caption_origin((0, 0, 5, 5), (40, 10), 4, (12, 30)) == (0, 10)  # too small: top-left corner kept


def test_indexing_and_cpu_keep_path_and_save_dir() -> None:
    result = make_result()
    result.path, result.save_dir = "a.jpg", "runs/predict/exp"
    for derived in (result[0], result[1:], result.cpu()):
        assert (derived.path, derived.save_dir) == ("a.jpg", "runs/predict/exp")
