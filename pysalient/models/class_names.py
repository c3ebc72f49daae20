"""Class names used when a checkpoint does not carry its own."""

from __future__ import annotations

from typing import Tuple

SALIENT_CLASSES: Tuple[str, ...] = ("salient",)

# The 80 COCO detection categories in the order of their contiguous training ids (detectron2's order).
COCO_CLASSES: Tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip


def default_class_names(num_classes: int) -> Tuple[str, ...]:
    """``("salient",)`` for 1 class, the COCO names for 80, otherwise ``class_0``, ``class_1``, ..."""
    if num_classes == 1:
        return SALIENT_CLASSES
    if num_classes == len(COCO_CLASSES):
        return COCO_CLASSES
    return tuple(f"class_{index}" for index in range(num_classes))
