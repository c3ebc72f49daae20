"""collate: samples -> the normalised, padded batch and per-image targets in the padded frame (hand-computed values),
and a clear error, naming the sample, for every inconsistent sample."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch

from pysalient.data.collate import collate
from pysalient.inputs import InputSpec

# Round numbers, so every normalised value is exact: (x - mean) / std per channel of the network's order.
SPEC = InputSpec(channel_order="RGB", pixel_mean=(100.0, 50.0, 10.0), pixel_std=(10.0, 5.0, 2.0), size_divisibility=32)


def _sample(
    height: int, width: int, rectangles: Sequence[Tuple[int, int, int, int]], labels: Sequence[int], **extra: Any
) -> Dict[str, Any]:
    """A BGR image of colour (B, G, R) = (20, 60, 200) with one mask per rectangle (x1, y1, x2, y2)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 20, 60, 200
    masks = np.zeros((len(rectangles), height, width), bool)
    for index, (x1, y1, x2, y2) in enumerate(rectangles):
        masks[index, y1:y2, x1:x2] = True
    sample = {"image": image, "masks": masks, "labels": np.asarray(labels, np.int64), "file_name": "a.png"}
    sample.update(extra)
    return sample


def test_normalisation_follows_the_channel_order_of_the_spec() -> None:
    images, _ = collate([_sample(4, 6, [], [])], SPEC.replace(size_divisibility=1), 1, "cpu")
    # RGB network: channel 0 = R: (200 - 100) / 10, channel 1 = G: (60 - 50) / 5, channel 2 = B: (20 - 10) / 2
    assert images.dtype == torch.float32 and images.shape == (1, 3, 4, 6)
    assert [float(images[0, channel].unique()) for channel in range(3)] == [10.0, 2.0, 5.0]
    bgr, _ = collate([_sample(4, 6, [], [])], SPEC.replace(channel_order="BGR", size_divisibility=1), 1, "cpu")
    # BGR network: channel 0 = B: (20 - 100) / 10, channel 1 = G: 2, channel 2 = R: (200 - 10) / 2
    assert [float(bgr[0, channel].unique()) for channel in range(3)] == [-8.0, 2.0, 95.0]


def test_pixels_keep_their_place_and_the_padding_is_zero() -> None:
    first, second = _sample(40, 50, [(1, 2, 5, 6)], [1]), _sample(70, 33, [], [])
    first["image"][5, 7] = (4, 0, 50)  # B, G, R at row 5, column 7
    images, _ = collate([first, second], SPEC, 2, "cpu")
    # the largest height (70) and width (50) rounded up to multiples of 32
    assert images.shape == (2, 3, 96, 64)
    assert images[0, :, 5, 7].tolist() == [-5.0, -10.0, -3.0]  # (50 - 100) / 10, (0 - 50) / 5, (4 - 10) / 2
    assert images[0, :, 5, 8].tolist() == [10.0, 2.0, 5.0]
    assert torch.all(images[0, :, 40:, :] == 0) and torch.all(images[0, :, :, 50:] == 0)
    assert torch.all(images[1, :, 70:, :] == 0) and torch.all(images[1, :, :, 33:] == 0)
    assert torch.all(images[1, 0, :70, :33] == 10.0)
    exact, _ = collate([first, second], SPEC.replace(size_divisibility=1), 2, "cpu")
    assert exact.shape == (2, 3, 70, 50) and torch.equal(exact, images[:, :, :70, :50])


def test_targets_sit_top_left_in_the_padded_frame() -> None:
    first = _sample(40, 50, [(1, 2, 5, 6), (0, 0, 50, 40)], [1, 0])
    images, targets = collate([first, _sample(70, 33, [], [])], SPEC, 2, "cpu")
    masks = targets[0]["masks"]
    assert masks.dtype == torch.bool and masks.shape == (2, 96, 64)
    assert int(masks[0].sum()) == 16 and bool(masks[0, 2:6, 1:5].all())  # 4 x 4 pixels at rows 2-5, columns 1-4
    assert int(masks[1].sum()) == 40 * 50 and not masks[1, 40:].any() and not masks[1, :, 50:].any()
    assert targets[0]["labels"].dtype == torch.int64 and targets[0]["labels"].tolist() == [1, 0]
    # boxes from the masks when the sample has none: x1, y1, x2, y2 with exclusive right/bottom edges
    assert targets[0]["boxes"].dtype == torch.float32
    assert targets[0]["boxes"].tolist() == [[1.0, 2.0, 5.0, 6.0], [0.0, 0.0, 50.0, 40.0]]
    empty = targets[1]
    assert empty["masks"].shape == (0, 96, 64) and empty["labels"].shape == (0,) and empty["boxes"].shape == (0, 4)
    assert len(targets) == images.shape[0]


