"""SynthSIS: byte-determinism, annotations equal to what was drawn, occlusion, no distractor annotated."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pysalient.data import render_sample, synthesize
from pysalient.data.shapes import Shape, rasterize
from pysalient.data.synthsis import MIN_VISIBLE_AREA, compose_scene


def _files(root: Path) -> dict:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _decode(annotation: dict) -> np.ndarray:
    return mask_utils.decode(annotation["segmentation"]).astype(bool)


def test_same_seed_gives_identical_files_and_seeds_and_splits_differ(tmp_path) -> None:
    first = synthesize(tmp_path / "a", train=3, val=2, test=2, size=(72, 96), seed=5)
    synthesize(tmp_path / "b", train=3, val=2, test=2, size=(72, 96), seed=5)
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(files_a) == 3 + 2 + 2 + 3 and files_a == files_b
    assert sorted(first) == ["test", "train", "val"] and first["test"] == tmp_path / "a" / "annotations" / "test.json"
    assert not any(name.endswith(".tmp") or "/." in name for name in files_a)  # no temporary files left behind
    # A larger split starts with the images of a smaller one; other seeds and other splits differ.
    synthesize(tmp_path / "c", train=1, size=(72, 96), seed=5)
    synthesize(tmp_path / "d", train=1, size=(72, 96), seed=6)
    assert _files(tmp_path / "c")["images/train/000000.png"] == files_a["images/train/000000.png"]
    assert _files(tmp_path / "d")["images/train/000000.png"] != files_a["images/train/000000.png"]
    assert files_a["images/train/000000.png"] != files_a["images/test/000000.png"]


def test_written_files_are_coco_and_equal_the_rendering(tmp_path) -> None:
    paths = synthesize(tmp_path, val=4, size=(96, 128), seed=3)
    data = json.loads(paths["val"].read_text())
    assert data["categories"] == [{"id": 1, "name": "salient", "supercategory": "salient"}]
    assert [image["file_name"] for image in data["images"]] == [f"val/{i:06d}.png" for i in range(4)]
    assert [image["id"] for image in data["images"]] == [1, 2, 3, 4]
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))
    for image in data["images"]:
        assert (image["height"], image["width"]) == (96, 128)
        sample = render_sample((96, 128), 3, "val", image["id"] - 1)
        written = cv2.imread(str(tmp_path / "images" / image["file_name"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(written, sample.image)
        annotations = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        assert len(annotations) == len(sample.masks) >= 1
        for annotation, mask in zip(annotations, sample.masks):
            decoded = _decode(annotation)
            assert np.array_equal(decoded, mask)
            assert isinstance(annotation["segmentation"]["counts"], str)
            assert annotation["segmentation"]["size"] == [96, 128]
            assert annotation["area"] == int(mask.sum()) and annotation["iscrowd"] == 0
            rows, columns = np.nonzero(mask)
            x, y = columns.min(), rows.min()
            assert annotation["bbox"] == [x, y, columns.max() + 1 - x, rows.max() + 1 - y]


def test_masks_are_the_visible_painted_pixels_and_instances_contrast() -> None:
    counts, occluded = set(), 0
    for index in range(40):
        sample = render_sample(128, 11, "train", index)
        height, width = sample.image.shape[:2]
        counts.add(len(sample.masks))
        for k, (mask, shape) in enumerate(zip(sample.masks, sample.shapes)):
            # The annotation is exactly where instance k was painted last (painter's algorithm) ...
            assert np.array_equal(mask, sample.label_map == k + 1)
            full = rasterize(shape.contour, height, width)
            assert not (mask & ~full).any()
            occluded += int(mask.sum() < full.sum())
            # ... large enough, and far from the colour of the background around it (distractors are not).
            assert mask.sum() >= MIN_VISIBLE_AREA * height * width
            ring = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & (sample.label_map == 0)
            if ring.sum() >= 10:
                image = sample.image.astype(np.float32)
                assert np.linalg.norm(image[mask].mean(axis=0) - image[ring].mean(axis=0)) > 50
        # Nothing painted by the instances is left unannotated.
        assert np.array_equal(sample.masks.any(axis=0), sample.label_map > 0)
    assert counts <= set(range(1, 7)) and len(counts) >= 4
    assert occluded >= 5


def test_compose_scene_occlusion_and_drops() -> None:
    def square(x0: int, y0: int, side: int, colour: tuple) -> Shape:
        contour = np.array([[x0, y0], [x0 + side - 1, y0], [x0 + side - 1, y0 + side - 1], [x0, y0 + side - 1]])
        return Shape(contour=contour.astype(np.int32), colour=colour)

    canvas = np.full((60, 80, 3), 100.0, dtype=np.float32)
    bottom, top = square(10, 10, 30, (0.0, 0.0, 250.0)), square(25, 20, 30, (250.0, 0.0, 0.0))
    masks, kept, label_map = compose_scene(canvas, [bottom, top], min_visible_area=0.005, min_visible_fraction=0.3)
    assert kept == [0, 1]
    full_bottom, full_top = rasterize(bottom.contour, 60, 80), rasterize(top.contour, 60, 80)
    assert full_bottom.sum() == 900 and full_top.sum() == 900
    assert np.array_equal(masks[0], full_bottom & ~full_top) and masks[0].sum() == 900 - 15 * 20
    assert np.array_equal(masks[1], full_top)
    assert (canvas[masks[0]] == (0, 0, 250)).all() and (canvas[masks[1]] == (250, 0, 0)).all()
    assert (canvas[label_map == 0] == 100).all()

    # A shape hidden beyond the visible fraction is neither annotated nor painted; the one above survives.
    canvas = np.full((60, 80, 3), 100.0, dtype=np.float32)
    hidden, cover = square(20, 20, 10, (0.0, 250.0, 0.0)), square(18, 18, 14, (250.0, 0.0, 0.0))
    masks, kept, label_map = compose_scene(canvas, [hidden, cover], min_visible_area=0.005, min_visible_fraction=0.3)
    assert kept == [1] and masks.shape == (1, 60, 80) and not (canvas == (0, 250, 0)).all(axis=2).any()
    # A tiny shape (under the minimum visible area) is dropped, and a scene can end up empty.
    canvas = np.full((60, 80, 3), 100.0, dtype=np.float32)
    masks, kept, _ = compose_scene(canvas, [square(5, 5, 3, (0.0, 0.0, 250.0))], min_visible_area=0.005)
    assert kept == [] and masks.shape == (0, 60, 80) and (canvas == 100).all()


def test_sizes_and_bad_arguments(tmp_path) -> None:
    sample = render_sample((64, 200), 0, "test", 0)
    assert sample.image.shape == (64, 200, 3) and sample.masks.shape[1:] == (64, 200)
    with pytest.raises(ValueError, match="at least 32"):
        synthesize(tmp_path, train=1, size=16)
    with pytest.raises(ValueError, match="size must be"):
        synthesize(tmp_path, train=1, size=(32, 32, 3))
    with pytest.raises(ValueError, match="non-negative"):
        synthesize(tmp_path, train=-1)
    with pytest.raises(ValueError, match="unknown split"):
        render_sample(64, 0, "holdout", 0)
    assert synthesize(tmp_path / "none", size=64) == {} and not (tmp_path / "none").exists()
