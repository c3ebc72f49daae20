"""Losses shared by the families: focal, dice, box regression, hard negative mining and the
positive-count normaliser."""

from pysalient.losses.box import giou_loss, iou_loss, smooth_l1_loss
from pysalient.losses.dice import dice_loss
from pysalient.losses.focal import sigmoid_focal_loss
from pysalient.losses.normalizer import mean_over_workers
from pysalient.losses.ohem import hardest_negatives_loss

__all__ = [
    "dice_loss",
    "giou_loss",
    "hardest_negatives_loss",
    "iou_loss",
    "mean_over_workers",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
]
