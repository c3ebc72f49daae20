"""Typed, JSON-able configuration of the SparseInst family and its named presets.

A config is saved inside every checkpoint (``to_dict``) and rebuilt from it (``from_dict``), so it holds
only ints, floats, strings, bools and tuples of them. Field defaults are those of the official
``Base-SparseInst.yaml`` (hustvl/SparseInst), except ``num_classes`` (1: class-agnostic salient instances)
and ``min_size_test`` (320, the salient-instance setting; the official COCO configs use 640).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

DECODER_KINDS = ("base", "giam", "soft")
BACKBONE_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2")


@dataclass(frozen=True)
class SparseInstConfig:
    """Architecture, input and inference hyper-parameters of :class:`~pysalient.models.sparseinst.SparseInst`.

    Attributes:
        backbone: ``resnet18/34/50/101`` or ``mobilenetv2``.
        backbone_norm: ``"FrozenBN"`` (pretrained ResNets, as official), ``"BN"`` or ``"GN"``.
        backbone_freeze_at: ResNet stages frozen (0 as in the official configs); ignored by MobileNetV2.
        backbone_width_multiplier: channel multiplier of the backbone (MobileNetV2's width; for ResNets it scales
            the stem and every stage, so 0.5 gives a quarter of the parameters).
        encoder_channels: width of the instance context encoder (256).
        ppm_sizes: output bins of the pyramid pooling module (PSPNet's 1, 2, 3, 6).
        ppm_channels: width of each pooled branch; 0 means ``encoder_channels // 4`` as official.
        decoder: ``"base"`` (IAM), ``"giam"`` (group IAM) or ``"soft"`` (group IAM with softmax).
        num_queries: N, number of instance activation maps per group.
        num_classes: 1 = class-agnostic salient instances, 80 = COCO.
        kernel_dim: D, length of each dynamic mask kernel.
        inst_convs, inst_dim: depth and width of the instance-branch tower.
        mask_convs, mask_dim: depth and width of the mask-branch tower.
        groups: IAM groups of the ``giam`` / ``soft`` decoders.
        scale_factor: upsampling of the stride-8 masks (2 -> stride 4).
        pixel_mean, pixel_std: normalisation, in ``input_format`` channel order, 0-255 range.
        input_format: channel order the network expects (``"RGB"``, the official setting).
        min_size_test, max_size_test: test-time resize of the shortest / longest side.
        size_divisibility: padded inputs are multiples of this.
        cls_threshold: keep queries whose score is strictly above it.
        mask_threshold: binarisation threshold of mask probabilities.
        max_det: at most this many instances per image (after sorting by score).
    """

    backbone: str = "resnet50"
    backbone_norm: str = "FrozenBN"
    backbone_freeze_at: int = 0
    backbone_width_multiplier: float = 1.0
    encoder_channels: int = 256
    ppm_sizes: Tuple[int, ...] = (1, 2, 3, 6)
    ppm_channels: int = 0
    decoder: str = "giam"
    num_queries: int = 100
    num_classes: int = 1
    kernel_dim: int = 128
    inst_convs: int = 4
    inst_dim: int = 256
    mask_convs: int = 4
    mask_dim: int = 256
    groups: int = 4
    scale_factor: float = 2.0
    pixel_mean: Tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: Tuple[float, float, float] = (58.395, 57.12, 57.375)
    input_format: str = "RGB"
    min_size_test: int = 320
    max_size_test: int = 853
    size_divisibility: int = 32
    cls_threshold: float = 0.005
    mask_threshold: float = 0.45
    max_det: int = 100

    def __post_init__(self) -> None:
        problems: List[str] = []
        if self.backbone not in BACKBONE_NAMES:
            problems.append(f"backbone must be one of {BACKBONE_NAMES}, got {self.backbone!r}")
        if self.backbone_width_multiplier <= 0:
            problems.append(f"backbone_width_multiplier must be positive, got {self.backbone_width_multiplier}")
        if self.decoder not in DECODER_KINDS:
            problems.append(f"decoder must be one of {DECODER_KINDS}, got {self.decoder!r}")
        for name in ("encoder_channels", "num_queries", "num_classes", "kernel_dim", "inst_dim", "mask_dim"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.inst_convs < 1 or self.mask_convs < 1:
            problems.append(f"inst_convs and mask_convs must be >= 1, got {self.inst_convs} and {self.mask_convs}")
        if self.decoder != "base" and (self.groups < 1 or self.inst_dim % self.groups):
            problems.append(f"inst_dim ({self.inst_dim}) must be divisible by groups ({self.groups})")
        if self.input_format not in ("RGB", "BGR"):
            problems.append(f"input_format must be 'RGB' or 'BGR', got {self.input_format!r}")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3 or min(self.pixel_std) <= 0:
            problems.append("pixel_mean and pixel_std need 3 values, std positive")
        if self.min_size_test < 1 or self.max_size_test < self.min_size_test or self.size_divisibility < 1:
            problems.append("need 1 <= min_size_test <= max_size_test and size_divisibility >= 1")
        if problems:
            raise ValueError("invalid SparseInstConfig: " + "; ".join(problems))

    @property
    def resolved_ppm_channels(self) -> int:
        """Width of the pooled branches (official: a quarter of the encoder width)."""
        return self.ppm_channels or self.encoder_channels // 4

    def backbone_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of :func:`pysalient.backbones.build_backbone` for this config."""
        if self.backbone == "mobilenetv2":
            return {"width_multiplier": self.backbone_width_multiplier, "norm": self.backbone_norm}
        kwargs: Dict[str, Any] = {"norm": self.backbone_norm, "freeze_at": self.backbone_freeze_at}
        if self.backbone_width_multiplier != 1.0:
            width = max(8, int(round(64 * self.backbone_width_multiplier)))
            kwargs.update(stem_out_channels=width, width_per_group=width)
        return kwargs

    def replace(self, **changes: Any) -> SparseInstConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> SparseInstConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a ValueError that names them."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown SparseInstConfig keys {unknown}; known keys are {sorted(fields)}")
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
        return cls(**values)


