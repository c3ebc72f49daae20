"""Feature necks: pyramids built on backbone features (:class:`FPN` and its top blocks)."""

from pysalient.necks.fpn import FPN, LastLevelAvgPool, LastLevelMaxPool, LastLevelP6P7

__all__ = ["FPN", "LastLevelAvgPool", "LastLevelMaxPool", "LastLevelP6P7"]
