"""Every accepted prediction source becomes BGR uint8 images; bad ones fail with the source named."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pysalient.utils.image_io import iterate_sources


@pytest.fixture()
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "b.png"), image)
    cv2.imwrite(str(tmp_path / "a.png"), image[:, ::-1])
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path, image


def test_paths_directories_globs_and_lists(image_folder) -> None:
    folder, image = image_folder
    from_dir = list(iterate_sources(folder))
    assert [item.path.rsplit("/", 1)[1] for item in from_dir] == ["a.png", "b.png"]
    assert np.array_equal(from_dir[1].image, image)
    assert len(list(iterate_sources(str(folder / "*.png")))) == 2
    assert len(list(iterate_sources([str(folder / "b.png"), image]))) == 2


def test_arrays_pil_and_tensors_agree() -> None:
    bgr = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    from_pil = next(iterate_sources(Image.fromarray(rgb))).image
    from_uint8_tensor = next(iterate_sources(torch.from_numpy(rgb).permute(2, 0, 1))).image
    from_float_tensor = next(iterate_sources(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)).image
    for converted in (from_pil, from_uint8_tensor, from_float_tensor):
        assert np.array_equal(converted, bgr)
    assert len(list(iterate_sources(torch.zeros(2, 3, 4, 4)))) == 2


def test_grayscale_alpha_and_16_bit_files(tmp_path) -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    bgra = np.dstack([np.full((6, 8, 3), 50, np.uint8), np.full((6, 8), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), bgra)
    deep = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    images = {item.path.rsplit("/", 1)[1]: item.image for item in iterate_sources(tmp_path)}
    assert all(image.shape == (6, 8, 3) and image.dtype == np.uint8 for image in images.values())
    assert np.array_equal(images["gray.png"][:, :, 1], gray)
    assert np.all(images["alpha.png"] == 50)
    assert np.array_equal(images["deep.png"][:, :, 0], np.round(deep / 257.0).astype(np.uint8))


def test_bad_sources_name_the_problem(tmp_path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        list(iterate_sources(tmp_path / "broken.jpg"))
    with pytest.raises(FileNotFoundError, match="not found"):
        list(iterate_sources(tmp_path / "missing.png"))
    with pytest.raises(FileNotFoundError, match="no images"):
        list(iterate_sources(tmp_path / "*.bmp"))
    with pytest.raises(ValueError, match="empty image"):
        list(iterate_sources(np.zeros((0, 0, 3), np.uint8)))
    with pytest.raises(ValueError, match="uint8"):
        list(iterate_sources(np.zeros((4, 4, 3), np.float64)))
    with pytest.raises(TypeError, match="unsupported source type"):
        list(iterate_sources(3.5))
