"""predict(save=..., save_masks=..., save_txt=..., save_json=..., verbose=...): the files it writes and the lines
it prints, on a deterministic colour-threshold Predictor (every expected value is known exactly)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np
import pytest
import torch

from pysalient.engine.predictor import Detections, Predictor
from pysalient.engine.saving import PredictionWriter, label_lines, source_stem
from pysalient.structures import Result, masks_to_boxes
from pysalient.utils.image_io import SourceImage

HEIGHT, WIDTH = 40, 60
RED, BLUE = (0, 0, 255), (255, 0, 0)


class ColourDetector(Predictor):
    """Instance 0 ("red", score 0.9): the red pixels; instance 1 ("blue", score 0.6): the blue ones."""

    names = {0: "red", 1: "blue"}
    name = "colour_detector"

    def __init__(self) -> None:
        self.batches: List[int] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def default_conf(self) -> float:
        return 0.3

    @property
    def test_size(self) -> int:
        return 64

    def _detect_batch(
        self, images: Sequence[np.ndarray], conf: float, imgsz: Optional[int], max_det: Optional[int]
    ) -> List[Detections]:
        self.batches.append(len(images))
        detections = []
        for image in images:
            channels = image.astype(np.int16)
            red = (channels[:, :, 2] > 150) & (channels[:, :, 0] < 100)
            blue = (channels[:, :, 0] > 150) & (channels[:, :, 2] < 100)
            masks = torch.from_numpy(np.stack([red, blue]))
            keep = masks.flatten(1).any(dim=1) & (torch.tensor([0.9, 0.6]) > conf)
            masks = masks[keep]
            scores, labels = torch.tensor([0.9, 0.6])[keep], torch.tensor([0, 1])[keep]
            detections.append((masks_to_boxes(masks), scores, labels, masks.to(torch.uint8)))
        return detections


def scene(red_left: int = 15) -> np.ndarray:
    """Black HEIGHTxWIDTH BGR image: a red box at rows 5:15, columns red_left:red_left+30, a blue one at 20:35, 0:30."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[5:15, red_left : red_left + 30] = RED
    image[20:35, 0:30] = BLUE
    return image


