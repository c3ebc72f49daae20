"""COCO evaluation: hand-computed APs, empty and malformed inputs, results json, whole-model evaluation."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import pysalient
from pysalient.engine.evaluator import (
    category_mapping,
    evaluate_model,
    evaluate_predictions,
    format_metrics,
    write_json_atomic,
)
from pysalient.models.family import EVALUATION_CONF
from pysalient.structures import Result, masks_to_boxes

SIZE = 20


def box_mask(y0: int, y1: int, x0: int, x1: int, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """bool [height, width], True on rows y0..y1-1 and columns x0..x1-1."""
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rle(mask: np.ndarray) -> Dict[str, Any]:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode("ascii")
    return encoded


def xywh(mask: np.ndarray) -> List[float]:
    x1, y1, x2, y2 = masks_to_boxes(torch.from_numpy(mask)[None])[0].tolist()
    return [x1, y1, x2 - x1, y2 - y1]


# Three 10x10 ground-truth instances (area 100: all "small"): A and B in image 11, C in image 12.
A, B, C = box_mask(0, 10, 0, 10), box_mask(10, 20, 10, 20), box_mask(5, 15, 5, 15)


def ground_truth(categories: Tuple[int, int, int] = (7, 7, 7)) -> COCO:
    annotations = [
        {"id": index + 1, "image_id": image_id, "category_id": category, "segmentation": rle(mask), "area": 100,
         "bbox": xywh(mask), "iscrowd": 0}
        for index, (image_id, mask, category) in enumerate(zip((11, 11, 12), (A, B, C), categories))
    ]  # fmt: skip
    coco = COCO()
    coco.dataset = {
        "images": [
            {"id": image_id, "file_name": f"{image_id}.png", "height": SIZE, "width": SIZE} for image_id in (11, 12)
        ],
        "annotations": annotations,
        "categories": [{"id": category, "name": f"c{category}"} for category in sorted(set(categories))],
    }
    coco.createIndex()
    return coco


def detection(image_id: int, mask: np.ndarray, score: float, category_id: int = 7) -> Dict[str, Any]:
    return {"image_id": image_id, "category_id": category_id, "segmentation": rle(mask), "bbox": xywh(mask),
            "score": score}  # fmt: skip


def assert_metrics(metrics: Dict[str, float], expected: Dict[str, Optional[float]], prefix: str = "") -> None:
    for name, value in expected.items():
        if value is None:
            assert math.isnan(metrics[prefix + name]), (prefix + name, metrics[prefix + name])
        else:
            assert metrics[prefix + name] == pytest.approx(value, rel=1e-6, abs=1e-9), (prefix + name, metrics)


def same_everywhere(ap: float, ap50: float, ap70: float, ap75: float) -> Dict[str, Optional[float]]:
    # Every instance is small, so APs equals AP and the medium/large ranges have no ground truth (NaN).
    return {"AP": ap, "AP50": ap50, "AP70": ap70, "AP75": ap75, "APs": ap, "APm": None, "APl": None}


def test_perfect_predictions_score_100() -> None:
    results = [detection(11, A, 0.9), detection(11, B, 0.8), detection(12, C, 0.7)]
    metrics = evaluate_predictions(ground_truth(), results)
    assert set(metrics) == {prefix + name for prefix in ("", "bbox_") for name in
                            ("AP", "AP50", "AP70", "AP75", "APs", "APm", "APl", "AR@1", "AR@10", "AR@100")}  # fmt: skip
    for prefix in ("", "bbox_"):
        assert_metrics(metrics, same_everywhere(100, 100, 100, 100), prefix)
        # one detection per image finds A or B in image 11 and C in image 12: recall 2/3 at every IoU threshold
        assert_metrics(metrics, {"AR@1": 200 / 3, "AR@10": 100.0, "AR@100": 100.0}, prefix)


def test_average_recall_at_max_dets_equals_cocoeval_stats() -> None:
    # Many detections of varied quality per image: the AR@N must be COCOeval.summarize's stats[6:9] for maxDets
    # (10, 100, 1000) and the APs those of the default maxDets, whatever counts are asked for.
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    results = []
    for image_id, truth in ((11, A), (11, B), (12, C)):
        for _ in range(700):
            dy, dx = rng.integers(-4, 5, size=2)
            shifted = np.roll(np.roll(truth, dy, axis=0), dx, axis=1)
            results.append(detection(image_id, shifted, float(rng.uniform(0, 1))))
    metrics = evaluate_predictions(ground_truth(), results, iou_types=("segm",), max_dets=[1000, 10, 100])
    assert [name for name in metrics if name.startswith("AR@")] == ["AR@10", "AR@100", "AR@1000"]

    def stats(max_dets: List[int]) -> np.ndarray:
        coco_gt = ground_truth()
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "segm")
            evaluator.params.maxDets = max_dets
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return evaluator.stats * 100

    proposal, standard = stats([10, 100, 1000]), stats([1, 10, 100])
    assert metrics["AR@1000"] > metrics["AR@100"] > metrics["AR@10"] > 0
    for index, name in zip((6, 7, 8), ("AR@10", "AR@100", "AR@1000")):
        assert metrics[name] == pytest.approx(proposal[index], abs=1e-9)
    for index, name in enumerate(("AP", "AP50", "AP75", "APs")):
        assert metrics[name] == pytest.approx(standard[index], abs=1e-9)
    for bad in ([], [0], [10, 1.5], "100", [True]):
        with pytest.raises(ValueError, match="max_dets"):
            evaluate_predictions(ground_truth(), results[:3], max_dets=bad)


def test_missed_instance_caps_recall_at_two_thirds() -> None:
    # Precision 1 up to recall 2/3: the 67 recall points 0.00..0.66 score 1, the rest 0.
    metrics = evaluate_predictions(ground_truth(), [detection(11, A, 0.9), detection(12, C, 0.7)], ("segm",))
    ap = 67 / 101 * 100
    assert_metrics(metrics, same_everywhere(ap, ap, ap, ap))
    assert not any(name.startswith("bbox_") for name in metrics)


def test_false_positive_above_true_positives_lowers_the_interpolated_precision() -> None:
    # Ranked: A (tp), distractor (fp), B (tp), C (tp) -> precision 1, 1/2, 2/3, 3/4 at recall 1/3, 1/3, 2/3, 1.
    # Interpolated (max to the right): 1 for recall <= 1/3 (34 points), 3/4 for the other 67.
    distractor = box_mask(0, 5, 15, 20)
    results = [detection(11, A, 0.9), detection(12, distractor, 0.8), detection(11, B, 0.7), detection(12, C, 0.6)]
    ap = (34 * 1 + 67 * 0.75) / 101 * 100
    metrics = evaluate_predictions(ground_truth(), results)
    assert_metrics(metrics, same_everywhere(ap, ap, ap, ap))
    assert_metrics(metrics, same_everywhere(ap, ap, ap, ap), "bbox_")


def test_iou_of_exactly_072_counts_at_070_but_not_at_075() -> None:
    # B' covers 8x9 = 72 of B's 100 pixels (mask and box IoU 0.72). From IoU 0.75 on it is a false positive
    # ranked between A and C: precision 1 for recall <= 1/3 (34 points), 2/3 up to recall 2/3 (33 points), then 0.
    partial_b = box_mask(10, 18, 10, 19)
    assert (partial_b & B).sum() / (partial_b | B).sum() == 0.72
    results = [detection(11, A, 0.9), detection(11, partial_b, 0.8), detection(12, C, 0.7)]
    strict = (34 + 33 * 2 / 3) / 101 * 100
    ap = (5 * 100 + 5 * strict) / 10  # thresholds 0.50..0.70 are perfect, 0.75..0.95 are not
    metrics = evaluate_predictions(ground_truth(), results)
    for prefix in ("", "bbox_"):
        assert_metrics(metrics, same_everywhere(ap, 100, 100, strict), prefix)


def test_class_agnostic_evaluation_ignores_categories() -> None:
    # A and C are category 7, B is category 9, but every detection says 7. Class-aware, category 7 ranks A (tp),
    # B (fp), C (tp) against 2 instances: precision 1 up to recall 1/2 (51 points), then 2/3 (50 points);
    # category 9 has recall 0. AP is the mean of the two categories.
    coco = ground_truth((7, 9, 7))
    results = [detection(11, A, 0.9), detection(11, B, 0.8), detection(12, C, 0.7)]
    aware = evaluate_predictions(coco, results, ("segm",))
    ap = (51 + 50 * 2 / 3) / 101 * 100 / 2
    assert_metrics(aware, same_everywhere(ap, ap, ap, ap))
    agnostic = evaluate_predictions(coco, results, ("segm",), class_agnostic=True)
    assert_metrics(agnostic, same_everywhere(100, 100, 100, 100))


def test_no_detections_give_zero_ap_where_there_is_ground_truth() -> None:
    metrics = evaluate_predictions(ground_truth(), [])
    for prefix in ("", "bbox_"):
        assert_metrics(metrics, same_everywhere(0, 0, 0, 0), prefix)


def test_results_are_not_modified_and_bad_results_are_rejected() -> None:
    results = [detection(11, A, 0.9)]
    before = json.dumps(results)
    evaluate_predictions(ground_truth(), results)
    assert json.dumps(results) == before
    with pytest.raises(ValueError, match=r"image ids absent from the ground truth: \[99\]"):
        evaluate_predictions(ground_truth(), [detection(99, A, 0.9)])
    no_mask = {key: value for key, value in detection(11, A, 0.9).items() if key != "segmentation"}
    with pytest.raises(ValueError, match="result entry 0 lacks segmentation"):
        evaluate_predictions(ground_truth(), [no_mask])
    assert evaluate_predictions(ground_truth(), [no_mask], ("bbox",))["bbox_AP50"] == pytest.approx(34 / 101 * 100)
    with pytest.raises(ValueError, match="iou_types"):
        evaluate_predictions(ground_truth(), results, ("keypoints",))
    coco = ground_truth()
    del coco.dataset["annotations"][1]["iscrowd"]
    with pytest.raises(ValueError, match="annotation 2 lacks iscrowd"):
        evaluate_predictions(coco, results)


def test_format_metrics_prints_nan_as_dash() -> None:
    table = format_metrics(evaluate_predictions(ground_truth(), [detection(11, A, 0.9)]))
    header, segm, bbox = table.splitlines()
    assert header.split() == ["AP", "AP50", "AP70", "AP75", "APs", "APm", "APl", "AR@1", "AR@10", "AR@100"]
    assert segm.split()[0] == "segm" and segm.split()[6:8] == ["-", "-"] and bbox.startswith("bbox")
    # one of the three instances found: AR 1/3 at every count
    assert segm.split()[-3:] == ["33.33"] * 3


# ---- whole-model evaluation on a small dataset in the SynthSIS layout ----


def write_dataset(root: Path, split: str = "val") -> Tuple[Path, Dict[str, np.ndarray]]:
    """Three images (one non-square, one with a medium-sized instance) + COCO json; file name -> masks."""
    shapes = {
        "000000.png": (48, 64, [("ellipse", (20, 24), (12, 8)), ("rect", (40, 5), (60, 20))]),
        "000001.png": (64, 40, [("rect", (5, 30), (30, 60))]),
        "000002.png": (80, 80, [("ellipse", (40, 40), (25, 20)), ("rect", (2, 2), (12, 12))]),
    }
    (root / "images" / split).mkdir(parents=True)
    images, annotations, truth = [], [], {}
    rng = np.random.default_rng(0)
    for image_id, (name, (height, width, drawn)) in enumerate(shapes.items(), start=1):
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        masks = []
        for kind, first, second in drawn:
            canvas = np.zeros((height, width), np.uint8)
            if kind == "ellipse":
                cv2.ellipse(canvas, first, second, 0, 0, 360, 1, -1)
            else:
                cv2.rectangle(canvas, first, second, 1, -1)
            masks.append(canvas.astype(bool))
            image[canvas.astype(bool)] = (200, 180, 40)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                 "segmentation": rle(masks[-1]), "area": int(masks[-1].sum()), "bbox": xywh(masks[-1])}
            )  # fmt: skip
        cv2.imwrite(str(root / "images" / split / name), image)
        images.append({"id": image_id, "file_name": f"{split}/{name}", "height": height, "width": width})
        truth[name] = np.stack(masks)
    json_path = root / "annotations" / f"{split}.json"
    write_json_atomic(
        json_path, {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "salient"}]}
    )
    return json_path, truth


def random_model() -> pysalient.engine.model.SalientModel:
    with pytest.warns(UserWarning, match="randomly initialised"):
        model = pysalient.load("sparseinst_mbv2_tiny", device="cpu")
    torch.nn.init.constant_(model.network.decoder.inst_branch.cls_score.bias, 5.0)
    return model


def predicting_ground_truth(model: Any, truth: Dict[str, np.ndarray], calls: List[Dict[str, Any]]) -> None:
    """Replaces ``model.predict`` by one yielding the true masks of each file (scores 0.9 down to 0.5)."""

    def predict(source: List[str], **kwargs: Any):
        calls.append(kwargs)
        for path in source:
            masks = torch.from_numpy(truth[Path(path).name])
            scores = torch.linspace(0.9, 0.5, len(masks))
            yield Result(masks, masks_to_boxes(masks), scores, torch.zeros(len(masks), dtype=torch.int64))

    model.predict = predict


def test_model_predicting_the_ground_truth_scores_100(tmp_path) -> None:
    json_path, truth = write_dataset(tmp_path)
    model, calls = random_model(), []
    predicting_ground_truth(model, truth, calls)
    out_json = tmp_path / "out" / "results.json"
    metrics = evaluate_model(model, json_path, imgsz=64, batch=2, out_json=out_json)
    assert calls == [{"conf": EVALUATION_CONF, "imgsz": 64, "batch": 2, "stream": True}]  # every candidate counts
    for prefix in ("", "bbox_"):
        for name in ("AP", "AP50", "AP70", "AP75", "APs", "APm"):
            assert metrics[prefix + name] == pytest.approx(100), (prefix + name, metrics)
        assert math.isnan(metrics[prefix + "APl"])
    written = json.loads(out_json.read_text())
    assert len(written) == 5 and {entry["image_id"] for entry in written} == {1, 2, 3}
    assert {entry["category_id"] for entry in written} == {1}


def test_model_evaluate_runs_the_network_and_round_trips_its_results_json(tmp_path) -> None:
    json_path, _ = write_dataset(tmp_path)
    model = random_model()
    out_json = tmp_path / "results.json"
    metrics = model.evaluate(json_path, imgsz=64, batch=3, conf=0.1, save_json=out_json)
    coco = COCO(str(json_path))
    detections = coco.loadRes(str(out_json))  # the file is a valid COCO results json
    assert len(detections.getAnnIds()) > 0 and set(detections.getImgIds()) == {1, 2, 3}
    again = evaluate_predictions(coco, json.loads(out_json.read_text()))
    for name, value in metrics.items():
        assert (math.isnan(value) and math.isnan(again[name])) or value == again[name], name
        assert math.isnan(value) or 0 <= value <= 100


def test_dataset_errors_name_the_problem(tmp_path) -> None:
    json_path, _ = write_dataset(tmp_path)
    model = random_model()
    (tmp_path / "images" / "val" / "000001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of the 3 images listed in .* are missing under .*: val/000001.png"):
        evaluate_model(model, json_path)
    with pytest.raises(FileNotFoundError, match="COCO json not found"):
        evaluate_model(model, tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: invalid JSON at line 1"):
        evaluate_model(model, broken)
    cv2.imwrite(str(tmp_path / "images" / "val" / "000001.png"), np.zeros((64, 40, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "val" / "000000.png"), np.zeros((50, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="000000.png is 50x64 but .* says 48x64 for image id 1"):
        evaluate_model(model, json_path, image_root=tmp_path / "images", imgsz=32)


def test_category_mapping_between_model_labels_and_dataset_ids() -> None:
    three = ground_truth((7, 9, 11))
    assert category_mapping({0: "a", 1: "b", 2: "c"}, three) == ({0: 7, 1: 9, 2: 11}, False)
    assert category_mapping({0: "salient"}, three) == ({0: 7}, True)
    with pytest.raises(ValueError, match="the model predicts 2 classes but the dataset has 3 categories"):
        category_mapping({0: "a", 1: "b"}, three)
    assert category_mapping({0: "a", 1: "b"}, three, class_agnostic=True) == ({0: 7, 1: 7}, True)


def test_ground_truth_without_area_crowd_flags_or_boxes_is_completed(tmp_path) -> None:
    # Hand-written jsons often leave out what COCOeval needs; areas must be the mask areas (APs/APm split).
    json_path, truth = write_dataset(tmp_path)
    dataset = json.loads(json_path.read_text())
    for annotation in dataset["annotations"]:
        del annotation["area"], annotation["iscrowd"], annotation["bbox"]
    write_json_atomic(json_path, dataset)
    model = random_model()
    predicting_ground_truth(model, truth, [])
    metrics = evaluate_model(model, json_path)
    assert metrics["APs"] == pytest.approx(100) and metrics["APm"] == pytest.approx(100)
    assert metrics["bbox_AP"] == pytest.approx(100) and math.isnan(metrics["APl"])


def test_json_files_are_written_atomically_with_ordinary_permissions(tmp_path) -> None:
    target = write_json_atomic(tmp_path / "sub" / "x.json", {"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]} and list(target.parent.iterdir()) == [target]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
