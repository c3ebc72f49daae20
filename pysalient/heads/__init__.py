"""Dense prediction heads shared by the families (:func:`conv_tower`, :class:`FCOSHead` and its :class:`FCOSLoss`)."""

from pysalient.heads.dense import conv_tower
from pysalient.heads.fcos import FCOSHead
from pysalient.heads.fcos_loss import FCOSLoss, flatten_levels

__all__ = ["FCOSHead", "FCOSLoss", "conv_tower", "flatten_levels"]
