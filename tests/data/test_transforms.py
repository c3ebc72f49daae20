"""Transforms: resizes equal the test-time input pipeline, flips and crops move masks and boxes exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pysalient import ops
from pysalient.data import Compose, RandomCrop, RandomFlip, ResizeShortestEdge, boxes_from_masks
from pysalient.data.sample import make_sample
from pysalient.data.transforms import ResizeFixed, resize_masks_nearest
from pysalient.inputs import InputSpec, Preprocessor
from pysalient.utils.resize import resized_hw


def _sample(height: int = 60, width: int = 80) -> dict:
    # Pixels encode their own coordinates, so a crop's position can be read back from the output.
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([y, x, (x * 7 + y * 3) % 256], axis=2).astype(np.uint8)
    masks = np.zeros((4, height, width), dtype=bool)
    masks[0, 5:30, 10:40] = True
    masks[1, 35:55, 50:75] = True
    masks[2, 0:3, 0:3] = True
    masks[3] = (x + y) % 11 == 0
    return make_sample(image, masks, np.array([0, 1, 2, 0]), 5, "x.png")


def test_single_size_resize_is_the_test_time_resize() -> None:
    spec = InputSpec(min_size=320, max_size=853, size_divisibility=1)
    preprocessor = Preprocessor(spec)
    for height, width in ((60, 80), (97, 61)):
        sample = _sample(height, width)
        out = ResizeShortestEdge(320, 853)(sample)
        expected_hw = resized_hw(height, width, 320, 853)
        assert out["image"].shape == (*expected_hw, 3) and out["masks"].shape == (4, *expected_hw)
        expected = ops.resize_image(torch.from_numpy(sample["image"]), *expected_hw).numpy()
        assert np.array_equal(out["image"], expected)
        normalised, hw = preprocessor(torch.from_numpy(sample["image"]))  # eager predict's pipeline (BGR in)
        mean = torch.tensor(spec.pixel_mean).reshape(3, 1, 1)
        std = torch.tensor(spec.pixel_std).reshape(3, 1, 1)
        mine = (torch.from_numpy(out["image"][:, :, ::-1].copy()).permute(2, 0, 1).float() - mean) / std
        assert tuple(hw) == expected_hw and torch.equal(normalised, mine)
        assert torch.equal(preprocessor.normalize(torch.from_numpy(out["image"])), mine)  # what collate does
        assert np.array_equal(out["boxes"], boxes_from_masks(out["masks"]))
    # The cap on the longest side applies.
    assert ResizeShortestEdge(320, 400)(_sample(60, 200))["image"].shape == (120, 400, 3)


def test_fixed_resize_ignores_the_aspect_ratio_like_the_fixed_input_mode() -> None:
    sample = _sample(60, 80)
    out = ResizeFixed(32)(sample)
    assert out["image"].shape == (32, 32, 3) and out["masks"].shape[1:] == (32, 32)
    expected = ops.resize_image(torch.from_numpy(sample["image"]), 32, 32).numpy()
    assert np.array_equal(out["image"], expected)
    pixels, size = Preprocessor(InputSpec(resize="fixed", min_size=32, size_divisibility=1))(
        torch.from_numpy(sample["image"])
    )
    assert size == [32, 32] and pixels.shape == (3, 32, 32)
    assert np.array_equal(out["masks"], resize_masks_nearest(sample["masks"], 32, 32))  # every instance survives
    assert np.array_equal(out["boxes"], boxes_from_masks(out["masks"]))
    # instance 0 covers rows 5-29, columns 10-39; output row i samples row floor((i + 0.5) * 60 / 32), column j
    # column floor((j + 0.5) * 80 / 32): rows 3-15 and columns 4-15 land inside
    assert out["boxes"][0].tolist() == [4.0, 3.0, 16.0, 16.0]
    again = ResizeFixed(32)(out)  # already at the size: an equal copy
    assert again is not out and np.array_equal(again["image"], out["image"])
    assert np.array_equal(again["masks"], out["masks"]) and np.array_equal(again["boxes"], out["boxes"])
    assert repr(ResizeFixed(32)) == "ResizeFixed(size=32)"
    # shrinking to 4 x 4 (source rows 7, 22, 37, 52, columns 10, 30, 50, 70): the 3 x 3 corner instance
    # (label 2) is missed by every sample and drops with its label
    tiny = ResizeFixed(4)(sample)
    assert tiny["labels"].tolist() == [0, 1, 0] and tiny["masks"].shape == (3, 4, 4)
    assert tiny["boxes"][:2].tolist() == [[0.0, 0.0, 2.0, 2.0], [2.0, 2.0, 4.0, 4.0]]
    with pytest.raises(ValueError, match="size must be a positive integer"):
        ResizeFixed(0)


def test_nearest_mask_resize_is_centre_aligned_and_empty_instances_drop() -> None:
    masks = np.random.default_rng(0).random((3, 37, 53)) > 0.5
    for out_h, out_w in ((20, 30), (74, 106), (50, 41)):
        resized = resize_masks_nearest(masks, out_h, out_w)
        for mask, result in zip(masks, resized):
            expected = cv2.resize(mask.astype(np.uint8), (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)
            assert np.array_equal(result, expected.astype(bool))
    # Shrinking 4x: the 3x3 instance in the corner samples rows/columns 2, 6, ... and survives; a 1-pixel one
    # at (1, 1) is skipped by every sample and leaves the sample with its label.
    sample = _sample()
    sample["masks"][2] = False
    sample["masks"][2, 1, 1] = True
    out = ResizeShortestEdge(15, 1000)(sample)
    assert out["masks"].shape[0] == 3 and out["labels"].tolist() == [0, 1, 0]


def test_multi_scale_draws_from_the_generator() -> None:
    sample = _sample()
    choice = ResizeShortestEdge((30, 45, 60), 1000)
    sizes = {choice(sample, np.random.default_rng(seed))["image"].shape[0] for seed in range(30)}
    assert sizes == {30, 45, 60}
    ranged = ResizeShortestEdge((30, 35), 1000, sample_style="range")
    sizes = {ranged(sample, np.random.default_rng(seed))["image"].shape[0] for seed in range(60)}
    assert sizes == set(range(30, 36))
    first = choice(sample, np.random.default_rng(7))
    again = choice(sample, np.random.default_rng(7))
    assert np.array_equal(first["image"], again["image"]) and np.array_equal(first["masks"], again["masks"])
    with pytest.raises(ValueError, match="needs an explicit np.random.Generator"):
        choice(sample)
    with pytest.raises(ValueError, match="min <= max"):
        ResizeShortestEdge((40, 30), 100, sample_style="range")
    with pytest.raises(ValueError, match="positive integers"):
        ResizeShortestEdge((0,), 100)


@pytest.mark.parametrize("horizontal", [True, False])
def test_flip_mirrors_image_masks_and_boxes(horizontal: bool) -> None:
    sample = _sample()
    original = {key: np.copy(value) for key, value in sample.items() if isinstance(value, np.ndarray)}
    out = RandomFlip(prob=1.0, horizontal=horizontal)(sample, np.random.default_rng(0))
    axis = 1 if horizontal else 0
    assert np.array_equal(out["image"], np.flip(sample["image"], axis=axis))
    assert np.array_equal(out["masks"], np.flip(sample["masks"], axis=axis + 1))
    assert np.array_equal(out["boxes"], boxes_from_masks(out["masks"]))
    if horizontal:
        assert out["boxes"][0].tolist() == [80 - 40, 5, 80 - 10, 30]
    assert all(np.array_equal(sample[key], value) for key, value in original.items())  # input untouched
    kept = RandomFlip(prob=0.0)(sample, np.random.default_rng(0))
    assert np.array_equal(kept["image"], sample["image"])
    flips = [RandomFlip(0.5)(sample, np.random.default_rng(s))["image"][0, 0, 1] for s in range(40)]
    assert 5 < sum(value == 79 for value in flips) < 35


def test_crop_keeps_the_window_and_drops_empty_instances() -> None:
    sample = _sample()
    seen_sizes, dropped = set(), 0
    for seed in range(25):
        out = RandomCrop("absolute", (20, 30))(sample, np.random.default_rng(seed))
        top, left = int(out["image"][0, 0, 0]), int(out["image"][0, 0, 1])
        assert out["image"].shape == (20, 30, 3)
        assert np.array_equal(out["image"], sample["image"][top : top + 20, left : left + 30])
        window = sample["masks"][:, top : top + 20, left : left + 30]
        present = window.any(axis=(1, 2))
        assert np.array_equal(out["masks"], window[present])
        assert out["labels"].tolist() == sample["labels"][present].tolist()
        assert np.array_equal(out["boxes"], boxes_from_masks(out["masks"]))
        dropped += int((~present).sum())
    assert dropped > 0
    for seed in range(25):
        out = RandomCrop("relative_range", (0.5, 0.8))(sample, np.random.default_rng(seed))
        height, width = out["image"].shape[:2]
        assert 30 <= height <= 60 and 64 <= width <= 80
        seen_sizes.add((height, width))
    assert len(seen_sizes) > 10
    for seed in range(10):
        out = RandomCrop("absolute_range", (20, 40))(sample, np.random.default_rng(seed))
        assert 20 <= out["image"].shape[0] <= 40 and 20 <= out["image"].shape[1] <= 40
    assert RandomCrop("relative", (0.5, 0.25))(sample, np.random.default_rng(0))["image"].shape == (30, 20, 3)
    with pytest.raises(ValueError, match=r"relative crop sizes must be in \(0, 1\]"):
        RandomCrop("relative_range", (0.0, 0.5))
    with pytest.raises(ValueError, match="crop_type must be one of"):
        RandomCrop("centre", (1, 1))


def test_compose_threads_one_generator_and_accepts_plain_callables() -> None:
    sample = _sample()
    names = []

    def record(item: dict) -> dict:
        names.append(item["file_name"])
        return item

    pipeline = Compose(
        [ResizeShortestEdge((40, 50), 100), RandomFlip(0.5), RandomCrop("relative_range", (0.7, 0.7)), record]
    )
    first = pipeline(sample, np.random.default_rng(3))
    second = pipeline(sample, np.random.default_rng(3))
    assert names == ["x.png", "x.png"]
    assert np.array_equal(first["image"], second["image"]) and np.array_equal(first["masks"], second["masks"])
    assert first["image_id"] == 5 and first["masks"].shape[0] == first["labels"].shape[0] == first["boxes"].shape[0]
