"""COCO json instance-segmentation datasets (polygons or RLE) as pysalient samples.

Decisions about imperfect files (each tested):
- Structural problems (not JSON, empty file, missing ``images``/``categories``, unknown image or category
  ids, an RLE whose size is not the image's, odd polygon coordinate counts, a polygon lying entirely
  outside its image) raise ``ValueError`` naming the file and the annotation, at construction.
- Annotations reaching past the image border are clipped: masks are rasterised on the image grid and the
  boxes of the samples are recomputed from the masks (a stored ``bbox`` beyond the image is ignored).
- ``iscrowd=1`` annotations are not training targets (they stay in :attr:`CocoInstanceDataset.coco`, where
  COCOeval uses them as "ignore" regions).
- Polygon annotations without any part of >= 3 points have no area: they are skipped with one warning
  giving their count (COCO itself contains a few). Masks that rasterise to no pixel are dropped per sample.
- Images listed in the json but absent on disk: one ``FileNotFoundError`` listing up to 10 names and the
  total count, at construction.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from pysalient.data.coco_json import decode_segmentation, read_coco_json
from pysalient.data.sample import InstanceDataset, Sample, label_maps, make_sample
from pysalient.utils.image_io import read_image

PathLike = Union[str, os.PathLike]


class CocoInstanceDataset(InstanceDataset):
    """Images and instance masks described by a COCO json file.

    Labels are contiguous: the categories sorted by id map to 0..C-1 (:attr:`category_ids` gives label ->
    category id, :attr:`class_names` label -> name). In class-agnostic mode every category maps to label 0
    named ``"salient"`` and ``category_ids`` holds the smallest category id (predictions written with it
    match a single-category ground truth; a multi-category one needs COCOeval's ``useCats = 0``).

    Args:
        json_path: the COCO json file.
        image_root: folder the images' ``file_name`` entries are relative to. Default: the first of
            ``<json folder>/../images`` (the SynthSIS layout), ``<json folder>/images`` and the json's folder
            that holds every image (or, if none does, the one holding most, then missing images are reported).
        class_agnostic: map every category to label 0 ``"salient"``.
        transforms: applied to every sample (see :class:`~pysalient.data.sample.InstanceDataset`).

    Attributes:
        coco: the pycocotools ``COCO`` index of the file (all annotations, crowd included).
        image_root: the resolved image folder.
    """

    def __init__(
        self,
        json_path: PathLike,
        image_root: Optional[PathLike] = None,
        class_agnostic: bool = False,
        transforms: Optional[Callable[..., Sample]] = None,
    ) -> None:
        super().__init__(transforms)
        self.json_path = Path(json_path)
        data = read_coco_json(self.json_path)
        _fill_missing_fields(data)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress messages
            self.coco = COCO()
            self.coco.dataset = data
            self.coco.createIndex()
        categories = sorted(data["categories"], key=lambda category: category["id"])
        self.class_agnostic = bool(class_agnostic)
        if self.class_agnostic:
            self.class_names = ("salient",)
            self.category_ids = (categories[0]["id"],)
        else:
            self.class_names = tuple(str(category["name"]) for category in categories)
            self.category_ids = tuple(category["id"] for category in categories)
        self._label_of = label_maps([category["id"] for category in categories], self.class_agnostic)
        self._images: List[Dict[str, Any]] = list(data["images"])
        self._targets = self._training_targets(data["annotations"])
        self.image_root = _resolve_image_root(
            self.json_path, image_root, [image["file_name"] for image in self._images]
        )

    def __len__(self) -> int:
        return len(self._images)

    def load_sample(self, index: int) -> Sample:
        """The untransformed sample of image ``index`` (json order): masks clipped to the image."""
        entry = self._images[index]
        path = self.image_root / entry["file_name"]
        image = read_image(str(path))
        height, width = entry["height"], entry["width"]
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"{path}: the image is {image.shape[0]}x{image.shape[1]} but {self.json_path} says {height}x{width}"
            )
        annotations = self._targets.get(entry["id"], [])
        masks = np.zeros((len(annotations), height, width), dtype=bool)
        for slot, annotation in enumerate(annotations):
            masks[slot] = decode_segmentation(annotation["segmentation"], height, width)
        labels = [self._label_of[annotation["category_id"]] for annotation in annotations]
        return make_sample(image, masks, np.asarray(labels, dtype=np.int64), entry["id"], entry["file_name"])

    def image_info(self, index: int) -> Dict[str, Any]:
        """The json entry (id, file_name, height, width, ...) of image ``index``."""
        return dict(self._images[index])

    def _training_targets(self, annotations: Sequence[Dict[str, Any]]) -> Dict[int, List[Dict[str, Any]]]:
        targets: Dict[int, List[Dict[str, Any]]] = defaultdict(list)
        degenerate = []
        for annotation in annotations:
            if annotation.get("iscrowd", 0):
                continue
            segmentation = annotation["segmentation"]
            if isinstance(segmentation, list) and not any(len(part) >= 6 for part in segmentation):
                degenerate.append(annotation["id"])
                continue
            targets[annotation["image_id"]].append(annotation)
        if degenerate:
            warnings.warn(
                f"{self.json_path}: skipped {len(degenerate)} annotation(s) whose polygons all have fewer than "
                f"3 points (ids {degenerate[:10]}{' ...' if len(degenerate) > 10 else ''})",
                stacklevel=3,
            )
        return dict(targets)


def _fill_missing_fields(data: Dict[str, Any]) -> None:
    # COCOeval reads iscrowd, area and bbox of every ground-truth annotation; derive them when a
    # hand-written file leaves them out, so evaluation works on any file this dataset accepts.
    images = {image["id"]: image for image in data["images"]}
    for annotation in data["annotations"]:
        annotation.setdefault("iscrowd", 0)
        if "area" in annotation and "bbox" in annotation:
            continue
        image = images[annotation["image_id"]]
        mask = decode_segmentation(annotation["segmentation"], image["height"], image["width"])
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        annotation.setdefault("area", float(mask_utils.area(rle)))
        annotation.setdefault("bbox", [float(value) for value in mask_utils.toBbox(rle)])


def _resolve_image_root(json_path: Path, image_root: Optional[PathLike], file_names: Sequence[str]) -> Path:
    folder = json_path.resolve().parent
    candidates = [Path(image_root)] if image_root is not None else [folder.parent / "images", folder / "images", folder]
    best, best_missing = candidates[0], None
    for candidate in candidates:
        missing = [name for name in file_names if not (candidate / name).is_file()]
        if not missing:
            return candidate
        if best_missing is None or len(missing) < len(best_missing):
            best, best_missing = candidate, missing
    shown = ", ".join(best_missing[:10]) + (" ..." if len(best_missing) > 10 else "")
    hint = "" if image_root is not None else " (pass image_root= to say where the images are)"
    raise FileNotFoundError(
        f"{len(best_missing)} of the {len(file_names)} images listed in {json_path} are missing under {best}{hint}: "
        f"{shown}"
    )
