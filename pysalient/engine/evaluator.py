"""COCO evaluation of instance masks and boxes with pycocotools ``COCOeval``.

Metrics follow detectron2's convention: percentages (0-100) read from ``COCOeval.stats``, NaN where pycocotools
reports -1 (no ground truth in that area range). Salient-instance papers also report AP70, which
``COCOeval.summarize`` does not print: it is the mean precision at IoU threshold index 4 (exactly 0.70) over all
recall points and categories, area "all", 100 detections, with the -1 entries of absent categories left out.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pysalient.models.family import EVALUATION_CONF
from pysalient.utils.atomic import atomic_write_json

if TYPE_CHECKING:
    from pysalient.engine.predictor import Predictor

METRICS = ("AP", "AP50", "AP70", "AP75", "APs", "APm", "APl")
AP70_IOU_INDEX = 4
DEFAULT_MAX_DETS = (1, 10, 100)  # COCOeval's maxDets: AR@1, AR@10, AR@100 (proposal papers use 10, 100, 1000)
AP_MAX_DETS = 100  # AP is read at 100 detections per image whatever the AR counts asked for
IOU_TYPES = {"segm": "", "bbox": "bbox_"}  # iou type -> prefix of its metric names


def evaluate_predictions(
    coco_gt: COCO,
    results: Sequence[Mapping[str, Any]],
    iou_types: Sequence[str] = ("segm", "bbox"),
    class_agnostic: bool = False,
    verbose: bool = False,
    max_dets: Sequence[int] = DEFAULT_MAX_DETS,
) -> Dict[str, float]:
    """COCO AP and AR of results-format detections against a ground-truth set.

    Args:
        coco_gt: the ground truth (every annotation needs ``area``, ``iscrowd`` and, for segm, ``segmentation``).
        results: COCO results entries (``image_id``, ``category_id``, ``score``, RLE ``segmentation`` for segm,
            xywh ``bbox`` for bbox), e.g. from :meth:`pysalient.Result.to_coco`; not modified. May be empty.
        iou_types: any of ``"segm"`` (metrics AP, AP50, ...) and ``"bbox"`` (bbox_AP, bbox_AP50, ...).
        class_agnostic: match detections to ground truth of any category (pycocotools ``useCats=0``).
        verbose: let pycocotools print its progress and summary tables.
        max_dets: detections per image of the average recalls (COCOeval ``maxDets``): ``AR@N`` for each N, the
            recall averaged over IoU 0.50:0.05:0.95 and categories, area "all", as ``COCOeval.stats[6:9]``.
            InstanceFCN's segment-proposal protocol is ``(10, 100, 1000)``; AP always uses 100.

    Returns:
        ``AP, AP50, AP70, AP75, APs, APm, APl`` and ``AR@N`` in percent for each IoU type (bbox names prefixed
        ``bbox_``); NaN where the dataset has no ground truth for that area range. With no detections every AP
        whose ground truth exists is 0.

    Raises:
        ValueError: unknown IoU types, entries missing fields, image ids absent from the ground truth, max_dets
            that are not positive integers.
    """
    max_dets = check_max_dets(max_dets)
    unknown_types = [iou_type for iou_type in iou_types if iou_type not in IOU_TYPES]
    if unknown_types or not iou_types:
        raise ValueError(f"iou_types must be a non-empty subset of {tuple(IOU_TYPES)}, got {tuple(iou_types)}")
    _check_image_ids(coco_gt, results)
    metrics: Dict[str, float] = {}
    for iou_type in iou_types:
        _check_ground_truth(coco_gt, iou_type)
        for name, value in _evaluate_one_type(coco_gt, results, iou_type, class_agnostic, verbose, max_dets).items():
            metrics[IOU_TYPES[iou_type] + name] = value
    return metrics


def evaluate_model(
    model: Predictor,
    json_path: Union[str, os.PathLike],
    image_root: Union[None, str, os.PathLike] = None,
    imgsz: Optional[int] = None,
    conf: Optional[float] = None,
    batch: int = 4,
    out_json: Union[None, str, os.PathLike] = None,
    class_agnostic: Optional[bool] = None,
    verbose: bool = False,
    max_dets: Sequence[int] = DEFAULT_MAX_DETS,
) -> Dict[str, float]:
    """Predicts every image of a COCO-json dataset and evaluates the masks and boxes.

    Args:
        model: the model to evaluate (on its current device): eager or exported.
        json_path: COCO instances json of the ground truth.
        image_root: folder the json's ``file_name`` entries are relative to; found next to the json when None
            (see :class:`pysalient.data.CocoInstanceDataset`).
        imgsz: test-time shortest side (the config's test size when None).
        conf: minimum score of an evaluated instance; :data:`~pysalient.models.family.EVALUATION_CONF` (0) when
            None: AP needs the low-score tail of the precision/recall curve, so every instance the family's own
            candidate rules produce counts, as in the official evaluations.
        batch: images per forward pass.
        out_json: where to write the detections as a COCO results json (RLE masks, dataset ids), if anywhere.
        class_agnostic: evaluate ignoring categories. None means: only when the model has one class and the
            dataset several (a salient-instance model evaluated on a labelled set); then every ground-truth
            category counts as the model's single class.
        verbose: let pycocotools print its progress and summary tables.
        max_dets: detections per image of the ``AR@N`` metrics; a count above 100 predicts up to that many
            instances per image (``max_det``); otherwise the model's own cap applies.

    Returns:
        The metrics of :func:`evaluate_predictions` (segm and bbox).

    Raises:
        FileNotFoundError: the json or some of its images are missing (named in the message).
        ValueError: malformed json, image sizes that disagree with the json, incompatible class counts.
    """
    from pysalient.data import CocoInstanceDataset

    max_dets = check_max_dets(max_dets)
    # The dataset validates the json, fills in fields COCOeval needs (iscrowd, area, bbox), finds the image
    # folder and reports missing images exactly as training does.
    dataset = CocoInstanceDataset(json_path, image_root=image_root)
    if len(dataset) == 0:
        raise ValueError(f"{json_path}: the dataset has no images")
    coco_gt = dataset.coco
    infos = [dataset.image_info(index) for index in range(len(dataset))]
    paths = [str(dataset.image_root / info["file_name"]) for info in infos]
    category_ids, agnostic = category_mapping(model.names, coco_gt, class_agnostic)
    results: List[Dict[str, Any]] = []
    conf = EVALUATION_CONF if conf is None else conf
    options: Dict[str, Any] = {"max_det": max(max_dets)} if max(max_dets) > AP_MAX_DETS else {}
    predictions = model.predict(paths, conf=conf, imgsz=imgsz, batch=batch, stream=True, **options)
    for info, path, result in zip(infos, paths, predictions):
        if (info["height"], info["width"]) != result.image_size:
            raise ValueError(
                f"{path} is {result.image_size[0]}x{result.image_size[1]} but {json_path} says "
                f"{info['height']}x{info['width']} for image id {info['id']}"
            )
        # Encode to RLE image by image so full-size masks never pile up in memory.
        results.extend(result.to_coco(info["id"], category_ids))
    if out_json is not None:
        write_json_atomic(out_json, results)
    return evaluate_predictions(coco_gt, results, class_agnostic=agnostic, verbose=verbose, max_dets=max_dets)


def check_max_dets(max_dets: Sequence[int]) -> Tuple[int, ...]:
    """``max_dets`` as a sorted tuple of distinct positive ints; ValueError naming the argument otherwise."""
    values = tuple(max_dets) if isinstance(max_dets, (list, tuple)) else None
    if not values or any(isinstance(value, bool) or not isinstance(value, int) or value < 1 for value in values):
        raise ValueError(f"max_dets must be a non-empty list of positive ints (detections per image), got {max_dets!r}")
    return tuple(sorted(set(values)))


def category_mapping(
    class_names: Mapping[int, str], coco_gt: COCO, class_agnostic: Optional[bool] = None
) -> Tuple[Dict[int, int], bool]:
    """Model label -> dataset category id, and whether the evaluation must be class-agnostic.

    Labels map in order onto the sorted dataset category ids (the label convention of the dataset loader).
    """
    dataset_ids = sorted(int(category_id) for category_id in coco_gt.getCatIds())
    if not dataset_ids:
        raise ValueError("the ground truth has no categories")
    if class_agnostic is None:
        class_agnostic = len(class_names) == 1 and len(dataset_ids) > 1
    if class_agnostic:
        return {int(label): dataset_ids[0] for label in class_names}, True
    if len(class_names) != len(dataset_ids):
        raise ValueError(
            f"the model predicts {len(class_names)} classes but the dataset has {len(dataset_ids)} categories; "
            "evaluate with class_agnostic=True or use a model trained on these categories"
        )
    return {int(label): category_id for label, category_id in zip(sorted(class_names), dataset_ids)}, False


def write_json_atomic(path: Union[str, os.PathLike], data: Any) -> Path:
    """Writes ``data`` as JSON to ``path`` atomically (temporary file, fsync, rename)."""
    return atomic_write_json(path, data)


def format_metrics(metrics: Mapping[str, float]) -> str:
    """A two-row text table (one row per IoU type) of the metrics (AP columns, then the AR@N present), NaN printed
    as ``-``."""
    recalls = sorted((name for name in metrics if name.startswith("AR@")), key=lambda name: int(name[3:]))
    names = [*METRICS, *recalls]
    lines = ["      " + "".join(f"{name:>8}" for name in names)]
    for iou_type, prefix in IOU_TYPES.items():
        if prefix + "AP" not in metrics:
            continue
        cells = "".join(
            f"{'-':>8}" if math.isnan(metrics.get(prefix + name, math.nan)) else f"{metrics[prefix + name]:8.2f}"
            for name in names
        )
        lines.append(f"{iou_type:<6}{cells}")
    return "\n".join(lines)


def _evaluate_one_type(
    coco_gt: COCO,
    results: Sequence[Mapping[str, Any]],
    iou_type: str,
    class_agnostic: bool,
    verbose: bool,
    max_dets: Sequence[int] = DEFAULT_MAX_DETS,
) -> Dict[str, float]:
    entries = _entries_for(results, iou_type)
    output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    counts = sorted(set(max_dets) | {AP_MAX_DETS})
    with output:
        coco_dt = coco_gt.loadRes(entries) if entries else _empty_results(coco_gt)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if class_agnostic:
            evaluator.params.useCats = 0
        evaluator.params.maxDets = counts
        evaluator.evaluate()
        evaluator.accumulate()
    params = evaluator.params
    # AP70 is only meaningful if threshold index 4 really is 0.70 (pycocotools' default 0.50:0.05:0.95 grid).
    if params.iouThrs[AP70_IOU_INDEX] != 0.70:
        raise RuntimeError(f"COCOeval IoU threshold {AP70_IOU_INDEX} is {params.iouThrs[AP70_IOU_INDEX]}, not 0.70")
    # precision: [T IoU thresholds, R recall points, K categories, A area ranges, M max detections]; recall: [T, K, A,
    # M]. Means over the entries > -1 (absent categories / areas), as COCOeval.summarize computes its stats.
    precision, recall = evaluator.eval["precision"], evaluator.eval["recall"]
    at_100 = counts.index(AP_MAX_DETS)
    area = {label: params.areaRngLbl.index(label) for label in ("all", "small", "medium", "large")}
    iou = {threshold: int(np.argmin(np.abs(params.iouThrs - threshold))) for threshold in (0.5, 0.7, 0.75)}
    metrics = {
        "AP": _mean_percent(precision[:, :, :, area["all"], at_100]),
        "AP50": _mean_percent(precision[iou[0.5], :, :, area["all"], at_100]),
        "AP70": _mean_percent(precision[iou[0.7], :, :, area["all"], at_100]),
        "AP75": _mean_percent(precision[iou[0.75], :, :, area["all"], at_100]),
        "APs": _mean_percent(precision[:, :, :, area["small"], at_100]),
        "APm": _mean_percent(precision[:, :, :, area["medium"], at_100]),
        "APl": _mean_percent(precision[:, :, :, area["large"], at_100]),
    }
    if verbose:
        evaluator.summarize()
    for count in max_dets:
        metrics[f"AR@{count}"] = _mean_percent(recall[:, :, area["all"], counts.index(count)])
    return metrics


def _mean_percent(values: np.ndarray) -> float:
    """Mean of the entries > -1 in percent, NaN when there are none (``COCOeval.summarize``'s rule)."""
    valid = values[values > -1]
    return float(np.mean(valid) * 100) if valid.size else float("nan")


def _entries_for(results: Sequence[Mapping[str, Any]], iou_type: str) -> List[Dict[str, Any]]:
    # loadRes decides how to read ALL entries from the first one, and takes a detection's area from its bbox
    # when one is present. Mask evaluation must use mask areas (the small/medium/large split of unmatched
    # detections depends on it), so segm entries drop the bbox and bbox entries drop the mask.
    geometry = "segmentation" if iou_type == "segm" else "bbox"
    entries = []
    for index, entry in enumerate(results):
        missing = [key for key in ("image_id", "category_id", "score", geometry) if key not in entry]
        if missing:
            raise ValueError(f"result entry {index} lacks {', '.join(missing)} (needed for {iou_type} evaluation)")
        entries.append({key: entry[key] for key in ("image_id", "category_id", "score", geometry)})
    return entries


def _empty_results(coco_gt: COCO) -> COCO:
    # loadRes([]) fails on anns[0]; an index with no annotations is what "no detections" means to COCOeval.
    empty = COCO()
    empty.dataset = {"images": list(coco_gt.dataset["images"]), "categories": coco_gt.dataset["categories"]}
    empty.dataset["annotations"] = []
    empty.createIndex()
    return empty


def _check_image_ids(coco_gt: COCO, results: Sequence[Mapping[str, Any]]) -> None:
    known = set(coco_gt.getImgIds())
    unknown = sorted({entry.get("image_id") for entry in results} - known, key=str)
    if unknown:
        raise ValueError(f"results refer to image ids absent from the ground truth: {unknown[:10]}")


def _check_ground_truth(coco_gt: COCO, iou_type: str) -> None:
    required = ("area", "iscrowd", "segmentation" if iou_type == "segm" else "bbox")
    for annotation in coco_gt.dataset.get("annotations", []):
        missing = [key for key in required if key not in annotation]
        if missing:
            raise ValueError(
                f"ground-truth annotation {annotation.get('id')} lacks {', '.join(missing)} "
                f"(needed for {iou_type} evaluation)"
            )