def sparseinst_r50_giam(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """ResNet-50 (FrozenBN) + group IAM decoder: the official ``sparse_inst_r50_giam`` architecture."""
    return SparseInstConfig(num_classes=num_classes, **changes)


def sparseinst_r50_base(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """ResNet-50 (FrozenBN) + single-group IAM decoder: the official ``sparse_inst_r50_base``."""
    return SparseInstConfig(decoder="base", num_classes=num_classes, **changes)


def sparseinst_r50_giam_soft(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """ResNet-50 (FrozenBN) + group IAM with softmax activation maps: the official ``sparse_inst_r50_giam_soft``."""
    return SparseInstConfig(decoder="soft", num_classes=num_classes, **changes)


def sparseinst_mbv2_tiny(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """MobileNetV2 (BN) with a light encoder and decoder for embedded use (not an official architecture).

    128-channel encoder, two 3x3 convolutions of 128 channels per tower, 50 queries in 4 groups and
    64-dimensional mask kernels: about a fifth of the R50-GIAM head cost at the same resolution.
    """
    defaults: Dict[str, Any] = {
        "backbone": "mobilenetv2",
        "backbone_norm": "BN",
        "backbone_width_multiplier": 1.0,
        "encoder_channels": 128,
        "num_queries": 50,
        "kernel_dim": 64,
        "inst_convs": 2,
        "inst_dim": 128,
        "mask_convs": 2,
        "mask_dim": 128,
    }
    defaults.update(changes)
    return SparseInstConfig(num_classes=num_classes, **defaults)


def sparseinst_r18_light(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """Half-width ResNet-18 (BN, 2.8 M parameters) with the light decoder: the default salient-instance model.

    Same head as ``sparseinst_mbv2_tiny`` (128-channel encoder, two 128-wide convolutions per tower, 50 queries in
    4 groups, 64-dimensional kernels); the ResNet trains about 1.5x faster than MobileNetV2 on a CPU, where
    depthwise convolutions are slow. Trainable BatchNorm: it is trained from scratch, not from ImageNet weights.
    Test size 224 (shortest side), matching the 256-pixel SynthSIS images it is trained on.
    """
    defaults: Dict[str, Any] = {
        "backbone": "resnet18",
        "backbone_norm": "BN",
        "backbone_width_multiplier": 0.5,
        "encoder_channels": 128,
        "num_queries": 50,
        "kernel_dim": 64,
        "inst_convs": 2,
        "inst_dim": 128,
        "mask_convs": 2,
        "mask_dim": 128,
        "min_size_test": 224,
    }
    defaults.update(changes)
    return SparseInstConfig(num_classes=num_classes, **defaults)


PRESETS: Dict[str, Callable[..., SparseInstConfig]] = {
    "sparseinst_r50_giam": sparseinst_r50_giam,
    "sparseinst_r50_base": sparseinst_r50_base,
    "sparseinst_r50_giam_soft": sparseinst_r50_giam_soft,
    "sparseinst_mbv2_tiny": sparseinst_mbv2_tiny,
    "sparseinst_r18_light": sparseinst_r18_light,
}


def preset_config(name: str, num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """The config of a named preset (see :data:`PRESETS`) for ``num_classes`` classes."""
    if name not in PRESETS:
        raise ValueError(f"unknown SparseInst preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name](num_classes=num_classes, **changes)
