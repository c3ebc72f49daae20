"""Dense prediction heads shared by the detector families (:class:`FCOSHead`)."""

from pysalient.heads.fcos import FCOSHead

__all__ = ["FCOSHead"]
