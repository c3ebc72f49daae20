"""Dense prediction heads shared by the detector families (:class:`FCOSHead` and its :class:`FCOSLoss`)."""

from pysalient.heads.fcos import FCOSHead
from pysalient.heads.fcos_loss import FCOSLoss, flatten_levels

__all__ = ["FCOSHead", "FCOSLoss", "flatten_levels"]
