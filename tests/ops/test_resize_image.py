"""pysalient.ops.resize_image: bit-identical to Pillow's bilinear resize, reference parity, script and export."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Dict

import numpy as np
import PIL
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from pysalient.ops import ResizeImage, _reference, resize_image
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip

REPOSITORY = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("PYSALIENT_FIXTURES", REPOSITORY.parent / "shared" / "fixtures"))
SPARSEINST_FIXTURE = FIXTURES / "sparseinst_r50_giam_official.pt"

# Pillow >= 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as the
# width (python-pillow/Pillow#9549); older Pillow always runs the horizontal pass first. The op follows 13.
PILLOW_VERTICAL_FIRST = int(PIL.__version__.split(".")[0]) >= 13


def vertical_first(height: int, width: int, out_h: int, out_w: int) -> bool:
    return out_w != width and out_h < height and height - out_h > 2 * (width - out_w)


def random_image(height: int, width: int, seed: int, channels: int = 3) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (height, width, channels), dtype=torch.uint8, generator=generator)


def pillow_resize(image: Tensor, out_h: int, out_w: int) -> Tensor:
    """Pillow's bilinear resize of an RGB ([H, W, 3]) or grey ([H, W, 1]) uint8 image."""
    array = image.numpy()
    pil = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    resized = np.array(pil.resize((out_w, out_h), Image.BILINEAR))
    return torch.from_numpy(resized).reshape(out_h, out_w, image.shape[-1])


def resized_on(device: str, image: Tensor, out_h: int, out_w: int) -> Tensor:
    """resize_image run on ``device``, returned on the CPU."""
    output = resize_image(image.to(device), out_h, out_w)
    assert output.device.type == device
    return output.cpu()


