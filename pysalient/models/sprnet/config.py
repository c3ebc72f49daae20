"""Typed, JSON-able configuration of the SPRNet family and its named presets.

Field defaults are the paper's SPRNet ("Single Pixel Reconstruction for One-stage Instance Segmentation") on
RetinaNet with the detectron2 conventions the family report recommends (there is no official code): ResNet-50 with
frozen BatchNorm (stem and res2 frozen), a gated FPN P3-P7 of 256 channels (P6 from C5), the RetinaNet head (4 x 256
convolutions per subnet), 9 anchors per cell (sizes 32..512 x {1, 2^(1/3), 2^(2/3)} x ratios {0.5, 1, 2}), the SPR
mask branch (1x1 256 + three dilated 3x3 of 128, 256-wide decoder to 32 x 32), a 500 px short side capped at 833,
standard RetinaNet post-processing (score > 0.05, top 1000 per level, NMS 0.5, 100 detections).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from pysalient.inputs import InputSpec
from pysalient.models.family import DEFAULT_CONF, FamilyConfig, InferenceSpec
from pysalient.models.registry import register_model, synthsis_demo_weights
from pysalient.models.resnet_options import resnet_kwargs, resnet_problems

STRIDES = (8, 16, 32, 64, 128)  # P3..P7
MASK_SIZE = 32  # the SPR decoder's output side (1 -> 2 -> 4 -> 8 by deconvolutions, 16 -> 32 by up-sampling)
DETECTRON2_MEAN_BGR = (103.53, 116.28, 123.675)
UPSAMPLE_MODES = ("nearest", "bilinear")


@dataclass(frozen=True)
class SPRNetConfig(FamilyConfig):
    """Architecture, training-target, input and inference hyper-parameters of
    :class:`~pysalient.models.sprnet.model.SPRNet`.

    Attributes:
        num_classes: 1 = class-agnostic salient instances; C > 1 gives C sigmoid classes and C mask channels.
        backbone: ``resnet18/34/50/101``.
        backbone_norm: ``"FrozenBN"`` (paper, keras-retinanet ``freeze_bn``) or ``"BN"`` (training from scratch).
        backbone_freeze_at: frozen ResNet stages (detectron2's RetinaNet: 2, the stem and res2).
        backbone_width_multiplier: scales the stem and every ResNet stage.
        frozen_bn_eps: FrozenBN epsilon.
        fpn_channels: width of the pyramid levels (256).
        gated: the gated FPN (GFPN); False is the plain FPN of the paper's ablation.
        gate_channels: channels of each gate, 0 for ``fpn_channels`` (element-wise, the report's B16) or 1 (spatial).
        gate_bias_init: initial bias of the gates (0: gates start near 0.5, B20).
        head_channels: width of the RetinaNet subnets, 0 for ``fpn_channels``.
        head_convs: hidden convolutions per subnet (4).
        prior: initial foreground probability of the classification logits (0.01).
        anchor_sizes: base anchor size of each level P3..P7 in input pixels (32..512).
        anchor_scales: multipliers of the base size on every level ({2^0, 2^(1/3), 2^(2/3)}).
        anchor_ratios: anchor height / width ratios (0.5, 1, 2).
        anchor_offset: anchor centre inside its cell as a fraction of the stride (detectron2: 0; keras: 0.5).
        iou_thresholds: negatives below the first IoU, positives at or above the second, ignored between (0.4, 0.5).
        allow_low_quality_matches: each ground truth's best anchors are positives too (detectron2, torchvision).
        focal_alpha, focal_gamma: focal-loss parameters (0.25, 2).
        smooth_l1_beta: transition of the box loss (detectron2's RetinaNet: 0.1).
        mask_iou: anchors with a best IoU strictly above it give the mask branch its pixels (0.7).
        mask_samples: at most this many such anchors per image, highest IoU first (300).
        fusion_channels: widths of the fusion's 1x1 convolution and of each dilated 3x3 (256, 128: 640 together).
        fusion_dilations: dilations of the fusion's three parallel 3x3 convolutions (2, 4, 6).
        decoder_channels: width of the deconvolutions and up-sampling convolutions (256).
        mask_upsample: interpolation of the decoder's two x2 up-samplings (``"nearest"``; the x4 shortcut is
            always nearest).
        dense_fusion: compute the fusion over whole maps and index it (the check and ablation path); the default
            computes it at the sampled pixels only (exact, far cheaper).
        cls_loss_weight, box_loss_weight, mask_loss_weight: loss weights (1 : 1 : 1).
        pixel_mean, pixel_std: normalisation in ``input_format`` order, 0-255 range.
        input_format: channel order the network expects (``"BGR"``).
        min_size_test, max_size_test: test-time resize of the shortest side and cap of the longest (500, 833).
        size_divisibility: padded inputs are multiples of this (128, the stride of P7).
        candidate_threshold: candidates need a class probability above it (0.05).
        pre_nms_top_n: candidates kept per level before NMS (1000).
        nms_threshold: IoU of the class-wise NMS (0.5).
        max_det: detections kept per image (100).
        score_threshold: default minimum score of a returned instance (``predict``'s ``conf``).
        mask_threshold: threshold of the pasted mask probabilities (0.5).
    """

    num_classes: int = 1
    backbone: str = "resnet50"
    backbone_norm: str = "FrozenBN"
    backbone_freeze_at: int = 2
    backbone_width_multiplier: float = 1.0
    frozen_bn_eps: float = 1e-5
    fpn_channels: int = 256
    gated: bool = True
    gate_channels: int = 0
    gate_bias_init: float = 0.0
    head_channels: int = 0
    head_convs: int = 4
    prior: float = 0.01
    anchor_sizes: Tuple[float, ...] = (32.0, 64.0, 128.0, 256.0, 512.0)
    anchor_scales: Tuple[float, ...] = (1.0, 2.0 ** (1.0 / 3.0), 2.0 ** (2.0 / 3.0))
    anchor_ratios: Tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_offset: float = 0.0
    iou_thresholds: Tuple[float, float] = (0.4, 0.5)
    allow_low_quality_matches: bool = True
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smooth_l1_beta: float = 0.1
    mask_iou: float = 0.7
    mask_samples: int = 300
    fusion_channels: Tuple[int, int] = (256, 128)
    fusion_dilations: Tuple[int, ...] = (2, 4, 6)
    decoder_channels: int = 256
    mask_upsample: str = "nearest"
    dense_fusion: bool = False
    cls_loss_weight: float = 1.0
    box_loss_weight: float = 1.0
    mask_loss_weight: float = 1.0
    pixel_mean: Tuple[float, float, float] = DETECTRON2_MEAN_BGR
    pixel_std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    input_format: str = "BGR"
    min_size_test: int = 500
    max_size_test: int = 833
    size_divisibility: int = 128
    candidate_threshold: float = 0.05
    pre_nms_top_n: int = 1000
    nms_threshold: float = 0.5
    max_det: int = 100
    score_threshold: float = DEFAULT_CONF
    mask_threshold: float = 0.5

    def validate(self) -> List[str]:
        """Every problem of the config (the base class raises them as one ValueError)."""
        problems = super().validate()
        problems += resnet_problems(
            self.backbone, self.backbone_norm, self.backbone_freeze_at, self.backbone_width_multiplier
        )
        if self.fpn_channels < 1 or self.head_channels < 0 or self.head_convs < 1 or self.decoder_channels < 1:
            problems.append(
                f"fpn_channels, head_convs and decoder_channels must be positive and head_channels >= 0, got "
                f"{self.fpn_channels}, {self.head_convs}, {self.decoder_channels}, {self.head_channels}"
            )
        if self.gate_channels not in (0, 1, self.fpn_channels):
            problems.append(f"gate_channels must be 0 (= fpn_channels), 1 or fpn_channels, got {self.gate_channels}")
        if not 0 < self.prior < 1:
            problems.append(f"prior must lie in (0, 1), got {self.prior}")
        if len(self.anchor_sizes) != len(STRIDES) or min(self.anchor_sizes) <= 0:
            problems.append(f"anchor_sizes needs {len(STRIDES)} positive sizes (P3..P7), got {self.anchor_sizes}")
        if not self.anchor_scales or min(self.anchor_scales) <= 0:
            problems.append(f"anchor_scales must be positive, got {self.anchor_scales}")
        if not self.anchor_ratios or min(self.anchor_ratios) <= 0:
            problems.append(f"anchor_ratios must be positive, got {self.anchor_ratios}")
        if not 0 <= self.anchor_offset < 1:
            problems.append(f"anchor_offset must lie in [0, 1), got {self.anchor_offset}")
        if len(self.iou_thresholds) != 2 or not 0 < self.iou_thresholds[0] <= self.iou_thresholds[1] <= 1:
            problems.append(
                f"iou_thresholds must be (negative, positive) with 0 < neg <= pos <= 1, got {self.iou_thresholds}"
            )
        if not 0 <= self.mask_iou < 1 or self.mask_samples < 1:
            problems.append(f"need mask_iou in [0, 1) and mask_samples >= 1, got {self.mask_iou}, {self.mask_samples}")
        if len(self.fusion_channels) != 2 or min(self.fusion_channels) < 1:
            problems.append(f"fusion_channels must be two positive widths, got {self.fusion_channels}")
        if not self.fusion_dilations or min(self.fusion_dilations) < 1:
            problems.append(f"fusion_dilations must be positive, got {self.fusion_dilations}")
        if self.mask_upsample not in UPSAMPLE_MODES:
            problems.append(f"mask_upsample must be one of {UPSAMPLE_MODES}, got {self.mask_upsample!r}")
        if min(self.focal_gamma, self.smooth_l1_beta) < 0:
            problems.append("focal_gamma and smooth_l1_beta must be >= 0")
        if min(self.cls_loss_weight, self.box_loss_weight, self.mask_loss_weight) < 0:
            problems.append("loss weights must be >= 0")
        if self.input_format not in ("RGB", "BGR"):
            problems.append(f"input_format must be 'RGB' or 'BGR', got {self.input_format!r}")
        if self.size_divisibility < 1 or self.size_divisibility % STRIDES[-1]:
            problems.append(f"size_divisibility must be a multiple of {STRIDES[-1]} (P7), got {self.size_divisibility}")
        if not 0 <= self.candidate_threshold < 1 or self.pre_nms_top_n < 1:
            problems.append(
                f"need candidate_threshold in [0, 1) and pre_nms_top_n >= 1, got {self.candidate_threshold}, "
                f"{self.pre_nms_top_n}"
            )
        try:
            self.input_spec()
            self.inference_spec()
        except ValueError as error:
            problems.append(str(error))
        return problems

    def input_spec(self) -> InputSpec:
        """detectron2's test input: shortest side to ``min_size_test`` capped at ``max_size_test``, BGR minus the
        means (std 1), padded to a multiple of 128."""
        return InputSpec(
            channel_order=self.input_format,
            pixel_mean=tuple(self.pixel_mean),
            pixel_std=tuple(self.pixel_std),
            resize="shortest_edge",
            min_size=self.min_size_test,
            max_size=self.max_size_test,
            size_divisibility=self.size_divisibility,
        )

    def inference_spec(self) -> InferenceSpec:
        """The default ``conf``, the mask threshold, the NMS IoU and the detection cap."""
        return InferenceSpec(
            score_threshold=self.score_threshold,
            mask_threshold=self.mask_threshold,
            nms_threshold=self.nms_threshold,
            max_det=self.max_det,
        )

    def backbone_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of :func:`pysalient.backbones.build_backbone` for this config."""
        return resnet_kwargs(
            self.backbone_norm,
            self.backbone_freeze_at,
            self.frozen_bn_eps,
            ["res3", "res4", "res5"],
            self.backbone_width_multiplier,
        )

    def level_anchor_sizes(self) -> List[List[float]]:
        """Per level P3..P7, its anchor sizes (base size times each scale)."""
        return [[size * scale for scale in self.anchor_scales] for size in self.anchor_sizes]


@register_model("sprnet_r50", family="sprnet")
def sprnet_r50(num_classes: int = 1, **changes: Any) -> SPRNetConfig:
    """The paper's SPRNet R50-GFPN: ResNet-50 (FrozenBN), gated FPN P3-P7, RetinaNet head, SPR masks, 500 px.

    No official code or weights exist; see :mod:`pysalient.models.sprnet.model` for every reading taken."""
    return SPRNetConfig(num_classes=num_classes, **changes)


@register_model("sprnet_r50_fpn", family="sprnet")
def sprnet_r50_fpn(num_classes: int = 1, **changes: Any) -> SPRNetConfig:
    """``sprnet_r50`` with a plain FPN (no gates): the paper's FPN-vs-GFPN ablation."""
    defaults: Dict[str, Any] = {"gated": False}
    defaults.update(changes)
    return SPRNetConfig(num_classes=num_classes, **defaults)


def light_defaults() -> Dict[str, Any]:
    """The light entry's departures from the paper architecture (also the base of the ablation runs)."""
    return {
        "backbone": "resnet18",
        "backbone_norm": "BN",
        "backbone_freeze_at": 0,
        "backbone_width_multiplier": 0.5,
        "fpn_channels": 64,
        "head_convs": 2,
        "fusion_channels": (64, 32),
        "decoder_channels": 64,
        "min_size_test": 256,
        "max_size_test": 512,
    }


# The light model is the family default: trained on SynthSIS, its weights ship with the package (recipe and
# measurements in benchmarks/RESULTS.md). A synthetic demo: fit for SynthSIS-like scenes, not for photographs.
SYNTHSIS_R18_LIGHT = synthsis_demo_weights(
    "sprnet_r18_light_synthsis-3300d8b2.pth",
    "3300d8b28e65ad75ac02a675ce755751c09f238c5c5631617cd880949090bff1",
    256,
    {"AP": 59.50, "AP50": 93.16, "AP70": 73.93, "AP75": 61.90},
)


@register_model("sprnet_r18_light", family="sprnet", default=True, weights=SYNTHSIS_R18_LIGHT)
def sprnet_r18_light(num_classes: int = 1, **changes: Any) -> SPRNetConfig:
    """CPU-sized SPRNet: half-width ResNet-18 (BN), 64-channel gated FPN, 2-conv subnets, 64-wide SPR decoder.

    Not an official architecture: every SPRNet component is kept (gated FPN P3-P7, 9 anchors per cell, focal and
    smooth-L1 losses, the fusion with dilations 2/4/6, three deconvolutions to 8 x 8, two up-samplings to 32 x 32 with
    the x4 shortcut) at widths a CPU trains from scratch (trainable BatchNorm). RetinaNet's anchors (32..512 px) are
    kept: an anchor 4 strides wide is what gives an object several anchors above the mask IoU of 0.7 (halved anchors
    leave most objects with none). Test size 256 (the SynthSIS images) capped at 512.
    """
    defaults = light_defaults()
    defaults.update(changes)
    return SPRNetConfig(num_classes=num_classes, **defaults)
