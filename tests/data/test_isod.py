"""ISOD raw format: colour- and grey-coded instance PNGs, COCO conversion, missing and mismatched files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pysalient.data import CocoInstanceDataset, IsodInstanceDataset, isod_to_coco
from pysalient.data.isod import decode_instance_map


def _instance_masks() -> np.ndarray:
    masks = np.zeros((3, 24, 32), dtype=bool)
    masks[0, 2:10, 3:12] = True
    masks[1, 12:20, 5:25] = True
    masks[2, 4:9, 20:30] = True
    return masks


def _make_root(tmp_path):
    masks = _instance_masks()
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "instances").mkdir()
    # Image "a": BGR colours that differ in one channel by one level are still distinct instances.
    coded = np.zeros((24, 32, 3), dtype=np.uint8)
    for mask, colour in zip(masks, [(0, 0, 2), (0, 0, 1), (255, 10, 0)]):
        coded[mask] = colour
    cv2.imwrite(str(tmp_path / "instances" / "a.png"), coded)
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    # Image "b": a 16-bit grey map with ids 300 and 7, and one with no instance at all ("c").
    grey = np.zeros((24, 32), dtype=np.uint16)
    grey[masks[0]] = 300
    grey[masks[2]] = 7
    cv2.imwrite(str(tmp_path / "instances" / "b.png"), grey)
    cv2.imwrite(str(tmp_path / "images" / "b.png"), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "instances" / "c.png"), np.zeros((24, 32), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "c.png"), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    return masks


def test_colour_and_grey_instance_maps(tmp_path) -> None:
    masks = _make_root(tmp_path)
    dataset = IsodInstanceDataset(tmp_path)
    assert dataset.file_names == ["a.jpg", "b.png", "c.png"] and dataset.class_names == ("salient",)
    first = dataset[0]
    # Colour codes (R << 16 | G << 8 | B): (0,0,1) -> 65536, (0,0,2) -> 131072, (255,10,0) BGR -> 2815 ...
    assert first["masks"].shape == (3, 24, 32)
    assert np.array_equal(first["masks"][0], masks[2])  # B=255, G=10, R=0 -> code 2815
    assert np.array_equal(first["masks"][1], masks[1])  # R=1 -> 65536
    assert np.array_equal(first["masks"][2], masks[0])  # R=2 -> 131072
    assert first["labels"].tolist() == [0, 0, 0] and first["image_id"] == 1 and first["file_name"] == "a.jpg"
    assert first["boxes"][1].tolist() == [5, 12, 25, 20]
    second = dataset[1]
    assert np.array_equal(second["masks"], masks[[2, 0]])  # grey ids 7 then 300
    third = dataset[2]
    assert third["masks"].shape == (0, 24, 32) and third["boxes"].shape == (0, 4)


def test_alpha_is_ignored_and_bad_maps_fail() -> None:
    coded = np.zeros((4, 5, 4), dtype=np.uint8)
    coded[1, 1] = (9, 9, 9, 0)
    coded[2, 2, 3] = 255  # alpha only: background
    masks = decode_instance_map(coded)
    assert masks.shape == (1, 4, 5) and masks[0, 1, 1] and masks.sum() == 1
    with pytest.raises(ValueError, match="grey or colour instance PNG"):
        decode_instance_map(np.zeros((4, 5, 2), dtype=np.uint8), "x.png")


def test_conversion_to_coco_matches_the_dataset(tmp_path) -> None:
    _make_root(tmp_path)
    out = isod_to_coco(tmp_path, tmp_path / "out" / "isod.json")
    data = json.loads(out.read_text())
    assert [image["file_name"] for image in data["images"]] == ["a.jpg", "b.png", "c.png"]
    assert len(data["annotations"]) == 5 and data["categories"][0]["name"] == "salient"
    assert data["annotations"][0]["area"] == 50 and data["annotations"][0]["bbox"] == [20.0, 4.0, 10.0, 5.0]
    converted = CocoInstanceDataset(out, image_root=tmp_path / "images")
    original = IsodInstanceDataset(tmp_path)
    for index in range(3):
        a, b = converted[index], original[index]
        assert a["file_name"] == b["file_name"] and a["image_id"] == b["image_id"]
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["masks"], b["masks"])
        assert np.array_equal(a["boxes"], b["boxes"])
    rle = data["annotations"][0]["segmentation"]
    assert mask_utils.decode(rle).sum() == 50


def test_missing_and_mismatched_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="expected root/images and root/instances"):
        IsodInstanceDataset(tmp_path)
    _make_root(tmp_path)
    (tmp_path / "instances" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 instance PNG\(s\) missing .*: b.png"):
        IsodInstanceDataset(tmp_path)
    cv2.imwrite(str(tmp_path / "instances" / "b.png"), np.zeros((10, 10), dtype=np.uint8))
    dataset = IsodInstanceDataset(tmp_path)
    with pytest.raises(ValueError, match="b.png is 10x10 but its image b.png is 24x32"):
        dataset[1]
    with pytest.raises(ValueError, match="is 10x10 but its image"):
        isod_to_coco(tmp_path, tmp_path / "x.json")
    cv2.imwrite(str(tmp_path / "images" / "b.jpg"), np.zeros((24, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"share the stem\(s\) \['b'\]"):
        IsodInstanceDataset(tmp_path)
