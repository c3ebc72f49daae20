"""Weight initialisations of the official detectors (fvcore / detectron2 / Caffe2 fills, the focal-loss prior)."""

from __future__ import annotations

import math
from typing import Union

from torch import nn


def c2_xavier_fill(module: Union[nn.Conv2d, nn.Linear]) -> None:
    """Caffe2's Xavier fill as fvcore's ``c2_xavier_fill``: uniform, gain for a=1, zero bias."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def c2_msra_fill(module: Union[nn.Conv2d, nn.Linear]) -> None:
    """Caffe2's MSRA fill as fvcore's ``c2_msra_fill``: normal, fan-out, ReLU gain, zero bias."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def normal_fill(module: Union[nn.Conv2d, nn.Linear], std: float = 0.01) -> None:
    """Normal(0, std) weights and zero bias: the heads of RetinaNet / FCOS (std 0.01)."""
    nn.init.normal_(module.weight, mean=0.0, std=std)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def prior_probability_bias(prior: float = 0.01) -> float:
    """The bias whose sigmoid is ``prior`` (Lin et al., ICCV'17 §3.3: stable early training of focal-loss logits)."""
    if not 0 < prior < 1:
        raise ValueError(f"prior must lie in (0, 1), got {prior}")
    return -math.log((1 - prior) / prior)
