"""Typed, JSON-able configuration of the S4Net family and its named presets.

Field defaults are the released S4Net (RuochenFan/S4Net ``experiment/config.py`` and ``network_desp.py``, read as
described in the family report): ResNet-50 with frozen BatchNorm and every convolution trainable, FPN P2-P6 of 256
channels (bilinear top-down, P5 the 1x1 lateral of C5, P6 a 2x2 average pool of P5), one shared anchor head (3x3 512
+ ReLU, 3x3 to 2 logits and 4 deltas per anchor), 3 anchors per cell of sizes 16..256, the segmentation branch on
the stride-8 map (128 then 64 channels); BGR input minus the Caffe means, a fixed 320 x 320 resize; proposals: top
5000, NMS 0.4, 20 boxes, no score threshold; masks at 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from pysalient.inputs import InputSpec
from pysalient.models.family import DEFAULT_CONF, FamilyConfig, InferenceSpec
from pysalient.models.registry import register_model, synthsis_demo_weights
from pysalient.models.resnet_options import resnet_kwargs, resnet_problems

MASKING_MODES = ("binary", "expanded_binary", "ternary")
CAFFE_MEAN_BGR = (102.98, 115.95, 122.77)
STRIDES = (4, 8, 16, 32, 64)  # P2..P6
SEGMENTATION_STRIDE = 8  # the segmentation branch reads P3


@dataclass(frozen=True)
class S4NetConfig(FamilyConfig):
    """Architecture, input and inference hyper-parameters of :class:`~pysalient.models.s4net.model.S4Net`.

    Attributes:
        num_classes: 1 = class-agnostic salient instances (S4Net's 2-way background / salient softmax); C > 1
            gives a (C + 1)-way softmax.
        backbone: ``resnet18/34/50/101``.
        backbone_norm: ``"FrozenBN"`` (official) or ``"BN"`` (training from scratch).
        backbone_freeze_at: frozen ResNet stages (official: 0, every convolution trainable).
        backbone_width_multiplier: scales the stem and every ResNet stage.
        frozen_bn_eps: FrozenBN epsilon.
        fpn_channels: width of the pyramid levels (256).
        head_channels: width of the shared head's hidden convolution (512).
        anchor_sizes: anchor size of each level P2..P6 in input pixels (16, 32, 64, 128, 256).
        anchor_ratios: anchor height / width ratios (0.5, 1, 2).
        positive_iou: anchors with an IoU >= it with a ground-truth box are positives, all others negatives (0.4).
        ohem_negatives: the hardest negatives of each level and image in the classification loss (256).
        cls_loss_weight: weight of the positive and of the OHEM negative classification terms (0.3 each).
        smooth_l1_sigma: sigma of the box loss (3: quadratic below 1/9).
        seg_channels: widths of the segmentation branch before and after its dilated convolution (128, 64).
        masking_mode: RoIMasking of the segmentation branch, ``"ternary"`` (S4Net), ``"binary"`` or
            ``"expanded_binary"`` (the paper's ablation).
        expand_ratio: width of the RoIMasking ring per side, as a fraction of the box (1/3).
        seg_logits_relu: the released code's ReLU on the 2-class segmentation logits (a quirk, kept for the
            paper architecture; the light entry drops it).
        seg_msra_init: MSRA (Kaiming, fan-out) initialisation of the FPN and segmentation convolutions instead of
            the released N(0, 0.01) (the light entry, trained from scratch).
        pixel_mean, pixel_std: normalisation in ``input_format`` order, 0-255 range.
        input_format: channel order the network expects (``"BGR"``).
        input_size: side of the fixed square resize (320); a multiple of ``size_divisibility`` avoids padding.
        size_divisibility: padded inputs are multiples of this (64, the stride of P6).
        pre_nms_top_n: proposals kept before NMS, over all levels (5000).
        nms_threshold: IoU of the proposal NMS (0.4).
        max_det: boxes kept after NMS (20; the official code has no score threshold).
        scale_clamp: clamp of the decoded ``dw``, ``dh`` before ``exp`` (20 in the released code).
        score_threshold: default minimum score of a returned instance (``predict``'s ``conf``).
        mask_threshold: threshold of the foreground probability (0.5).
    """

    num_classes: int = 1
    backbone: str = "resnet50"
    backbone_norm: str = "FrozenBN"
    backbone_freeze_at: int = 0
    backbone_width_multiplier: float = 1.0
    frozen_bn_eps: float = 1e-5
    fpn_channels: int = 256
    head_channels: int = 512
    anchor_sizes: Tuple[float, ...] = (16.0, 32.0, 64.0, 128.0, 256.0)
    anchor_ratios: Tuple[float, ...] = (0.5, 1.0, 2.0)
    positive_iou: float = 0.4
    ohem_negatives: int = 256
    cls_loss_weight: float = 0.3
    smooth_l1_sigma: float = 3.0
    seg_channels: Tuple[int, int] = (128, 64)
    masking_mode: str = "ternary"
    expand_ratio: float = 1.0 / 3.0
    seg_logits_relu: bool = True
    seg_msra_init: bool = False
    pixel_mean: Tuple[float, float, float] = CAFFE_MEAN_BGR
    pixel_std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    input_format: str = "BGR"
    input_size: int = 320
    size_divisibility: int = 64
    pre_nms_top_n: int = 5000
    nms_threshold: float = 0.4
    max_det: int = 20
    scale_clamp: float = 20.0
    score_threshold: float = DEFAULT_CONF
    mask_threshold: float = 0.5

    def validate(self) -> List[str]:
        """Every problem of the config (the base class raises them as one ValueError)."""
        problems = super().validate()
        problems += resnet_problems(
            self.backbone, self.backbone_norm, self.backbone_freeze_at, self.backbone_width_multiplier
        )
        if min(self.fpn_channels, self.head_channels) < 1 or len(self.seg_channels) != 2 or min(self.seg_channels) < 1:
            problems.append(
                f"fpn_channels, head_channels and the two seg_channels must be positive, got {self.fpn_channels}, "
                f"{self.head_channels}, {self.seg_channels}"
            )
        if len(self.anchor_sizes) != len(STRIDES) or min(self.anchor_sizes) <= 0:
            problems.append(f"anchor_sizes needs {len(STRIDES)} positive sizes (P2..P6), got {self.anchor_sizes}")
        if not self.anchor_ratios or min(self.anchor_ratios) <= 0:
            problems.append(f"anchor_ratios must be positive, got {self.anchor_ratios}")
        if not 0 < self.positive_iou <= 1:
            problems.append(f"positive_iou must lie in (0, 1], got {self.positive_iou}")
        if self.ohem_negatives < 1 or self.cls_loss_weight <= 0 or self.smooth_l1_sigma <= 0:
            problems.append("ohem_negatives, cls_loss_weight and smooth_l1_sigma must be positive")
        if self.masking_mode not in MASKING_MODES:
            problems.append(f"masking_mode must be one of {MASKING_MODES}, got {self.masking_mode!r}")
        if not self.expand_ratio >= 0:
            problems.append(f"expand_ratio must be >= 0, got {self.expand_ratio}")
        if self.input_format not in ("RGB", "BGR"):
            problems.append(f"input_format must be 'RGB' or 'BGR', got {self.input_format!r}")
        if self.size_divisibility < 1 or self.size_divisibility % STRIDES[-1]:
            problems.append(f"size_divisibility must be a multiple of {STRIDES[-1]} (P6), got {self.size_divisibility}")
        if self.input_size < 1:
            problems.append(f"input_size must be >= 1, got {self.input_size}")
        if self.pre_nms_top_n < 1:
            problems.append(f"pre_nms_top_n must be >= 1, got {self.pre_nms_top_n}")
        if self.scale_clamp <= 0:
            problems.append(f"scale_clamp must be positive, got {self.scale_clamp}")
        try:
            self.input_spec()
            self.inference_spec()
        except ValueError as error:
            problems.append(str(error))
        return problems

    def input_spec(self) -> InputSpec:
        """S4Net's input: every image resized to ``input_size`` x ``input_size`` (aspect ratio not kept), BGR
        minus the Caffe means (std 1), padded to a multiple of 64 (no padding at the default sizes)."""
        return InputSpec(
            channel_order=self.input_format,
            pixel_mean=tuple(self.pixel_mean),
            pixel_std=tuple(self.pixel_std),
            resize="fixed",
            min_size=self.input_size,
            max_size=self.input_size,
            size_divisibility=self.size_divisibility,
        )

    def inference_spec(self) -> InferenceSpec:
        """The default ``conf``, the mask threshold, the proposal NMS IoU and the box cap."""
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
            ["res2", "res3", "res4", "res5"],
            self.backbone_width_multiplier,
        )


@register_model("s4net_r50", family="s4net")
def s4net_r50(num_classes: int = 1, **changes: Any) -> S4NetConfig:
    """ResNet-50 (FrozenBN) + FPN P2-P6 + shared anchor head + ternary RoIMasking segmentation: the paper's S4Net."""
    return S4NetConfig(num_classes=num_classes, **changes)


# The light model is the family default: trained on SynthSIS, its weights ship with the package (recipe and
# measurements in benchmarks/RESULTS.md). A synthetic demo: fit for SynthSIS-like scenes, not for photographs.
SYNTHSIS_R18_LIGHT = synthsis_demo_weights(
    "s4net_r18_light_synthsis-eff2ec2a.pth",
    "eff2ec2a568e85177256ad76be65f012bcd86278ef42c398790aa0fd947bc59f",
    320,
    {"AP": 62.43, "AP50": 87.62, "AP70": 75.78, "AP75": 68.27},
)


@register_model("s4net_r18_light", family="s4net", default=True, weights=SYNTHSIS_R18_LIGHT)
def s4net_r18_light(num_classes: int = 1, **changes: Any) -> S4NetConfig:
    """Half-width ResNet-18 (BN), 64-channel pyramid, 128-channel head, 64/32-channel segmentation: trains on a CPU.

    Not an official architecture: every S4Net component is kept (FPN P2-P6 with bilinear top-down and average-pool
    P6, the shared 2-way softmax anchor head, OHEM, ternary RoIMasking of the stride-8 map and the full segmentation
    stack), at widths a CPU trains from scratch (trainable BatchNorm), without the released code's ReLU on the
    segmentation logits. Fixed 320 x 320 input as in the paper (SynthSIS' 256-pixel images are upsampled: the
    stride-8 segmentation map then has 40 x 40 cells instead of 32 x 32) and a mask threshold of 0.4 (chosen on a
    SynthSIS tuning split, benchmarks/RESULTS.md; the paper's 0.5 stays the family default).
    """
    defaults: Dict[str, Any] = {
        "backbone": "resnet18",
        "backbone_norm": "BN",
        "backbone_width_multiplier": 0.5,
        "fpn_channels": 64,
        "head_channels": 128,
        "seg_channels": (64, 32),
        "seg_logits_relu": False,
        "seg_msra_init": True,
        "input_size": 320,
        "mask_threshold": 0.4,
    }
    defaults.update(changes)
    return S4NetConfig(num_classes=num_classes, **defaults)
