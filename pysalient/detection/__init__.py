"""Detector building blocks shared by the box-based families: boxes, anchors, box coders, point locations, target
assignment, matching, mask targets and post-processing."""

from pysalient.detection.anchor_postprocess import AnchorPostProcessor
from pysalient.detection.anchors import AnchorGenerator, cell_anchors, grid_anchors
from pysalient.detection.box_coder import DeltaBoxCoder, decode_distances, encode_distances
from pysalient.detection.boxes import box_area, box_iou, clip_boxes, scale_boxes
from pysalient.detection.fcos_targets import FCOS_SIZE_RANGES, centerness_targets, fcos_targets
from pysalient.detection.locations import level_locations, locations
from pysalient.detection.mask_targets import crop_and_resize_masks
from pysalient.detection.matcher import IoUMatcher
from pysalient.detection.postprocess import FCOSPostProcessor, legacy_nms, max_detections, select_level

__all__ = [
    "AnchorGenerator",
    "AnchorPostProcessor",
    "DeltaBoxCoder",
    "FCOS_SIZE_RANGES",
    "FCOSPostProcessor",
    "IoUMatcher",
    "box_area",
    "box_iou",
    "cell_anchors",
    "centerness_targets",
    "clip_boxes",
    "crop_and_resize_masks",
    "decode_distances",
    "encode_distances",
    "fcos_targets",
    "grid_anchors",
    "legacy_nms",
    "level_locations",
    "locations",
    "max_detections",
    "scale_boxes",
    "select_level",
]
