"""COCO json reading, validation and writing: the file format every pysalient dataset is converted to.

Readers turn every malformed input into a ``ValueError`` naming the file and the offending entry, before any
training starts. Writers are atomic (temporary file + rename) and byte-deterministic (sorted keys, fixed
separators), so regenerating a dataset with the same inputs gives identical files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
from pycocotools import mask as mask_utils

from pysalient.utils.atomic import atomic_write_bytes

PathLike = Union[str, os.PathLike]


def read_coco_json(path: PathLike) -> Dict[str, Any]:
    """Reads and structurally validates a COCO instance-segmentation json file.

    Checks: valid non-empty JSON object; ``images`` and ``categories`` lists present (``annotations`` may
    be absent: an unlabelled set); unique image and category ids; every image has ``id``, ``file_name``,
    positive ``height``/``width``; every annotation has an ``id``, an ``image_id`` and ``category_id`` that
    exist, unique annotation ids, a ``segmentation`` that is a polygon list (even coordinate counts, not wholly
    outside the image) or an RLE dict of the image's size whose runs cover the image exactly, and, when present,
    ``iscrowd`` 0 or 1, a finite ``area`` >= 0 and a ``bbox`` of four finite numbers with sizes >= 0.

    Returns:
        The parsed dict (``annotations`` filled in as ``[]`` when absent).

    Raises:
        FileNotFoundError: no such file.
        ValueError: anything malformed, with the file name and the entry in the message.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO json not found: {path}")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"{path}: the file is empty (expected a COCO json object)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing or non-list '{key}' (COCO instance format needs it)")
    data.setdefault("annotations", [])
    if not isinstance(data["annotations"], list):
        raise ValueError(f"{path}: 'annotations' must be a list")
    images = {}
    for entry in data["images"]:
        _check_image(path, entry)
        if entry["id"] in images:
            raise ValueError(f"{path}: duplicate image id {entry['id']}")
        images[entry["id"]] = entry
    category_ids = set()
    for entry in data["categories"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or "name" not in entry:
            raise ValueError(f"{path}: every category needs an integer 'id' and a 'name', got {entry!r}"[:300])
        if entry["id"] in category_ids:
            raise ValueError(f"{path}: duplicate category id {entry['id']}")
        category_ids.add(entry["id"])
    if not category_ids:
        raise ValueError(f"{path}: 'categories' is empty")
    annotation_ids = set()
    for entry in data["annotations"]:
        _check_annotation(path, entry, images, category_ids)
        if entry["id"] in annotation_ids:
            raise ValueError(f"{path}: duplicate annotation id {entry['id']!r}")
        annotation_ids.add(entry["id"])
    return data


def _check_image(path: Path, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
        raise ValueError(f"{path}: every image needs an integer 'id', got {entry!r}"[:300])
    if not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
        raise ValueError(f"{path}: image {entry['id']} has no 'file_name'")
    for key in ("height", "width"):
        if not isinstance(entry.get(key), int) or entry[key] < 1:
            raise ValueError(f"{path}: image {entry['id']} ({entry['file_name']}) needs a positive integer '{key}'")


def _check_annotation(path: Path, entry: Any, images: Dict[int, Dict[str, Any]], category_ids: set) -> None:
    if not isinstance(entry, dict) or "id" not in entry:
        raise ValueError(f"{path}: every annotation needs an 'id', got {entry!r}"[:300])
    name = f"{path}: annotation {entry['id']}"
    image = images.get(entry.get("image_id"))
    if image is None:
        raise ValueError(f"{name} refers to unknown image_id {entry.get('image_id')!r}")
    if entry.get("category_id") not in category_ids:
        raise ValueError(f"{name} refers to unknown category_id {entry.get('category_id')!r}")
    segmentation = entry.get("segmentation")
    height, width = image["height"], image["width"]
    where = f"{name} (image {image['file_name']}, {height}x{width})"
    _check_annotation_numbers(where, entry)
    if isinstance(segmentation, dict):
        if "counts" not in segmentation or "size" not in segmentation:
            raise ValueError(f"{where}: an RLE segmentation needs 'counts' and 'size'")
        size = segmentation["size"]
        if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
            raise ValueError(f"{where}: RLE size {size} differs from the image size [{height}, {width}]")
        counts = segmentation["counts"]
        if isinstance(counts, str):
            counts = rle_string_counts(counts)
        elif not isinstance(counts, list) or not all(isinstance(value, int) for value in counts):
            raise ValueError(f"{where}: RLE 'counts' must be a string (compressed) or a list of ints (uncompressed)")
        # pycocotools does not check run lengths and reads past its buffer on a bad RLE: check them here.
        if counts is None or min(counts, default=0) < 0 or sum(counts) != height * width:
            raise ValueError(f"{where}: RLE 'counts' are corrupt (runs must be >= 0 and cover {height}x{width} pixels)")
    elif isinstance(segmentation, list):
        if not segmentation or not all(isinstance(part, list) for part in segmentation):
            raise ValueError(f"{where}: a polygon segmentation must be a non-empty list of coordinate lists")
        coordinates = []
        for part in segmentation:
            if len(part) % 2 or not all(isinstance(value, (int, float)) for value in part):
                raise ValueError(f"{where}: polygon with an odd number of coordinates or non-numbers")
            coordinates.extend(part)
        values = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
        if values.size and not np.isfinite(values).all():
            raise ValueError(f"{where}: polygon with non-finite coordinates")
        # Polygons are clipped to the image when rasterised; one lying wholly outside is a labelling error.
        if values.size and (
            values[:, 0].max() <= 0
            or values[:, 1].max() <= 0
            or values[:, 0].min() >= width
            or values[:, 1].min() >= height
        ):
            raise ValueError(
                f"{where}: the polygon lies entirely outside the image (x in [{values[:, 0].min():g}, "
                f"{values[:, 0].max():g}], y in [{values[:, 1].min():g}, {values[:, 1].max():g}])"
            )
    else:
        raise ValueError(f"{where}: missing segmentation (expected polygons or RLE)")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _check_annotation_numbers(where: str, entry: Dict[str, Any]) -> None:
    """The optional numeric fields the COCO evaluation reads: ``iscrowd`` 0 or 1, ``area`` a finite number >= 0,
    ``bbox`` four finite numbers ``[x, y, width, height]`` with width and height >= 0."""
    if "iscrowd" in entry and (isinstance(entry["iscrowd"], bool) or entry["iscrowd"] not in (0, 1)):
        raise ValueError(f"{where}: 'iscrowd' must be the integer 0 or 1, got {entry['iscrowd']!r}"[:300])
    if "area" in entry and not (_is_number(entry["area"]) and entry["area"] >= 0):
        raise ValueError(f"{where}: 'area' must be a finite number >= 0, got {entry['area']!r}"[:300])
    if "bbox" in entry:
        box = entry["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(value) for value in box)):
            raise ValueError(f"{where}: 'bbox' must be 4 finite numbers [x, y, width, height], got {box!r}"[:300])
        if box[2] < 0 or box[3] < 0:
            raise ValueError(f"{where}: 'bbox' has a negative width or height, got {box!r}"[:300])


def rle_string_counts(text: str) -> Optional[List[int]]:
    """Run lengths of a compressed COCO RLE string, or None if the string is not valid.

    The format (pycocotools ``rleToString``): each run is a little-endian sequence of 6-bit characters
    (offset 48) holding 5 value bits, bit 0x20 meaning "more characters follow", and the last character's
    bit 0x10 the sign; runs from the fourth on are stored as differences to the run two places before.
    """
    if not text.isascii():
        return None
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0 or codes.min() < 0 or codes.max() > 63 or codes[-1] & 0x20:
        return None
    ends = (codes & 0x20) == 0
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    group = np.cumsum(np.concatenate([[0], ends[:-1].astype(np.int64)]))
    position = np.arange(codes.size) - starts[group]
    if position.max() > 11:  # more than 60 bits: not a run length of any real image
        return None
    values = np.add.reduceat((codes & 0x1F) << (5 * position), starts)
    last = np.flatnonzero(ends)
    negative = (codes[last] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * (position[last][negative] + 1))
    values[1::2] = np.cumsum(values[1::2])
    values[2::2] = np.cumsum(values[2::2])
    return values.tolist()


def decode_segmentation(segmentation: Union[List[List[float]], Dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Rasterises a validated COCO segmentation on the image grid; polygon parts outside the image are clipped.

    Polygon parts with fewer than 3 points have no area and are ignored (pycocotools would misread a
    4-number part as a box).

    Returns:
        bool [height, width].
    """
    if isinstance(segmentation, dict):
        if isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        return mask_utils.decode(rle).astype(bool)
    parts = [[float(value) for value in part] for part in segmentation if len(part) >= 6]
    if not parts:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects(parts, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def masks_to_annotations(masks: np.ndarray, first_id: int, image_id: int, category_id: int) -> List[Dict[str, Any]]:
    """COCO annotations (compressed RLE with ``str`` counts, area, xywh bbox, iscrowd 0) of binary masks.

    Args:
        masks: bool [K, H, W], non-empty masks.
        first_id: id of the first annotation; the others follow consecutively.
        image_id, category_id: dataset ids written into every annotation.

    Returns:
        K annotation dicts.
    """
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    areas = mask_utils.area(rles)
    boxes = mask_utils.toBbox(rles)
    annotations = []
    for offset, (rle, area, box) in enumerate(zip(rles, areas, boxes)):
        annotations.append(
            {
                "id": first_id + offset,
                "image_id": image_id,
                "category_id": category_id,
                "segmentation": {
                    "size": [int(rle["size"][0]), int(rle["size"][1])],
                    "counts": rle["counts"].decode("ascii"),
                },
                "area": int(area),
                "bbox": [float(value) for value in box],
                "iscrowd": 0,
            }
        )
    return annotations


def write_json_atomic(data: Any, path: PathLike) -> Path:
    """Writes ``data`` as compact JSON with sorted keys (byte-deterministic), atomically and durably."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return write_bytes_atomic(text.encode("ascii"), path, durable=True)


def write_bytes_atomic(data: bytes, path: PathLike, durable: bool = False) -> Path:
    """Writes ``data`` to a temporary file next to ``path`` then renames it over ``path``.

    Readers see the old file or the whole new one, never a partial one. ``durable`` adds an fsync before
    the rename (worth it for the annotation file, too slow for thousands of images).
    """
    return atomic_write_bytes(path, data, durable=durable)
