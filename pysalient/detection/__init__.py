"""Detector building blocks shared by the box-based families: boxes, point locations, post-processing."""

from pysalient.detection.boxes import box_area, box_iou, clip_boxes
from pysalient.detection.locations import level_locations, locations
from pysalient.detection.postprocess import FCOSPostProcessor, legacy_nms, max_detections, select_level

__all__ = [
    "FCOSPostProcessor",
    "box_area",
    "box_iou",
    "clip_boxes",
    "legacy_nms",
    "level_locations",
    "locations",
    "max_detections",
    "select_level",
]
