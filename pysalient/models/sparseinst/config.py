"""Typed, JSON-able configuration of the SparseInst family and its named presets.

A config is saved inside every checkpoint (``to_dict``) and rebuilt from it (``from_dict``), so it holds
only ints, floats, strings, bools and tuples of them (:class:`~pysalient.models.family.FamilyConfig`). Field
defaults are those of the official ``Base-SparseInst.yaml`` (hustvl/SparseInst), except ``num_classes`` (1:
class-agnostic salient instances) and ``min_size_test`` (320, the salient-instance setting; the official COCO
configs use 640). Each preset function is registered with the model registry where it is defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from pysalient.inputs import InputSpec
from pysalient.models.family import DEFAULT_CONF, FamilyConfig, InferenceSpec
from pysalient.models.registry import PublishedWeights, register_model, synthsis_demo_weights

DECODER_KINDS = ("base", "giam", "soft")
BACKBONE_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2")
# Smallest padded side: the stride-32 map keeps 2 x 2 cells (see SparseInstConfig.input_spec).
MIN_PADDED_SIZE = 64


@dataclass(frozen=True)
class SparseInstConfig(FamilyConfig):
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
        candidate_threshold: the official ``CLS_THRESHOLD``: queries whose score before mask rescoring is not
            strictly above it are no candidates (an internal rule, like a pre-NMS threshold; ``conf`` applies to
            the final score). Older checkpoints call it ``cls_threshold``.
        score_threshold: default minimum final score of a returned instance (``predict``'s ``conf``).
        mask_threshold: binarisation threshold of mask probabilities.
        max_det: at most this many instances per image (after sorting by score).
    """

    LEGACY_KEYS = {"cls_threshold": "candidate_threshold"}

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
    candidate_threshold: float = 0.005
    score_threshold: float = DEFAULT_CONF
    mask_threshold: float = 0.45
    max_det: int = 100

    def validate(self) -> List[str]:
        """Every problem of the config (the base class raises them as one ValueError)."""
        problems = super().validate()
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
        if not 0 <= self.candidate_threshold < 1:
            problems.append(f"candidate_threshold must lie in [0, 1), got {self.candidate_threshold}")
        try:
            self.inference_spec()
        except ValueError as error:
            problems.append(str(error))
        return problems

    def input_spec(self) -> InputSpec:
        """Official test-time input: RGB, ImageNet mean/std, shortest side ``min_size_test`` capped at
        ``max_size_test``, padded to multiples of ``size_divisibility`` and to at least 64 px (the stride-32 map
        keeps 2 x 2 cells; only images squeezed below 33 px on a side by the resize are affected)."""
        return InputSpec(
            channel_order=self.input_format,
            pixel_mean=tuple(self.pixel_mean),
            pixel_std=tuple(self.pixel_std),
            resize="shortest_edge",
            min_size=self.min_size_test,
            max_size=self.max_size_test,
            size_divisibility=self.size_divisibility,
            min_padded_size=-(-MIN_PADDED_SIZE // self.size_divisibility) * self.size_divisibility,
        )

    def inference_spec(self) -> InferenceSpec:
        """NMS-free: the final score threshold, the mask threshold and the detection cap."""
        return InferenceSpec(
            score_threshold=self.score_threshold,
            mask_threshold=self.mask_threshold,
            nms_threshold=None,
            max_det=self.max_det,
        )

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


# The authors' COCO model (hustvl/SparseInst README, "Models" table; MIT).
OFFICIAL_R50_GIAM_COCO = PublishedWeights(
    file_name="sparse_inst_r50_giam_aug_2b7d68.pth",
    source="hustvl/SparseInst README, Models table (Google Drive / BaiduPan links)",
    trained_on="MS-COCO train2017, 80 classes (34.2 mask AP on val2017 at 608)",
    license="MIT",
)


@register_model("sparseinst_r50_giam", family="sparseinst", published=OFFICIAL_R50_GIAM_COCO)
def sparseinst_r50_giam(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """ResNet-50 (FrozenBN) + group IAM decoder: the official ``sparse_inst_r50_giam`` architecture."""
    return SparseInstConfig(num_classes=num_classes, **changes)


@register_model("sparseinst_r50_base", family="sparseinst")
def sparseinst_r50_base(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """ResNet-50 (FrozenBN) + single-group IAM decoder: the official ``sparse_inst_r50_base``."""
    return SparseInstConfig(decoder="base", num_classes=num_classes, **changes)


@register_model("sparseinst_r50_giam_soft", family="sparseinst")
def sparseinst_r50_giam_soft(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """ResNet-50 (FrozenBN) + group IAM with softmax activation maps: the official ``sparse_inst_r50_giam_soft``."""
    return SparseInstConfig(decoder="soft", num_classes=num_classes, **changes)


@register_model("sparseinst_mbv2_tiny", family="sparseinst")
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


# The light ResNet model is the family default: trained on SynthSIS, its weights ship with the package
# (recipe and measurements in benchmarks/RESULTS.md).
SYNTHSIS_R18_LIGHT = synthsis_demo_weights(
    "sparseinst_r18_light_synthsis-76e1be60.pth",
    "76e1be60361f20788869ebbe0e58c0e73e40e9523cf80963bd34cbc842fd91dc",
    224,
    {"AP": 74.60, "AP50": 96.28, "AP70": 89.64, "AP75": 85.63},
)


@register_model("sparseinst_r18_light", family="sparseinst", default=True, weights=SYNTHSIS_R18_LIGHT)
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


SYNTHSIS_R18_NANO = synthsis_demo_weights(
    "sparseinst_r18_nano_synthsis-44a2845d.pth",
    "44a2845dabad059c0c9ff42499d36c84bef7da2a7cfacb0da0f147a5a0211178",
    224,
    {"AP": 73.65, "AP50": 96.69, "AP70": 89.34, "AP75": 84.27},
)


@register_model("sparseinst_r18_nano", family="sparseinst", weights=SYNTHSIS_R18_NANO)
def sparseinst_r18_nano(num_classes: int = 1, **changes: Any) -> SparseInstConfig:
    """Embedded-size SparseInst: the half-width ResNet-18 of ``sparseinst_r18_light`` with a 64-wide head.

    64-channel encoder and 64-wide instance and mask towers of two convolutions each (50 queries in 4 groups,
    64-dimensional kernels): 8.5 GFLOPs and 3.2 M parameters at a 480 x 640 input, against 15.0 / 4.4 M for
    ``sparseinst_r18_light`` and 9.0 / 3.4 M for ultralytics' yolov8n-seg (the CPU real-time reference; the
    backbone is then 70 % of the cost). Not an official architecture. Test size 224; its weights ship in the package
    (SynthSIS only, a synthetic demo: benchmarks/RESULTS.md).
    """
    defaults: Dict[str, Any] = {
        "backbone": "resnet18",
        "backbone_norm": "BN",
        "backbone_width_multiplier": 0.5,
        "encoder_channels": 64,
        "num_queries": 50,
        "kernel_dim": 64,
        "inst_convs": 2,
        "inst_dim": 64,
        "mask_convs": 2,
        "mask_dim": 64,
        "min_size_test": 224,
    }
    defaults.update(changes)
    return SparseInstConfig(num_classes=num_classes, **defaults)
