"""The ``pysalient`` console script: every command's help, real output files, clear errors."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import pysalient
from pysalient.cli import environment_report, main
from tests.engine.test_evaluator import write_dataset

COMMANDS = [["predict"], ["train"], ["eval"], ["models"], ["env"], ["data"], ["data", "synth"], ["export"]]
HAS_SYNTHESIZE = importlib.util.find_spec("pysalient.data") is not None and hasattr(
    importlib.import_module("pysalient.data"), "synthesize"
)


def test_env_report_names_versions_and_op_library(capsys) -> None:
    assert main(["env"]) == 0
    printed = capsys.readouterr().out
    assert f"torch                {torch.__version__}" in printed
    report = environment_report()
    assert report["pysalient"] == pysalient.__version__
    assert report["native ops"].endswith("libpysalient_ops.so")
    assert report["op library version"] == pysalient.__version__
    assert report["threads"] == str(torch.get_num_threads())


def test_module_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "pysalient", "env"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "built against torch" in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: pysalient {' '.join(command)}")


def test_models_lists_every_registered_entry(capsys) -> None:
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "family", "default", "weights"]
    table = lines[1 : lines.index("")]
    rows = {line.split()[0]: line for line in table}
    assert set(rows) == set(pysalient.list_models()) and "sparseinst_r50_giam" in rows
    default = pysalient.engine.loader.get_model_entry("sparseinst").name
    assert rows[default].split()[1:3] == ["sparseinst", "yes"]
    assert rows["sparseinst_r50_giam"].split()[2] != "yes"
    # honest about what each entry's weights are fit for, and plain text (no reST markup)
    assert "synthetic demo" in rows[default] and "SynthSIS" in rows[default]
    assert "published: sparse_inst_r50_giam_aug_2b7d68.pth" in rows["sparseinst_r50_giam"]
    assert not any("``" in line or ":class:" in line for line in lines)
    text = "\n".join(lines)
    assert "pysalient.load('rdpnet_r50', weights='model_final.pth')" in text and "non-commercial" in text


def write_images(folder: Path, sizes) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (height, width) in enumerate(sizes):
        image = np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (255, 255, 255), -1)
        paths.append(folder / f"image{index}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def test_predict_writes_overlays_and_a_coco_like_json(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    paths = write_images(tmp_path / "images", [(48, 64), (70, 40)])
    save_dir = tmp_path / "out"
    arguments = ["--model", "sparseinst_mbv2_tiny", "--imgsz", "64", "--batch", "2", "--device", "cpu"]
    assert main(["predict", str(tmp_path / "images"), *arguments, "--conf", "0.001", "--save-dir", str(save_dir)]) == 0
    captured = capsys.readouterr()
    assert "pysalient: warning: sparseinst_mbv2_tiny has no trained weights" in captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"image 1/2 {paths[0]}: 48x64 ") and lines[1].startswith(f"image 2/2 {paths[1]}: 70x40 ")
    assert re.search(r" instances?, \d+\.\dms read, \d+\.\dms inference, \d+\.\dms postprocess$", lines[0])
    assert re.fullmatch(
        rf"2 image\(s\), \d+ instance\(s\), \d+\.\dms per image: overlays in {re.escape(str(save_dir))}, "
        rf"detections in {re.escape(str(save_dir / 'predictions.json'))}",
        lines[2],
    )
    written = json.loads((save_dir / "predictions.json").read_text())
    assert [image["file_name"] for image in written["images"]] == [str(path) for path in paths]
    assert written["categories"] == [{"id": 1, "name": "salient"}]
    assert len(written["annotations"]) > 0
    for image, path in zip(written["images"], paths):
        overlay = cv2.imread(str(save_dir / image["overlay"]))
        original = cv2.imread(str(path))
        assert overlay.shape == original.shape == (image["height"], image["width"], 3)
        ours = [entry for entry in written["annotations"] if entry["image_id"] == image["id"]]
        for entry in ours:
            assert entry["score"] > 0.001 and mask_utils.decode(entry["segmentation"]).shape == original.shape[:2]
        if ours:  # instances are drawn onto the image
            assert not np.array_equal(overlay, original)
    # Nothing clears a near-1 threshold: the json is still written, with no annotations.
    assert main(["predict", str(paths[0]), *arguments, "--conf", "0.9999", "--save-dir", str(save_dir)]) == 0
    written = json.loads((save_dir / "predictions.json").read_text())
    assert len(written["images"]) == 1 and written["annotations"] == []


def test_predict_numbers_default_run_folders(tmp_path, monkeypatch, capsys) -> None:
    (path,) = write_images(tmp_path, [(40, 40)])
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["predict", str(path), "--model", "sparseinst_mbv2_tiny", "--imgsz", "32", "--device", "cpu"]) == 0
    assert (tmp_path / "runs/predict/exp/image0.jpg").is_file()
    assert (tmp_path / "runs/predict/exp2/predictions.json").is_file()


def test_predict_save_options_write_masks_and_labels_instead_of_overlays(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    (path,) = write_images(tmp_path / "images", [(48, 64)])
    save_dir = tmp_path / "out"
    arguments = ["--model", "sparseinst_mbv2_tiny", "--imgsz", "64", "--device", "cpu", "--conf", "0.001"]
    options = ["--no-save", "--save-masks", "--save-txt", "--save-dir", str(save_dir)]
    assert main(["predict", str(path), *arguments, *options]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert f"masks in {save_dir / 'masks'}, labels in {save_dir / 'labels'}" in summary and "overlays" not in summary
    assert sorted(p.name for p in save_dir.iterdir()) == ["labels", "masks", "predictions.json"]
    written = json.loads((save_dir / "predictions.json").read_text())
    annotations = written["annotations"]
    assert "overlay" not in written["images"][0] and len(annotations) > 0
    lines = (save_dir / "labels" / "image0.txt").read_text().splitlines()
    assert len(lines) == len(annotations) == len(list((save_dir / "masks").iterdir()))
    for index, (line, entry) in enumerate(zip(lines, annotations)):
        label, x1, y1, x2, y2, score = line.split()
        x, y, w, h = entry["bbox"]
        assert int(label) == entry["category_id"] - 1 and float(score) == pytest.approx(entry["score"], abs=1e-6)
        assert [float(x1), float(y1), float(x2), float(y2)] == pytest.approx(
            [x / 64, y / 48, (x + w) / 64, (y + h) / 48]
        )
        mask = cv2.imread(str(save_dir / "masks" / f"image0_{index}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(mask == 255, mask_utils.decode(entry["segmentation"]).astype(bool))


def test_predict_a_video_writes_an_annotated_video_and_frame_entries(tmp_path, capsys) -> None:
    from tests.engine.test_sources import write_video

    write_video(tmp_path / "clip.avi", 3, fps=5.0)
    save_dir = tmp_path / "out"
    arguments = ["--model", "sparseinst_mbv2_tiny", "--imgsz", "32", "--device", "cpu", "--save-dir", str(save_dir)]
    assert main(["predict", str(tmp_path / "clip.avi"), *arguments]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [
        f"video 1/1 (frame {number}/3) {tmp_path / 'clip.avi'}" for number in (1, 2, 3)
    ]
    assert lines[3].startswith("3 image(s), ")
    (video,) = [p for p in save_dir.iterdir() if p.stem == "clip"]
    capture = cv2.VideoCapture(str(video))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    assert sum(1 for _ in iter(lambda: capture.read()[0] or None, None)) == 3
    capture.release()
    written = json.loads((save_dir / "predictions.json").read_text())
    assert [(image["frame"], image["overlay"]) for image in written["images"]] == [(n, video.name) for n in (1, 2, 3)]
    assert {image["file_name"] for image in written["images"]} == {str(tmp_path / "clip.avi")}


def test_a_missing_source_or_a_non_json_dataset_fails_in_one_line_and_creates_nothing(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "nope.jpg", "--model", "sparseinst_mbv2_tiny"]) == 1
    err = capsys.readouterr().err
    assert err == "pysalient predict: error: image source not found: nope.jpg\n"
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.zeros((4, 4, 3), np.uint8))
    assert main(["eval", "--model", "sparseinst_mbv2_tiny", "--data", "photo.jpg"]) == 1
    err = capsys.readouterr().err
    assert err == "pysalient eval: error: --data needs a COCO instances json (a .json file), got photo.jpg\n"
    assert main(["predict", "987", "--model", "sparseinst_mbv2_tiny", "--device", "cpu"]) == 1  # no such camera
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "pysalient predict: error: cannot open camera 987: no such device, it is in use, or access is denied"
    )
    assert not (tmp_path / "runs").exists()


def test_a_failed_evaluation_leaves_no_run_folder(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.json").write_text("not json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights warning of the model is not the point here
        assert main(["eval", "--model", "sparseinst_mbv2_tiny", "--data", "broken.json", "--device", "cpu"]) == 1
    assert "pysalient eval: error: broken.json: invalid JSON" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json"]


def test_eval_prints_a_table_and_writes_metrics_and_detections(tmp_path, capsys) -> None:
    json_path, _ = write_dataset(tmp_path / "set")
    save_dir = tmp_path / "eval"
    arguments = ["eval", "--model", "sparseinst_mbv2_tiny", "--data", str(json_path), "--imgsz", "64"]
    assert main([*arguments, "--device", "cpu", "--save-dir", str(save_dir)]) == 0
    out = capsys.readouterr().out
    header = ["AP", "AP50", "AP70", "AP75", "APs", "APm", "APl"]
    assert out.splitlines()[0].split() == [*header, "AR@1", "AR@10", "AR@100"]
    assert out.splitlines()[1].startswith("segm") and out.splitlines()[2].startswith("bbox")
    report = json.loads((save_dir / "metrics.json").read_text())
    assert report["model"] == "sparseinst_mbv2_tiny" and report["imgsz"] == 64
    assert len(report["metrics"]) == 20 and report["metrics"]["APl"] is None  # no large instance: null, not NaN
    assert all(0 <= value <= 100 for value in report["metrics"].values() if value is not None)
    ground_truth = COCO(str(json_path))
    ground_truth.loadRes(str(save_dir / "predictions.json"))  # a valid COCO results file of this dataset
    # segment-proposal recalls (InstanceFCN's protocol): AR at the counts asked for, up to that many detections
    assert main([*arguments, "--device", "cpu", "--save-dir", str(tmp_path / "ar"), "--max-dets", "10", "1000"]) == 0
    recalls = json.loads((tmp_path / "ar" / "metrics.json").read_text())["metrics"]
    assert {"AR@10", "AR@1000", "bbox_AR@1000"} <= set(recalls) and "AR@1" not in recalls
    assert recalls["AR@1000"] >= recalls["AR@10"] and recalls["AP"] == report["metrics"]["AP"]
    with pytest.raises(SystemExit):
        main([*arguments, "--max-dets", "0"])
    assert "--max-dets: expected a positive integer" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_SYNTHESIZE, reason="pysalient.data.synthesize is not available yet")
def test_data_synth_writes_images_and_json_that_eval_reads(tmp_path, capsys) -> None:
    out = tmp_path / "synth"
    assert (
        main(["data", "synth", "--out", str(out), "--val", "2", "--test", "1", "--size", "48x64", "--seed", "3"]) == 0
    )
    printed = capsys.readouterr().out
    for split, count in (("val", 2), ("test", 1)):
        json_path = out / "annotations" / f"{split}.json"
        assert f"{split}: " in printed and json_path.is_file()
        dataset = json.loads(json_path.read_text())
        assert len(dataset["images"]) == count and dataset["annotations"]
        for image in dataset["images"]:
            assert cv2.imread(str(out / "images" / image["file_name"])).shape == (48, 64, 3)
    assert not (out / "annotations" / "train.json").exists()
    arguments = ["eval", "--model", "sparseinst_mbv2_tiny", "--data", str(out / "annotations" / "val.json")]
    assert main([*arguments, "--imgsz", "48", "--device", "cpu", "--save-dir", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert not math.isnan(metrics["AP50"] or 0.0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["predict"], "the following arguments are required: source"),
        (["predict", "x.png", "--batch", "0"], "argument --batch: expected a positive integer, got '0'"),
        (["eval", "--model", "sparseinst"], "the following arguments are required: --data"),
        (["data", "synth", "--out", "d", "--size", "0x5"], "expected a size S or HxW with positive integers"),
        (["data", "synth", "--out", "d", "--train", "-1"], "expected a non-negative integer, got '-1'"),
        (["export", "--format", "tflite", "--output", "m.tflite"], "argument --format: invalid choice: 'tflite'"),
        (["segment"], "invalid choice: 'segment'"),
    ],
)
def test_bad_arguments_exit_with_2_and_say_why(arguments, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_runtime_errors_exit_with_1_without_traceback_unless_verbose(tmp_path, capsys) -> None:
    missing = str(tmp_path / "missing.json")
    assert main(["eval", "--model", "sparseinst_mbv2_tiny", "--data", missing, "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert f"pysalient eval: error: COCO json not found: {missing}" in err and "Traceback" not in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the source is checked before the model is loaded: no weights warning
        assert main(["predict", str(tmp_path / "none.png"), "--model", "sparseinst_mbv2_tiny", "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "pysalient predict: error: image source not found" in err
    assert main(["data", "synth", "--out", str(tmp_path / "d")]) == 1
    assert "nothing to generate" in capsys.readouterr().err
    write_images(tmp_path, [(8, 8)])  # a valid source: the model name is what is wrong
    assert main(["predict", str(tmp_path), "--model", "maskrcnn"]) == 1
    assert "pysalient predict: error: unknown model 'maskrcnn'" in capsys.readouterr().err


def test_train_passes_the_config_file_and_overrides_to_the_trainer(tmp_path, monkeypatch, capsys) -> None:
    # A real run is covered by the trainer's tests (even one iteration costs tens of seconds on 2 busy cores).
    from pysalient.engine import trainer

    calls = []

    def fake_main_train(config_path, overrides):
        calls.append((config_path, overrides))
        return tmp_path / "runs" / "train" / "exp3"

    monkeypatch.setattr(trainer, "main_train", fake_main_train)
    assert main(["train", "--config", "recipe.yaml", "lr=1e-3", "train_sizes=[256,288]"]) == 0
    assert main(["train"]) == 0
    assert calls == [("recipe.yaml", ["lr=1e-3", "train_sizes=[256,288]"]), (None, [])]
    assert f"training run saved in {tmp_path / 'runs' / 'train' / 'exp3'}" in capsys.readouterr().out


def test_train_reports_bad_settings_by_name(tmp_path, capsys) -> None:
    assert main(["train", "bogus_key=1", f"project={tmp_path}"]) == 1
    assert "pysalient train: error: unknown TrainConfig keys ['bogus_key']" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in capsys.readouterr().err


def test_export_writes_a_torchscript_file_that_load_runs(tmp_path, capsys) -> None:
    output = tmp_path / "model.ts"
    arguments = ["export", "--model", "sparseinst_mbv2_tiny", "--format", "torchscript", "--output", str(output)]
    assert main([*arguments, "--imgsz", "64", "--conf", "0.2", "--max-det", "7", "--device", "cpu"]) == 0
    assert f"to {output}" in capsys.readouterr().out
    (path,) = write_images(tmp_path, [(50, 70)])
    (result,) = pysalient.load(str(output), device="cpu").predict(str(path))
    assert result.image_size == (50, 70) and len(result) <= 7 and bool((result.scores > 0.2).all())


def test_export_writes_an_onnx_model_that_load_runs_and_evaluates(tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    output = tmp_path / "model.onnx"
    arguments = ["export", "--model", "sparseinst_mbv2_tiny", "--format", "onnx", "--output", str(output)]
    assert main([*arguments, "--imgsz", "64", "--conf", "0.2", "--max-det", "7", "--device", "cpu"]) == 0
    assert f"to {output}" in capsys.readouterr().out
    (path,) = write_images(tmp_path, [(50, 70)])
    loaded = pysalient.load(str(output), device="cpu")
    (result,) = loaded.predict(str(path))
    assert loaded.format == "onnx" and loaded.metadata["max_det"] == 7
    assert result.image_size == (50, 70) and len(result) <= 7 and bool((result.scores > 0.2).all())
    data, _ = write_dataset(tmp_path / "data")
    save_dir = tmp_path / "eval"
    assert main(["eval", "--model", str(output), "--data", str(data), "--save-dir", str(save_dir)]) == 0
    assert json.loads((save_dir / "metrics.json").read_text())["imgsz"] == 64


def test_exported_models_evaluate_and_refuse_what_they_cannot_do(tmp_path, capsys) -> None:
    output = tmp_path / "model.ts"
    export = [
        "export",
        "--model",
        "sparseinst_mbv2_tiny",
        "--format",
        "torchscript",
        "--output",
        str(output),
        "--imgsz",
        "64",
    ]
    assert main([*export, "--device", "cpu"]) == 0
    data, _ = write_dataset(tmp_path / "data")
    save_dir = tmp_path / "eval"
    assert main(["eval", "--model", str(output), "--data", str(data), "--save-dir", str(save_dir)]) == 0
    report = json.loads((save_dir / "metrics.json").read_text())
    assert report["imgsz"] == 64 and set(report["metrics"]) >= {"AP", "AP50", "bbox_AP"}
    capsys.readouterr()
    again = ["export", "--model", str(output), "--format", "torchscript", "--output", str(tmp_path / "again.ts")]
    assert main(again) == 1
    err = capsys.readouterr().err
    assert "pysalient export: error:" in err and "cannot export" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--device", "tpu"], "invalid device 'tpu'"),
        (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "nope"], "device"),
    ],
)
def test_bad_device_is_one_line(arguments, message, tmp_path, capsys) -> None:
    (path,) = write_images(tmp_path, [(20, 30)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights warning of the model is not the point here
        code = main(["predict", str(path), "--model", "sparseinst_mbv2_tiny", "--save-dir", str(tmp_path), *arguments])
    assert code == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_one_default_conf_for_api_and_cli() -> None:
    from pysalient import cli
    from pysalient.models.family import DEFAULT_CONF, EVALUATION_CONF

    assert (cli.DEFAULT_CONF, cli.EVALUATION_CONF) == (DEFAULT_CONF, EVALUATION_CONF)
    assert pysalient.load("sparseinst", device="cpu").default_conf == DEFAULT_CONF


def test_train_help_lists_every_setting_and_the_run_folder(capsys) -> None:
    from pysalient.engine.train_config import field_names

    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert all(f"  {name}=" in out for name in field_names())
    assert "weights.pth (the final" in out and "resume=true continues" in out


@pytest.mark.parametrize("command", [["predict", "x.jpg"], ["eval", "--data", "x.json"], ["export", "--format=aoti"]])
@pytest.mark.parametrize("conf", ["nan", "inf", "-0.1", "1.5", "half"])
def test_conf_outside_0_1_is_an_argument_error(command, conf, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*command, "--conf", conf])
    assert stop.value.code == 2
    assert f"argument --conf: expected a number in [0, 1], got '{conf}'" in capsys.readouterr().err


def test_runtime_errors_of_torch_are_one_line_errors(tmp_path, monkeypatch, capsys) -> None:
    import pysalient

    def failing_load(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(pysalient, "load", failing_load)
    write_images(tmp_path, [(8, 8)])
    assert main(["predict", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "pysalient predict: error: CUDA error: out of memory\n"
    assert main(["predict", str(tmp_path), "--verbose"]) == 1
    assert "Traceback" in capsys.readouterr().err
