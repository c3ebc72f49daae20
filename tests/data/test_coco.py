"""CocoInstanceDataset on small hand-written files: every segmentation kind, labels, and every bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pysalient.data import CocoInstanceDataset, synthesize
from pysalient.data.coco_json import rle_string_counts

HEIGHT, WIDTH = 20, 30


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    # Run lengths over the column-major pixel order, starting with a (possibly empty) run of zeros.
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": list(mask.shape), "counts": np.diff(np.concatenate([[0], changes])).tolist()}


def _write(folder: Path, data: dict, images=("a.png", "b.png"), name: str = "data.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for file_name in images:
        cv2.imwrite(str(folder / file_name), rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def _base(annotations: list, categories=None) -> dict:
    images = [
        {"id": 10, "file_name": "a.png", "height": HEIGHT, "width": WIDTH},
        {"id": 11, "file_name": "b.png", "height": HEIGHT, "width": WIDTH},
    ]
    categories = categories or [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def _annotation(ann_id: int, segmentation, category: int = 3, image_id: int = 10, **extra) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category, "segmentation": segmentation, **extra}


@pytest.fixture()
def known_masks() -> np.ndarray:
    masks = np.zeros((3, HEIGHT, WIDTH), dtype=bool)
    masks[0, 2:9, 3:12] = True
    masks[1, 10:18, 15:29] = True
    masks[1, 12:14, 20:22] = False  # a hole: only masks can say that
    masks[2] = np.random.default_rng(1).random((HEIGHT, WIDTH)) > 0.7
    return masks


def test_rle_polygons_crowd_and_labels(tmp_path, known_masks) -> None:
    polygon = [[3.0, 2.0, 12.0, 2.0, 12.0, 9.0, 3.0, 9.0]]
    annotations = [
        _annotation(1, _rle(known_masks[1]), category=7),
        _annotation(2, _uncompressed_rle(known_masks[2])),
        _annotation(3, polygon, category=7, area=63.0, bbox=[3, 2, 9, 7], iscrowd=0),
        _annotation(4, _uncompressed_rle(known_masks[0]), iscrowd=1),
    ]
    path = _write(tmp_path, _base(annotations))
    dataset = CocoInstanceDataset(path)
    assert len(dataset) == 2 and dataset.image_root == tmp_path
    assert dataset.class_names == ("cat", "dog") and dataset.category_ids == (3, 7) and dataset.num_classes == 2
    sample = dataset[0]
    assert sample["image_id"] == 10 and sample["file_name"] == "a.png"
    assert np.array_equal(sample["image"], cv2.imread(str(tmp_path / "a.png")))
    assert sample["masks"].dtype == np.bool_ and sample["masks"].shape == (3, HEIGHT, WIDTH)
    assert np.array_equal(sample["masks"][0], known_masks[1])
    assert np.array_equal(sample["masks"][1], known_masks[2])
    assert np.array_equal(sample["masks"][2], mask_utils.decode(mask_utils.frPyObjects(polygon, HEIGHT, WIDTH))[..., 0])
    assert sample["labels"].dtype == np.int64 and sample["labels"].tolist() == [1, 0, 1]
    assert sample["boxes"].dtype == np.float32
    assert sample["boxes"][0].tolist() == [15, 10, 29, 18]
    # The crowd annotation is not a target but stays in the COCO index for evaluation.
    assert 4 in dataset.coco.anns and dataset.coco.anns[4]["iscrowd"] == 1
    # Missing iscrowd / area / bbox are derived so that COCOeval can read the ground truth.
    assert dataset.coco.anns[1]["iscrowd"] == 0 and dataset.coco.anns[1]["area"] == known_masks[1].sum()
    assert dataset.coco.anns[1]["bbox"] == [15.0, 10.0, 14.0, 8.0]

    agnostic = CocoInstanceDataset(path, class_agnostic=True)
    assert agnostic.class_names == ("salient",) and agnostic.category_ids == (3,)
    assert agnostic[0]["labels"].tolist() == [0, 0, 0]


def test_empty_image_and_default_image_roots(tmp_path) -> None:
    path = _write(tmp_path / "flat", _base([]))
    empty = CocoInstanceDataset(path)[1]
    assert empty["masks"].shape == (0, HEIGHT, WIDTH) and empty["masks"].dtype == np.bool_
    assert empty["labels"].shape == (0,) and empty["labels"].dtype == np.int64
    assert empty["boxes"].shape == (0, 4) and empty["boxes"].dtype == np.float32
    paths = synthesize(tmp_path / "synth", test=2, size=64, seed=1)
    assert CocoInstanceDataset(paths["test"]).image_root == (tmp_path / "synth" / "images").resolve()
    nested = _write(tmp_path / "nested", _base([]), images=())
    _write(tmp_path / "nested" / "images", {}, name="unused.json")
    assert CocoInstanceDataset(nested).image_root == tmp_path / "nested" / "images"


def test_annotations_past_the_border_are_clipped(tmp_path) -> None:
    # A rectangle from (20, 12) to (45, 40) on a 30 x 20 image, with a stored bbox beyond the image.
    polygon = [[20.0, 12.0, 45.0, 12.0, 45.0, 40.0, 20.0, 40.0]]
    path = _write(tmp_path, _base([_annotation(1, polygon, bbox=[20, 12, 25, 28], area=700)]))
    sample = CocoInstanceDataset(path)[0]
    expected = mask_utils.decode(mask_utils.frPyObjects(polygon, HEIGHT, WIDTH))[..., 0].astype(bool)
    assert np.array_equal(sample["masks"][0], expected) and expected.sum() > 0
    assert sample["masks"][0][12:, 20:].all()
    assert sample["boxes"][0].tolist() == [20, 12, WIDTH, HEIGHT]


def test_degenerate_polygons_are_skipped_with_a_warning(tmp_path) -> None:
    stored = {"area": 1.0, "bbox": [1, 1, 1, 1], "iscrowd": 0}
    annotations = [
        _annotation(1, [[1.0, 1.0, 5.0, 5.0]], **stored),
        _annotation(2, [[2.0, 2.0, 9.0, 2.0, 9.0, 9.0]], **stored),
    ]
    with pytest.warns(UserWarning, match=r"skipped 1 annotation.*ids \[1\]"):
        dataset = CocoInstanceDataset(_write(tmp_path, _base(annotations)))
    assert dataset[0]["masks"].shape[0] == 1


def test_missing_images_are_listed(tmp_path) -> None:
    data = _base([])
    data["images"] = [{"id": i, "file_name": f"img{i:02d}.png", "height": 4, "width": 4} for i in range(12)]
    path = _write(tmp_path, data, images=("img00.png",))
    with pytest.raises(FileNotFoundError) as error:
        CocoInstanceDataset(path)
    message = str(error.value)
    assert "11 of the 12 images" in message and "img01.png" in message and "img10.png" in message
    assert "img11.png" not in message and "img00.png" not in message and "image_root" in message
    with pytest.raises(FileNotFoundError, match="under /nowhere:"):
        CocoInstanceDataset(path, image_root="/nowhere")
    with pytest.raises(FileNotFoundError, match="COCO json not found"):
        CocoInstanceDataset(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "the file is empty"),
        ("  \n", "the file is empty"),
        ('{"images": [', "invalid JSON at line 1"),
        ("[]", "expected a JSON object"),
        ('{"annotations": [], "categories": [{"id": 1, "name": "a"}]}', "missing or non-list 'images'"),
        ('{"images": [], "categories": []}', "'categories' is empty"),
    ],
)
def test_malformed_json_names_the_file_and_problem(tmp_path, text: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as error:
        CocoInstanceDataset(path)
    assert str(path) in str(error.value)


TRIANGLE = [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]]


@pytest.mark.parametrize(
    ("annotation", "match"),
    [
        (_annotation(5, [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]], image_id=99), "annotation 5 refers to unknown image_id 99"),
        (_annotation(5, [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]], category=4), "unknown category_id 4"),
        (_annotation(5, {"size": [10, 10], "counts": "abc"}), r"RLE size \[10, 10\] differs"),
        (_annotation(5, {"size": [HEIGHT, WIDTH], "counts": "abc"}), "RLE 'counts' are corrupt"),
        (_annotation(5, {"size": [HEIGHT, WIDTH], "counts": "0"}), "RLE 'counts' are corrupt"),
        (_annotation(5, {"size": [HEIGHT, WIDTH], "counts": [10, 20]}), "RLE 'counts' are corrupt"),
        (_annotation(5, {"size": [HEIGHT, WIDTH], "counts": [700, -100]}), "RLE 'counts' are corrupt"),
        (_annotation(5, {"size": [HEIGHT, WIDTH], "counts": [1.5]}), "list of ints"),
        (_annotation(5, [[1.0, 1.0, 5.0, 1.0, 5.0]]), "odd number of coordinates"),
        (_annotation(5, [[31.0, 1.0, 50.0, 1.0, 50.0, 5.0]]), "entirely outside the image"),
        (_annotation(5, [[-9.0, -3.0, -1.0, -3.0, -1.0, -1.0]]), "entirely outside the image"),
        (_annotation(5, None), "missing segmentation"),
        (_annotation(5, TRIANGLE, iscrowd="0"), r"annotation 5 \(image a.png, 20x30\): 'iscrowd' must be the integer"),
        (_annotation(5, TRIANGLE, iscrowd=2), "'iscrowd' must be the integer 0 or 1, got 2"),
        (_annotation(5, TRIANGLE, iscrowd=True), "'iscrowd' must be the integer 0 or 1, got True"),
        (_annotation(5, TRIANGLE, area=-3.0), "'area' must be a finite number >= 0, got -3.0"),
        (_annotation(5, TRIANGLE, area=float("nan")), "'area' must be a finite number >= 0, got nan"),
        (_annotation(5, TRIANGLE, area="8"), "'area' must be a finite number"),
        (_annotation(5, TRIANGLE, bbox=[1.0, 1.0, -4.0, 4.0]), "'bbox' has a negative width or height"),
        (_annotation(5, TRIANGLE, bbox=[1.0, float("nan"), 4.0, 4.0]), "'bbox' must be 4 finite numbers"),
        (_annotation(5, TRIANGLE, bbox=[1.0, 1.0, 4.0]), "'bbox' must be 4 finite numbers"),
    ],
)
def test_bad_annotations_are_reported(tmp_path, annotation: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CocoInstanceDataset(_write(tmp_path, _base([annotation])))


def test_duplicate_annotation_ids_are_reported(tmp_path) -> None:
    data = _base([_annotation(5, TRIANGLE), _annotation(5, TRIANGLE, image_id=11)])
    with pytest.raises(ValueError, match="data.json: duplicate annotation id 5"):
        CocoInstanceDataset(_write(tmp_path, data))


def test_image_of_the_wrong_size_is_reported(tmp_path) -> None:
    data = _base([])
    data["images"][0]["height"] = HEIGHT + 1
    dataset = CocoInstanceDataset(_write(tmp_path, data))
    with pytest.raises(ValueError, match=r"a.png: the image is 20x30 but .* says 21x30"):
        dataset[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataset[1]["image"].shape == (HEIGHT, WIDTH, 3)
    with pytest.raises(IndexError):
        dataset[2]


def test_compressed_rle_run_lengths_match_pycocotools() -> None:
    rng = np.random.default_rng(2)
    for height, width, density in ((1, 1, 1.0), (7, 5, 0.0), (40, 33, 0.5), (300, 200, 0.999), (64, 64, 0.01)):
        mask = rng.random((height, width)) < density
        counts = _uncompressed_rle(mask)["counts"]
        assert rle_string_counts(_rle(mask)["counts"]) == counts and sum(counts) == height * width
    assert rle_string_counts("é") is None and rle_string_counts("") is None
