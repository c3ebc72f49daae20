"""The ResNet backbone settings the detector families share (names, norm, frozen stages, width): their validation and
the keyword arguments of :func:`pysalient.backbones.build_backbone`."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

RESNET_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101")
RESNET_NORMS = ("FrozenBN", "BN", "GN")


def resnet_problems(backbone: str, norm: str, freeze_at: int, width_multiplier: float) -> List[str]:
    """What is wrong with these ResNet settings (empty when valid), in a family config's ``validate`` wording."""
    problems: List[str] = []
    if backbone not in RESNET_NAMES:
        problems.append(f"backbone must be one of {RESNET_NAMES}, got {backbone!r}")
    if norm not in RESNET_NORMS:
        problems.append(f"backbone_norm must be 'FrozenBN', 'BN' or 'GN', got {norm!r}")
    if not 0 <= freeze_at <= 5:
        problems.append(f"backbone_freeze_at must lie in [0, 5], got {freeze_at}")
    if width_multiplier <= 0:
        problems.append(f"backbone_width_multiplier must be positive, got {width_multiplier}")
    return problems


def resnet_kwargs(
    norm: str,
    freeze_at: int,
    frozen_bn_eps: float,
    out_features: Sequence[str],
    width_multiplier: float = 1.0,
    **extra: Any,
) -> Dict[str, Any]:
    """Keyword arguments of :func:`pysalient.backbones.build_backbone`; a width multiplier other than 1 scales the
    stem and every stage (at least 8 channels)."""
    kwargs: Dict[str, Any] = {
        "norm": norm,
        "freeze_at": freeze_at,
        "frozen_bn_eps": frozen_bn_eps,
        "out_features": list(out_features),
        **extra,
    }
    if width_multiplier != 1.0:
        width = max(8, int(round(64 * width_multiplier)))
        kwargs.update(stem_out_channels=width, width_per_group=width)
    return kwargs
