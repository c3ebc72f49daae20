"""Small building blocks shared by backbones, necks and heads."""

from pysalient.layers.conv_norm import ConvNorm, get_norm
from pysalient.layers.fold_norm import fold_conv_norms
from pysalient.layers.frozen_batch_norm import FrozenBatchNorm2d

__all__ = ["ConvNorm", "FrozenBatchNorm2d", "fold_conv_norms", "get_norm"]