CASES = {
    "upscale": (30, 40, 67, 91),
    "downscale": (97, 131, 23, 45),
    "strong_downscale": (200, 150, 7, 5),
    "width_up_height_down": (81, 40, 30, 75),
    "width_down_height_up": (40, 81, 75, 30),
    "odd_sizes": (33, 17, 19, 41),
    "height_unchanged": (50, 60, 50, 23),
    "width_unchanged": (50, 60, 17, 60),
    "same_size": (20, 30, 20, 30),
    "from_one_pixel": (1, 1, 5, 7),
    "to_one_pixel": (9, 13, 1, 1),
    "one_row_to_one_column": (1, 20, 3, 1),
    "tall_image_shrunk_vertical_first": (120, 60, 40, 50),
    "pass_order_tie_is_horizontal_first": (100, 100, 60, 80),
    "pass_order_just_vertical_first": (100, 100, 59, 80),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_pillow(case: str, device: str) -> None:
    height, width, out_h, out_w = CASES[case]
    if vertical_first(height, width, out_h, out_w) and not PILLOW_VERTICAL_FIRST:
        pytest.skip(f"Pillow {PIL.__version__} predates the vertical-first pass order")
    image = random_image(height, width, seed=height * 1000 + width)
    expected = pillow_resize(image, out_h, out_w)
    assert torch.equal(resized_on(device, image, out_h, out_w), expected)
    assert torch.equal(_reference.resize_image(image, out_h, out_w), expected)


def test_random_shapes_match_pillow(device: str) -> None:
    rng = random.Random(0)
    for index in range(30):
        height, width, out_h, out_w = (rng.randint(1, 120) for _ in range(4))
        if vertical_first(height, width, out_h, out_w) and not PILLOW_VERTICAL_FIRST:
            continue
        image = random_image(height, width, seed=index)
        expected = pillow_resize(image, out_h, out_w)
        assert torch.equal(resized_on(device, image, out_h, out_w), expected), (height, width, out_h, out_w)
        assert torch.equal(_reference.resize_image(image, out_h, out_w), expected), (height, width, out_h, out_w)


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_every_channel_is_resized_like_a_grey_image(channels: int, device: str) -> None:
    image = random_image(37, 29, seed=channels, channels=channels)
    resized = resized_on(device, image, 23, 51)
    assert resized.shape == (23, 51, channels)
    for channel in range(channels):
        grey = image[..., channel : channel + 1]
        assert torch.equal(resized[..., channel : channel + 1], pillow_resize(grey, 23, 51))
    assert torch.equal(_reference.resize_image(image, 23, 51), resized)


def test_batch_resizes_each_image(device: str) -> None:
    images = torch.stack([random_image(45, 70, seed=1), random_image(45, 70, seed=2)])
    resized = resized_on(device, images, 31, 99)
    assert resized.shape == (2, 31, 99, 3)
    for index in range(2):
        assert torch.equal(resized[index], pillow_resize(images[index], 31, 99))
    assert torch.equal(_reference.resize_image(images, 31, 99), resized)
    assert resized_on(device, images[:0], 31, 99).shape == (0, 31, 99, 3)


def test_non_contiguous_inputs(device: str) -> None:
    strided = random_image(90, 120, seed=3).to(device)[::2, 1::3]
    channels_first = random_image(3, 44, seed=4, channels=57).to(device)  # [C, H, W] storage viewed as [H, W, C]
    permuted = channels_first.permute(1, 2, 0)
    for image in (strided, permuted):
        assert not image.is_contiguous()
        expected = pillow_resize(image.cpu().contiguous(), 28, 35)
        assert torch.equal(resize_image(image, 28, 35).cpu(), expected)
        assert torch.equal(_reference.resize_image(image, 28, 35).cpu(), expected)


def test_hand_computed_values(device: str) -> None:
    # Upscaling 2 -> 4 pixels: output centres 0.25, 0.75, 1.25, 1.75 in input coordinates; the triangle of
    # support 1 around each centre gives weights (1), (3/4, 1/4), (1/4, 3/4), (1) once the border taps that
    # fall outside the image are dropped and the rest renormalised.
    image = torch.tensor([[[0], [200]]], dtype=torch.uint8, device=device)
    assert resize_image(image, 1, 4)[0, :, 0].tolist() == [0, 50, 150, 200]
    # Halving 4 -> 2: the triangle is stretched to support 2 around centres 1.0 and 3.0. Taps 0, 1, 2 weigh
    # 3/4, 3/4, 1/4 (normalised 3/7, 3/7, 1/7) and taps 1, 2, 3 weigh 1/4, 3/4, 3/4: 500/7 and 820/7.
    row = torch.tensor([[[0], [100], [200], [40]]], dtype=torch.uint8, device=device)
    assert resize_image(row, 1, 2)[0, :, 0].tolist() == [71, 117]
    assert torch.equal(resize_image(row, 1, 2).cpu(), pillow_resize(row.cpu(), 1, 2))


@pytest.fixture(scope="module")
def sparseinst_fixture() -> Dict[str, Tensor]:
    if not SPARSEINST_FIXTURE.is_file():
        pytest.skip(f"golden fixture {SPARSEINST_FIXTURE} not found (set PYSALIENT_FIXTURES to its folder)")
    return torch.load(SPARSEINST_FIXTURE, weights_only=True, mmap=True)


def test_golden_sparseinst_test_time_resize(sparseinst_fixture: Dict[str, Tensor], device: str) -> None:
    image, expected = sparseinst_fixture["image_rgb"], sparseinst_fixture["resized_rgb"]
    assert image.shape == (300, 400, 3) and expected.shape == (320, 427, 3)
    assert torch.equal(resized_on(device, image, 320, 427), expected)
    assert torch.equal(_reference.resize_image(image, 320, 427), expected)


@pytest.mark.parametrize(
    ("shape", "out_h", "out_w"),
    [((12, 17, 3), 5, 9), ((2, 7, 6, 3), 13, 4), ((9, 9, 1), 9, 9), ((0, 6, 5, 3), 4, 4)],
)
def test_opcheck(shape: tuple, out_h: int, out_w: int) -> None:
    image = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert_opcheck(torch.ops.pysalient.resize_image.default, (image, out_h, out_w))


@pytest.mark.parametrize(
    ("image", "out_h", "out_w", "message"),
    [
        (torch.zeros(5, 5, 3), 4, 4, "must be a uint8 tensor"),
        (torch.zeros(5, 5, dtype=torch.uint8), 4, 4, r"3-D \[H, W, C\] or 4-D"),
        (torch.zeros(1, 2, 5, 5, 3, dtype=torch.uint8), 4, 4, r"3-D \[H, W, C\] or 4-D"),
        (torch.zeros(5, 5, 3, dtype=torch.uint8), 0, 4, "at least 1x1"),
        (torch.zeros(5, 5, 3, dtype=torch.uint8), 4, -2, "at least 1x1"),
        (torch.zeros(5, 0, 3, dtype=torch.uint8), 4, 4, "at least one row, column and channel"),
        (torch.zeros(5, 5, 0, dtype=torch.uint8), 4, 4, "at least one row, column and channel"),
    ],
)
def test_bad_inputs_raise(image: Tensor, out_h: int, out_w: int, message: str, device: str) -> None:
    with pytest.raises(RuntimeError, match=f"pysalient::resize_image: .*{message}"):
        resize_image(image.to(device), out_h, out_w)


def test_torchscript_round_trip() -> None:
    loaded = scripted_round_trip(ResizeImage(37, 53))
    image = random_image(60, 80, seed=5)
    assert torch.equal(loaded(image), resize_image(image, 37, 53))
    assert torch.equal(loaded(image[None])[0], resize_image(image, 37, 53))


class ResizeShortestSide(nn.Module):
    """Test-time resize whose output size follows the input size: shortest side to ``size``, rounded half up."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, image: Tensor) -> Tensor:
        height, width = image.shape[0], image.shape[1]
        shortest = torch.sym_min(height, width)
        out_h = (2 * height * self.size + shortest) // (2 * shortest)
        out_w = (2 * width * self.size + shortest) // (2 * shortest)
        return resize_image(image, out_h, out_w)


def test_torch_export_with_dynamic_image_size() -> None:
    height, width = torch.export.Dim("height", min=8, max=2048), torch.export.Dim("width", min=8, max=2048)
    module = ResizeShortestSide(64)
    program = exported_module(module, (random_image(90, 120, seed=6),), dynamic_shapes=({0: height, 1: width},))
    for shape in ((75, 50), (64, 64), (131, 97)):
        other = random_image(*shape, seed=7)
        expected = module(other)
        assert min(expected.shape[:2]) == 64
        assert torch.equal(program(other), expected)
        assert torch.equal(expected, pillow_resize(other, expected.shape[0], expected.shape[1]))
