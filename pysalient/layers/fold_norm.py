"""Folding batch normalisation into the preceding convolution, for inference.

At inference a batch norm with running statistics (or a :class:`FrozenBatchNorm2d`) is the affine map
``y = (x - mean) * scale + beta`` with ``scale = gamma / sqrt(var + eps)`` per channel, so a convolution followed by it
equals one convolution with weight ``W * scale[:, None, None, None]`` and bias ``(b - mean) * scale + beta``. The
folded network computes the same function up to float rounding (a few ulps per layer) with one pass over each
activation map fewer per layer: FrozenBN is two element-wise kernels, each reading and writing the whole map.
"""

from __future__ import annotations

import torch
from torch import nn

from pysalient.layers.conv_norm import ConvNorm
from pysalient.layers.frozen_batch_norm import FrozenBatchNorm2d


def foldable_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation that is a fixed per-channel affine map at inference."""
    if isinstance(module, FrozenBatchNorm2d):
        return True
    return (
        isinstance(module, nn.BatchNorm2d)
        and module.running_mean is not None
        and module.running_var is not None
        and module.affine
    )


@torch.no_grad()
def fold_conv_norms(module: nn.Module) -> int:
    """Folds the batch norm of every :class:`ConvNorm` in ``module`` into its convolution, in place.

    Only batch norms with running statistics and :class:`FrozenBatchNorm2d` fold (GroupNorm depends on the input);
    a ``BatchNorm2d`` folds its *running* statistics, so the folded module computes what the original computes in
    eval mode. The arithmetic is done in float64 and stored in the weight's dtype. After folding, the layer's
    ``norm`` is None and its ``bias`` a parameter; the state dict has other keys than before, so the module is for
    inference: do not train or save it as a checkpoint.

    Args:
        module: any module (a network, a backbone, one layer).

    Returns:
        The number of layers folded (0 when there is nothing left to fold, e.g. on a second call).
    """
    folded = 0
    for layer in module.modules():
        if not isinstance(layer, ConvNorm) or layer.norm is None or not foldable_norm(layer.norm):
            continue
        norm = layer.norm
        weight = layer.weight
        scale = norm.weight.double() * (norm.running_var.double() + norm.eps).rsqrt()
        bias = torch.zeros_like(scale) if layer.bias is None else layer.bias.double()
        new_bias = (bias - norm.running_mean.double()) * scale + norm.bias.double()
        new_weight = weight.double() * scale.reshape(-1, *([1] * (weight.dim() - 1)))
        layer.weight = nn.Parameter(new_weight.to(weight.dtype), requires_grad=weight.requires_grad)
        layer.bias = nn.Parameter(new_bias.to(weight.dtype), requires_grad=weight.requires_grad)
        layer.norm = None
        folded += 1
    return folded
