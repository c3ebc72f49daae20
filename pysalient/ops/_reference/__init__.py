"""Pure-PyTorch reference implementations of every native operator.

Each function is written from the operator's definition (DESIGN.md §3), favouring clarity over speed.
They are what the tests compare the native kernels against, and what the public ops fall back to when the
native library cannot be loaded. One module per operator (in the order of the schemas in
``csrc/ops/registration.cpp``); every function is re-exported here, so callers write ``_reference.nms(...)``:

- :mod:`.pillow_resize`: ``resize_image``
- :mod:`.masking`: ``roi_masking``, ``roi_masking_masks``
- :mod:`.assembling`: ``assemble_instances``
- :mod:`.roi_align`: ``multilevel_roi_align``
- :mod:`.suppression`: ``nms``
- :mod:`.pasting`: ``paste_masks``, ``paste_masks_masker``, ``paste_mask_samples``
- :mod:`.mask_upsampling`: ``upsample_masks``, ``upsample_mask_probabilities``, ``mask_boxes``
- :mod:`.box_mask_resize`: ``resize_masks_in_boxes``, ``resized_probabilities``, ``box_rectangles``
- :mod:`.dice`: ``dice_cost``
- :mod:`.hungarian`: ``linear_sum_assignment``

Module names differ from the function names so that no submodule is shadowed by the function it defines.
"""

from pysalient.ops._reference.assembling import assemble_instances
from pysalient.ops._reference.box_mask_resize import box_rectangles, resize_masks_in_boxes, resized_probabilities
from pysalient.ops._reference.dice import dice_cost
from pysalient.ops._reference.hungarian import linear_sum_assignment
from pysalient.ops._reference.mask_upsampling import mask_boxes, upsample_mask_probabilities, upsample_masks
from pysalient.ops._reference.masking import roi_masking, roi_masking_masks
from pysalient.ops._reference.pasting import paste_mask_samples, paste_masks, paste_masks_masker
from pysalient.ops._reference.pillow_resize import resize_image
from pysalient.ops._reference.roi_align import multilevel_roi_align
from pysalient.ops._reference.suppression import nms

__all__ = [
    "assemble_instances",
    "box_rectangles",
    "dice_cost",
    "linear_sum_assignment",
    "mask_boxes",
    "multilevel_roi_align",
    "nms",
    "paste_mask_samples",
    "paste_masks",
    "paste_masks_masker",
    "resize_image",
    "resize_masks_in_boxes",
    "resized_probabilities",
    "roi_masking",
    "roi_masking_masks",
    "upsample_mask_probabilities",
    "upsample_masks",
]