def test_the_sample_boxes_are_used_as_they_are() -> None:
    boxes = np.array([[0.5, 1.5, 5.25, 6.0]], np.float64)  # float64 in, float32 out, no rounding to the mask
    _, targets = collate([_sample(40, 50, [(1, 2, 5, 6)], [0], boxes=boxes)], SPEC, 1, "cpu")
    assert targets[0]["boxes"].dtype == torch.float32 and targets[0]["boxes"].tolist() == [[0.5, 1.5, 5.25, 6.0]]


def test_input_types_are_converted() -> None:
    sample = _sample(8, 8, [(0, 0, 2, 2)], [0])
    sample["masks"] = sample["masks"].astype(np.uint8)  # 0 / 1 masks
    sample["labels"] = [0]  # a plain list
    _, targets = collate([sample], SPEC, 1, "cpu")
    assert targets[0]["masks"].dtype == torch.bool and int(targets[0]["masks"].sum()) == 4
    assert targets[0]["labels"].dtype == torch.int64 and targets[0]["labels"].tolist() == [0]


GOOD: Dict[str, Any] = {"image": np.zeros((4, 5, 3), np.uint8), "masks": np.zeros((1, 4, 5), bool), "labels": [0]}

BAD_SAMPLES: List[Tuple[Dict[str, Any], str]] = [
    ({"masks": GOOD["masks"], "labels": [0]}, r"missing keys \['image'\]"),
    ({"image": GOOD["image"], "labels": [0]}, r"missing keys \['masks'\]"),
    ({"image": GOOD["image"]}, r"missing keys \['masks', 'labels'\]"),
    (dict(GOOD, image=np.zeros((4, 5, 3), np.float32)), r"image must be uint8 \[H, W, 3\] \(BGR\), got float32"),
    (dict(GOOD, image=np.zeros((4, 5), np.uint8)), r"image must be uint8 \[H, W, 3\].*\(4, 5\)"),
    (dict(GOOD, image=np.zeros((4, 5, 4), np.uint8)), r"image must be uint8 \[H, W, 3\].*\(4, 5, 4\)"),
    (dict(GOOD, masks=np.zeros((1, 5, 4), bool)), r"masks must be \[K, H, W\] with \(H, W\) = \(4, 5\)"),
    (dict(GOOD, masks=np.zeros((4, 5), bool)), r"masks must be \[K, H, W\]"),
    (dict(GOOD, labels=[0, 0]), r"labels must be \[K\] with K = 1 masks, got shape \(2,\)"),
    (dict(GOOD, labels=[[0]]), r"labels must be \[K\] with K = 1 masks"),
    (dict(GOOD, labels=[2]), r"labels must lie in \[0, 2\), got \[2\]"),
    (dict(GOOD, labels=[-1]), r"labels must lie in \[0, 2\), got \[-1\]"),
    (dict(GOOD, boxes=np.zeros((2, 4), np.float32)), r"boxes must be \[K, 4\] with K = 1 masks, got shape \(2, 4\)"),
    (dict(GOOD, boxes=[1.0, 2.0, 3.0, 4.0]), r"boxes must be \[K, 4\] with K = 1 masks, got shape \(4,\)"),
]


@pytest.mark.parametrize("sample, message", BAD_SAMPLES)
def test_bad_samples_raise_naming_their_position_and_file(sample: Dict[str, Any], message: str) -> None:
    good = dict(GOOD, file_name="good.png")
    with pytest.raises(ValueError, match=rf"^sample 1 \(bad\.png\): {message}"):
        collate([good, dict(sample, file_name="bad.png")], SPEC, 2, "cpu")
    with pytest.raises(ValueError, match=rf"^sample 0: {message}"):  # no file name: the position alone
        collate([sample], SPEC, 2, "cpu")


def test_the_good_sample_of_the_error_cases_collates() -> None:
    # the cases above fail for the one change each makes, not for something the base sample lacks
    images, targets = collate([GOOD], SPEC, 2, "cpu")
    assert images.shape == (1, 3, 32, 32) and targets[0]["masks"].shape == (1, 32, 32)


def test_an_empty_batch_raises() -> None:
    with pytest.raises(ValueError, match="collate got an empty batch"):
        collate([], SPEC, 1, "cpu")
