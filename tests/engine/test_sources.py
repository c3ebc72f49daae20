"""Every accepted prediction source (files, EXIF-rotated photos, videos, cameras, URLs, arrays) becomes BGR uint8
images; bad ones fail with the source named."""

from __future__ import annotations

import functools
import http.server
import math
import tempfile
import threading

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pysalient.utils.image_io import iterate_sources, read_image, resolve_sources


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
    for empty in ("", "   ", [""]):  # not the current directory
        with pytest.raises(ValueError, match="the source is an empty path"):
            list(iterate_sources(empty))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5, 255.0])
def test_float_tensors_with_non_finite_or_out_of_range_pixels_are_rejected(bad) -> None:
    image = torch.rand(3, 8, 8)
    image[1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite" if not math.isfinite(bad) else r"must be in \[0, 1\]"):
        list(iterate_sources(image))
    image[1, 2, 3] = 1.0 + 1e-6  # rounding error of a normalised image: accepted, clamped
    (item,) = list(iterate_sources(image))
    assert item.image[2, 3, 1] == 255


def patterned_image(height: int, width: int) -> np.ndarray:
    """A smooth BGR image (JPEG-friendly) whose every orientation differs: a gradient and a bright corner."""
    rows = np.linspace(0, 200, height, dtype=np.float32)[:, None]
    columns = np.linspace(0, 120, width, dtype=np.float32)[None, :]
    image = np.stack([rows + 0 * columns, 0 * rows + columns, np.full((height, width), 60, np.float32)], axis=2)
    image[: height // 4, : width // 4] = 255
    return image.astype(np.uint8)


def save_with_orientation(path, bgr: np.ndarray, orientation: int, **options) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(path, exif=exif.tobytes(), **options)


# EXIF orientation -> what turns the stored pixels upright (3: half turn, 6: a quarter turn clockwise, 8: counter-).
UPRIGHT = {1: lambda a: a, 3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_of_png_files_is_applied(tmp_path, orientation) -> None:
    stored = patterned_image(12, 20)
    save_with_orientation(tmp_path / "photo.png", stored, orientation)
    (item,) = iterate_sources(tmp_path / "photo.png")
    assert np.array_equal(item.image, UPRIGHT[orientation](stored))  # PNG is lossless: exact


def test_a_phone_jpeg_tagged_orientation_6_is_returned_upright(tmp_path) -> None:
    stored = patterned_image(40, 64)
    path = tmp_path / "phone.jpg"
    save_with_orientation(path, stored, 6, quality=95)
    image = read_image(str(path))
    assert image.shape == (64, 40, 3)  # portrait, as the phone shows it
    raw = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # the stored (landscape) pixels
    assert np.array_equal(image, cv2.rotate(raw, cv2.ROTATE_90_CLOCKWISE))
    difference = np.abs(image.astype(np.int16) - np.rot90(stored, -1).astype(np.int16))
    assert difference.mean() < 2.0
    assert image[:10, -10:].min() > 230  # the bright top-left corner of the stored image is now top-right


def write_video(path, frames: int, size=(48, 64), fps: float = 10.0, codec: str = "MJPG") -> list:
    """Writes ``frames`` distinct smooth frames with cv2.VideoWriter; returns them (BGR uint8)."""
    height, width = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {codec} to {path}"
    written = []
    for index in range(frames):
        frame = np.empty((height, width, 3), np.uint8)
        level = 20 + 200 * index // max(frames - 1, 1)
        frame[:] = (level, 120, 240 - level)
        left = 4 * index % (width - 16)
        frame[8:24, left : left + 16] = 250
        writer.write(frame)
        written.append(frame)
    writer.release()
    return written


def test_video_files_give_one_image_per_frame(tmp_path) -> None:
    written = write_video(tmp_path / "clip.avi", 7, fps=12.0)
    items = list(iterate_sources(tmp_path / "clip.avi"))
    assert len(items) == 7
    assert [item.frame for item in items] == list(range(1, 8))
    assert items[4].path == f"{tmp_path / 'clip.avi'} frame 5" and items[4].video == str(tmp_path / "clip.avi")
    assert all(item.is_frame and item.fps == 12.0 and item.frames == 7 for item in items)
    for item, frame in zip(items, written):
        assert item.image.shape == (48, 64, 3) and item.image.dtype == np.uint8
        assert np.abs(item.image.astype(np.int16) - frame.astype(np.int16)).mean() < 3.0  # MJPG is lossy


def test_directories_mix_images_and_videos_and_number_their_sources(tmp_path) -> None:
    write_video(tmp_path / "b.avi", 3)
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((5, 6, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((7, 8, 3), np.uint8))
    items = list(iterate_sources(tmp_path))
    assert [(item.index, item.count, item.frame) for item in items] == [
        (0, 3, None),
        (1, 3, 1),
        (1, 3, 2),
        (1, 3, 3),
        (2, 3, None),
    ]
    assert not items[0].is_frame and items[0].video is None and items[0].fps is None


def test_videos_are_read_one_frame_at_a_time(tmp_path, monkeypatch) -> None:
    write_video(tmp_path / "long.avi", 20)
    reads = []
    real_capture = cv2.VideoCapture

    class CountingCapture:
        def __init__(self, *args):
            self.capture = real_capture(*args)

        def read(self):
            reads.append(1)
            return self.capture.read()

        def __getattr__(self, name):
            return getattr(self.capture, name)

    monkeypatch.setattr(cv2, "VideoCapture", CountingCapture)
    frames = iterate_sources(tmp_path / "long.avi")
    next(frames), next(frames)
    assert len(reads) == 2  # nothing is read ahead: constant memory whatever the length
    frames.close()


def test_unreadable_videos_and_absent_cameras_are_named(tmp_path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 10)
    with pytest.raises(ValueError, match=r"cannot open video file .*broken\.mp4"):
        list(iterate_sources(tmp_path / "broken.mp4"))
    for camera in (987, "987"):  # no machine has a 988th camera
        with pytest.raises(OSError, match="cannot open camera 987"):
            list(iterate_sources(camera))
    with pytest.raises(ValueError, match="non-negative"):
        resolve_sources(-1)
    with pytest.raises(TypeError, match="unsupported source type bool"):
        resolve_sources(True)


def test_a_file_named_with_digits_is_a_file_not_a_camera(tmp_path, monkeypatch) -> None:
    (tmp_path / "0").write_bytes(cv2.imencode(".png", np.zeros((3, 3, 3), np.uint8))[1].tobytes())
    monkeypatch.chdir(tmp_path)
    (entry,) = resolve_sources("0")
    assert entry.kind == "image" and entry.value == "0"
    assert resolve_sources(0)[0].kind == "camera"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture()
def image_server(tmp_path):
    """Serves tmp_path/www over http on 127.0.0.1 (a free port) from a thread; yields (base URL, folder)."""
    folder = tmp_path / "www"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_urls_are_downloaded_read_and_deleted(image_server, tmp_path, monkeypatch) -> None:
    base, folder = image_server
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("PYSALIENT_OFFLINE", raising=False)
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    image = np.random.default_rng(3).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "remote.png"), image)
    (item,) = iterate_sources(f"{base}/remote.png")
    assert item.path == f"{base}/remote.png" and np.array_equal(item.image, image)
    assert list(temporary.iterdir()) == []  # the download is deleted once read
    write_video(folder / "remote.avi", 4)
    assert [item.frame for item in iterate_sources(f"{base}/remote.avi")] == [1, 2, 3, 4]
    assert list(temporary.iterdir()) == []
    with pytest.raises(OSError, match=r"cannot download .*/absent\.png: .*404"):
        list(iterate_sources(f"{base}/absent.png"))
    (folder / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot decode image file http://.*/text\.png"):
        list(iterate_sources(f"{base}/text.png"))
    assert list(temporary.iterdir()) == []


def test_offline_mode_refuses_urls(monkeypatch) -> None:
    monkeypatch.setenv("PYSALIENT_OFFLINE", "1")
    with pytest.raises(ValueError, match="offline mode forbids downloading the source https://example.com/a.jpg"):
        list(iterate_sources("https://example.com/a.jpg"))
    assert resolve_sources("https://example.com/a.jpg")[0].kind == "url"  # resolving never downloads


@pytest.mark.parametrize("name", ["sparseinst", "rdpnet"])
def test_an_image_too_elongated_for_the_resize_rule_is_named(name: str) -> None:
    import pysalient

    model = pysalient.load(name)
    with pytest.raises(ValueError, match="1x5000 image is too elongated for the resize rule"):
        model.predict(np.zeros((1, 5000, 3), np.uint8))