def write_scenes(folder: Path, names: Sequence[str]) -> List[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        paths.append(folder / name)
        cv2.imwrite(str(paths[-1]), scene())
    return paths


def write_clip(path: Path, frames: int, fps: float = 8.0) -> List[np.ndarray]:
    """An MJPG video whose red box moves one pixel right per frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    written = [scene(red_left=10 + index) for index in range(frames)]
    for frame in written:
        writer.write(frame)
    writer.release()
    return written


def read_all_frames(path: Path) -> List[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_save_masks_and_txt_write_exact_values(tmp_path) -> None:
    (path,) = write_scenes(tmp_path / "images", ["street.png"])
    out = tmp_path / "out"
    (result,) = ColourDetector().predict(str(path), save=True, save_masks=True, save_txt=True, save_dir=out)
    assert result.save_dir == str(out) and len(result) == 2
    overlay = cv2.imread(str(out / "street.jpg"))
    assert overlay.shape == (HEIGHT, WIDTH, 3)
    assert np.array_equal(overlay, cv2.imdecode(cv2.imencode(".jpg", result.plot())[1], cv2.IMREAD_COLOR))
    for index in range(2):
        mask = cv2.imread(str(out / "masks" / f"street_{index}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        assert np.array_equal(mask == 255, result.masks[index].numpy())
    assert not (out / "masks" / "street_2.png").exists()
    lines = (out / "labels" / "street.txt").read_text().splitlines()
    assert lines == [
        "0 0.250000 0.125000 0.750000 0.375000 0.900000",  # red: x 15..45 of 60, y 5..15 of 40
        "1 0.000000 0.500000 0.500000 0.875000 0.600000",  # blue: x 0..30, y 20..35
    ]
    assert sorted(p.name for p in out.iterdir()) == ["labels", "masks", "street.jpg"]  # no json unless asked


def test_save_json_writes_a_coco_like_file_and_empty_images_keep_their_files(tmp_path) -> None:
    paths = write_scenes(tmp_path / "images", ["a.png"])
    empty = tmp_path / "images" / "b.png"
    cv2.imwrite(str(empty), np.zeros((10, 12, 3), np.uint8))
    out = tmp_path / "out"
    ColourDetector().predict([str(paths[0]), str(empty)], save_txt=True, save_json=True, save_dir=out)
    written = json.loads((out / "predictions.json").read_text())
    assert [(image["id"], image["file_name"]) for image in written["images"]] == [(1, str(paths[0])), (2, str(empty))]
    assert "overlay" not in written["images"][0]  # no overlays were asked for
    assert [(entry["image_id"], entry["category_id"], entry["bbox"]) for entry in written["annotations"]] == [
        (1, 1, [15.0, 5.0, 30.0, 10.0]),
        (1, 2, [0.0, 20.0, 30.0, 15.0]),
    ]
    assert written["categories"] == [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]
    assert (out / "labels" / "b.txt").read_text() == ""  # one label file per image, even without instances


def test_default_save_dir_is_numbered_and_created_only_when_something_is_written(tmp_path, monkeypatch) -> None:
    (path,) = write_scenes(tmp_path / "images", ["a.png"])
    monkeypatch.chdir(tmp_path)
    model = ColourDetector()
    (result,) = model.predict(str(path))
    assert result.save_dir is None and not (tmp_path / "runs").exists()
    with pytest.raises(FileNotFoundError, match="image source not found"):
        model.predict(str(tmp_path / "nope.jpg"), save=True)
    assert not (tmp_path / "runs").exists()
    first = model.predict(str(path), save=True)[0]
    second = model.predict(str(path), save_masks=True)[0]
    assert (first.save_dir, second.save_dir) == (str(Path("runs/predict/exp")), str(Path("runs/predict/exp2")))
    assert (tmp_path / "runs/predict/exp/a.jpg").is_file()
    assert sorted(p.name for p in (tmp_path / "runs/predict/exp2/masks").iterdir()) == ["a_0.png", "a_1.png"]


def test_identical_stems_and_in_memory_sources_get_distinct_names(tmp_path) -> None:
    first = write_scenes(tmp_path / "one", ["x.png"])[0]
    second = write_scenes(tmp_path / "two", ["x.png"])[0]
    out = tmp_path / "out"
    ColourDetector().predict([str(first), str(second), scene(), scene()], save=True, save_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["numpy_array.jpg", "numpy_array_2.jpg", "x.jpg", "x_2.jpg"]


def test_video_frames_are_saved_as_an_annotated_video(tmp_path) -> None:
    written = write_clip(tmp_path / "clip.avi", 6, fps=8.0)
    out = tmp_path / "out"
    model = ColourDetector()
    results = model.predict(str(tmp_path / "clip.avi"), save=True, save_masks=True, save_txt=True, save_dir=out)
    assert [result.path for result in results] == [f"{tmp_path / 'clip.avi'} frame {n}" for n in range(1, 7)]
    (video,) = [p for p in out.iterdir() if p.suffix in (".mp4", ".avi")]
    assert video.stem == "clip"
    frames = read_all_frames(video)
    assert len(frames) == 6
    capture = cv2.VideoCapture(str(video))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(8.0)
    capture.release()
    for frame, result in zip(frames, results):  # lossy codecs: close to the plot, closer than to the bare frame
        to_plot = np.abs(frame.astype(np.int16) - result.plot().astype(np.int16)).mean()
        assert to_plot < 20 and to_plot < np.abs(frame.astype(np.int16) - result.orig_img.astype(np.int16)).mean()
    # The red box moved one pixel a frame: the label files follow it.
    first = (out / "labels" / "clip_1.txt").read_text().split()
    last = (out / "labels" / "clip_6.txt").read_text().split()
    assert float(last[1]) - float(first[1]) == pytest.approx(5 / WIDTH, abs=1.5 / WIDTH)
    assert (out / "masks" / "clip_6_0.png").is_file() and len(written) == 6


def test_streaming_a_video_reads_and_writes_as_it_goes(tmp_path, monkeypatch) -> None:
    write_clip(tmp_path / "long.avi", 24)
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
    model = ColourDetector()
    stream = model.predict(str(tmp_path / "long.avi"), stream=True, batch=2, save_txt=True, save_dir=tmp_path / "out")
    next(stream)
    assert len(reads) == 2 and model.batches == [2]  # one batch read, nothing more buffered
    assert sorted(p.name for p in (tmp_path / "out/labels").iterdir()) == ["long_1.txt"]
    rest = list(stream)
    assert len(rest) == 23 and len(reads) == 25  # 24 frames and the read that finds the end


def test_verbose_prints_one_line_per_image_and_nothing_by_default(tmp_path, capsys) -> None:
    paths = write_scenes(tmp_path, ["a.png", "b.png"])
    write_clip(tmp_path / "c.avi", 2)
    model = ColourDetector()
    model.predict([str(paths[0]), str(paths[1]), str(tmp_path / "c.avi")])
    assert capsys.readouterr().out == ""
    model.predict([str(paths[0]), str(paths[1]), str(tmp_path / "c.avi")], verbose=True)
    lines = capsys.readouterr().out.splitlines()
    timing = r"\d+\.\dms read, \d+\.\dms inference, \d+\.\dms postprocess"
    assert len(lines) == 4
    assert re.fullmatch(rf"image 1/3 {re.escape(str(paths[0]))}: 40x60 2 instances, {timing}", lines[0])
    assert lines[1].startswith(f"image 2/3 {paths[1]}: 40x60 2 instances, ")
    video = re.escape(str(tmp_path / "c.avi"))
    assert re.fullmatch(rf"video 3/3 \(frame 1/2\) {video}: 40x60 2 instances, {timing}", lines[2])
    assert lines[3].startswith("video 3/3 (frame 2/2) ")
    model.predict(np.zeros((8, 9, 3), np.uint8), verbose=True)
    assert capsys.readouterr().out.startswith("image 1/1 numpy array: 8x9 0 instances, ")


def test_label_lines_and_stems() -> None:
    masks = torch.zeros(1, 50, 200, dtype=torch.bool)
    masks[0, 10:20, 50:150] = True
    result = Result(masks, masks_to_boxes(masks), torch.tensor([0.123456789]), torch.tensor([3]))
    assert label_lines(result) == ["3 0.250000 0.200000 0.750000 0.400000 0.123457"]
    assert label_lines(result, decimals=2) == ["3 0.25 0.20 0.75 0.40 0.12"]
    image = np.zeros((1, 1, 3), np.uint8)
    assert source_stem(SourceImage(image, "/data/my photo.jpg")) == "my_photo"
    assert source_stem(SourceImage(image, "https://host/dir/cat.png?size=2")) == "cat"
    assert source_stem(SourceImage(image, "camera 0 frame 4", video="camera 0", frame=4)) == "camera_0"
    assert source_stem(SourceImage(image, "tensor 1")) == "tensor_1"


def test_a_writer_with_nothing_to_write_creates_nothing(tmp_path) -> None:
    writer = PredictionWriter({0: "salient"}, save_dir=tmp_path / "never")
    assert not writer.enabled
    with writer:
        pass
    assert not (tmp_path / "never").exists() and writer.save_dir is None
    assert writer.describe() == f"nothing saved (folder {tmp_path / 'never'})"
