"""The ISOD raw format (images + colour-coded instance PNGs) as a dataset and as a COCO json conversion.

Accepted layout::

    root/images/<stem>.<jpg|jpeg|png|bmp|tif|tiff|webp>   the photographs
    root/instances/<stem>.png                             one colour per salient instance, black background

Every distinct non-black value of an instance PNG is one instance: a colour for 3-channel PNGs (an alpha
channel is ignored; palette PNGs are read as their colours), a grey level for single-channel (8- or 16-bit)
PNGs. Instances are ordered by their colour code (``(R << 16) | (G << 8) | B``, or the grey value), so the
order is stable. Instance maps must be lossless (PNG) and the size of their image. The folder names can be
changed with ``image_dir`` / ``instance_dir``. Everything is one class, ``"salient"`` (category id 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List, Optional, Union

import cv2
import numpy as np

from pysalient.data.coco_json import masks_to_annotations, write_json_atomic
from pysalient.data.sample import InstanceDataset, Sample, make_sample
from pysalient.utils.image_io import IMAGE_EXTENSIONS, read_image

PathLike = Union[str, os.PathLike]
CATEGORY = {"id": 1, "name": "salient", "supercategory": "salient"}


class IsodInstanceDataset(InstanceDataset):
    """Salient instances stored in the ISOD raw format (see the module docstring for the layout).

    Image ids are 1-based positions in the sorted list of image names; ``file_name`` is the image's name
    relative to ``root/image_dir``.

    Args:
        root: dataset folder.
        transforms: applied to every sample (see :class:`~pysalient.data.sample.InstanceDataset`).
        image_dir: sub-folder of the images.
        instance_dir: sub-folder of the instance PNGs.

    Raises:
        FileNotFoundError: missing folders, no images, or images without an instance PNG (up to 10 named).
        ValueError: two images with the same stem.
    """

    def __init__(
        self,
        root: PathLike,
        transforms: Optional[Callable[..., Sample]] = None,
        image_dir: str = "images",
        instance_dir: str = "instances",
    ) -> None:
        super().__init__(transforms)
        self.root = Path(root)
        self.image_root = self.root / image_dir
        self.instance_root = self.root / instance_dir
        for folder in (self.image_root, self.instance_root):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"ISOD folder {folder} not found (expected root/{image_dir} and root/{instance_dir})"
                )
        self.file_names: List[str] = sorted(
            path.name
            for path in self.image_root.iterdir()
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not self.file_names:
            raise FileNotFoundError(f"no images in {self.image_root}")
        stems = [Path(name).stem for name in self.file_names]
        duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
        if duplicates:
            raise ValueError(f"{self.image_root}: several images share the stem(s) {duplicates[:10]}")
        missing = [f"{stem}.png" for stem in stems if not (self.instance_root / f"{stem}.png").is_file()]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise FileNotFoundError(f"{len(missing)} instance PNG(s) missing in {self.instance_root}: {shown}")

    def __len__(self) -> int:
        return len(self.file_names)

    def load_sample(self, index: int) -> Sample:
        """The untransformed sample of image ``index`` (sorted by name)."""
        name = self.file_names[index]
        image = read_image(str(self.image_root / name))
        masks = self.load_instances(index)
        if masks.shape[1:] != image.shape[:2]:
            raise ValueError(
                f"{self.instance_path(index)} is {masks.shape[1]}x{masks.shape[2]} but its image {name} is "
                f"{image.shape[0]}x{image.shape[1]}"
            )
        return make_sample(image, masks, np.zeros(masks.shape[0], dtype=np.int64), index + 1, name)

    def instance_path(self, index: int) -> Path:
        """The instance PNG of image ``index``."""
        return self.instance_root / f"{Path(self.file_names[index]).stem}.png"

    def load_instances(self, index: int) -> np.ndarray:
        """The instance masks of image ``index``: bool [K, H, W] in colour-code order."""
        path = self.instance_path(index)
        coded = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if coded is None:
            raise ValueError(f"cannot decode the instance map {path}")
        return decode_instance_map(coded, str(path))


def decode_instance_map(coded: np.ndarray, name: str = "instance map") -> np.ndarray:
    """Splits a colour- or grey-coded instance map into binary masks.

    Args:
        coded: [H, W] grey (uint8/uint16), or [H, W, 3|4] BGR(A) uint8 as OpenCV reads it.
        name: used in error messages.

    Returns:
        bool [K, H, W], one mask per distinct non-zero value, in increasing code order.
    """
    if coded.ndim == 3 and coded.shape[2] in (3, 4) and coded.dtype == np.uint8:
        bgr = coded[:, :, :3].astype(np.int32)
        codes = (bgr[:, :, 2] << 16) | (bgr[:, :, 1] << 8) | bgr[:, :, 0]
    elif coded.ndim == 2 or (coded.ndim == 3 and coded.shape[2] == 1):
        codes = coded.reshape(coded.shape[0], coded.shape[1]).astype(np.int64)
    else:
        raise ValueError(f"{name}: expected a grey or colour instance PNG, got {coded.dtype} {coded.shape}")
    values = np.unique(codes)
    values = values[values != 0]
    return codes[None, :, :] == values[:, None, None]


def isod_to_coco(
    root: PathLike, out_json: PathLike, image_dir: str = "images", instance_dir: str = "instances"
) -> Path:
    """Converts an ISOD-format folder into a COCO json (RLE masks) for training and COCOeval.

    ``file_name`` entries are relative to ``root/image_dir``: load the result with
    ``CocoInstanceDataset(out_json, image_root=root / image_dir)``.

    Returns:
        The written json path (written atomically).
    """
    dataset = IsodInstanceDataset(root, image_dir=image_dir, instance_dir=instance_dir)
    images, annotations = [], []
    for index, name in enumerate(dataset.file_names):
        masks = dataset.load_instances(index)
        image = cv2.imread(str(dataset.image_root / name), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"cannot decode image {dataset.image_root / name}")
        if image.shape[:2] != masks.shape[1:]:
            raise ValueError(
                f"{dataset.instance_path(index)} is {masks.shape[1]}x{masks.shape[2]} but its image {name} is "
                f"{image.shape[0]}x{image.shape[1]}"
            )
        images.append({"id": index + 1, "file_name": name, "height": int(masks.shape[1]), "width": int(masks.shape[2])})
        annotations.extend(masks_to_annotations(masks, len(annotations) + 1, index + 1, CATEGORY["id"]))
    info = {"description": "converted from the ISOD raw format (colour-coded instance PNGs)"}
    coco = {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": [CATEGORY]}
    return write_json_atomic(coco, out_json)
