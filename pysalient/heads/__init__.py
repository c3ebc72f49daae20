"""Dense prediction heads shared by the families (:func:`conv_tower`, :class:`AnchorHead`, :class:`FCOSHead` and its
:class:`FCOSLoss`, :class:`RetinaNetHead`)."""

from pysalient.heads.anchor_head import AnchorHead, flatten_anchor_outputs
from pysalient.heads.dense import conv_tower
from pysalient.heads.fcos import FCOSHead
from pysalient.heads.fcos_loss import FCOSLoss, flatten_levels
from pysalient.heads.retinanet import RetinaNetHead

__all__ = [
    "AnchorHead",
    "FCOSHead",
    "FCOSLoss",
    "RetinaNetHead",
    "conv_tower",
    "flatten_anchor_outputs",
    "flatten_levels",
]
