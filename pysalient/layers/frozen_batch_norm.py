"""Batch normalisation with fixed statistics and affine parameters (detectron2's ``FrozenBN``)."""

from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import Tensor, nn


class FrozenBatchNorm2d(nn.Module):
    """``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` with every tensor a buffer.

    Used with pretrained backbones, whose batch statistics must not drift during fine-tuning. The four
    buffers carry detectron2's names so official checkpoints load unchanged; a ``num_batches_tracked``
    entry in a checkpoint (torchvision/``nn.BatchNorm2d`` style) is accepted and ignored.

    Args:
        num_features: number of channels C of the [B, C, H, W] input.
        eps: added to the variance, 1e-5 as in detectron2. ``eps=0`` is maskrcnn-benchmark's FrozenBN, which has
            no epsilon (``weight * running_var.rsqrt()``; adding 0.0 leaves the variance bit for bit unchanged), as
            RDPNet's official backbone uses.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C, H, W] -> [B, C, H, W]."""
        # Folding into one scale and shift is what detectron2 does; the fixtures allow for its rounding.
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1).to(x.dtype) + shift.reshape(1, -1, 1, 1).to(x.dtype)

    def _load_from_state_dict(
        self,
        state_dict: Dict[str, Any],
        prefix: str,
        local_metadata: Dict[str, Any],
        strict: bool,
        missing_keys: List[str],
        unexpected_keys: List[str],
        error_msgs: List[str],
    ) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Returns ``module`` with every ``nn.BatchNorm2d`` inside replaced by a frozen copy of itself."""
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen = cls(module.num_features, module.eps)
            if module.affine:
                frozen.weight.copy_(module.weight.detach())
                frozen.bias.copy_(module.bias.detach())
            if module.running_mean is not None:
                frozen.running_mean.copy_(module.running_mean)
                frozen.running_var.copy_(module.running_var)
            return frozen
        for name, child in module.named_children():
            converted = cls.convert_frozen_batchnorm(child)
            if converted is not child:
                module.add_module(name, converted)
        return module
