"""Datasets, transforms and loaders: COCO json, the ISOD raw format and the SynthSIS generator.

Every dataset yields the same sample dict (see :mod:`pysalient.data.sample`)::

    {"image": uint8 [H, W, 3] BGR, "masks": bool [K, H, W], "labels": int64 [K],
     "boxes": float32 [K, 4] xyxy, "image_id": int, "file_name": str}

:func:`pysalient.data.collate.collate` turns a batch of them into the network input and the training targets of a
family's input spec (not re-exported here: the function would hide its module of the same name).
"""

from pysalient.data import transforms
from pysalient.data.coco import CocoInstanceDataset
from pysalient.data.isod import IsodInstanceDataset, isod_to_coco
from pysalient.data.loader import EpochSampler, build_loader, iterate_batches
from pysalient.data.sample import InstanceDataset, boxes_from_masks
from pysalient.data.synthsis import render_sample, synthesize
from pysalient.data.transforms import Compose, RandomCrop, RandomFlip, ResizeFixed, ResizeShortestEdge

__all__ = [
    "CocoInstanceDataset",
    "Compose",
    "EpochSampler",
    "InstanceDataset",
    "IsodInstanceDataset",
    "RandomCrop",
    "RandomFlip",
    "ResizeFixed",
    "ResizeShortestEdge",
    "boxes_from_masks",
    "build_loader",
    "isod_to_coco",
    "iterate_batches",
    "render_sample",
    "synthesize",
    "transforms",
]
