"""Typed, JSON-able configuration of the InstanceFCN family and its named presets.

Field defaults are the paper's InstanceFCN ("Instance-sensitive Fully Convolutional Networks", Dai et al., ECCV 2016)
with the family report's recommended readings (``INSTANCEFCN_SPRNET.md`` §1; there is no official code): dilated
VGG-16 at stride 8, an instance branch (1x1 512 + ReLU, 3x3 -> k^2 = 25 maps), an objectness branch (3x3 512 + ReLU,
1x1 -> 1), 21 x 21-cell windows (168 px), DeepMask's window rule scaled to 168 px, 256 windows per image at 1:1,
the six test scales 600 x 1.5^-4 .. 600 x 1.5, NMS 0.8 on the masks' tight boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from pysalient.inputs import InputSpec
from pysalient.models.family import DEFAULT_CONF, FamilyConfig, InferenceSpec
from pysalient.models.registry import register_model, synthsis_demo_weights
from pysalient.models.resnet_options import RESNET_NAMES, resnet_kwargs, resnet_problems

STRIDE = 8  # the score maps' stride: every backbone is dilated to output stride 8
TORCHVISION_MEAN_RGB = (123.675, 116.28, 103.53)  # ImageNet mean / std of torchvision's VGG-16, 0-255 range
TORCHVISION_STD_RGB = (58.395, 57.12, 57.375)
DETECTRON2_MEAN_BGR = (103.53, 116.28, 123.675)
PAPER_SCALE_FACTORS = tuple(1.5**exponent for exponent in range(-4, 2))  # x 600 = 118.5, 177.8, 266.7, 400, 600, 900
SIS_SCALE_FACTORS = (1.5**-5, *PAPER_SCALE_FACTORS)  # adds 600 x 1.5^-5 = 79 px for large salient objects
BACKBONES = ("vgg16", *RESNET_NAMES)


@dataclass(frozen=True)
class InstanceFCNConfig(FamilyConfig):
    """Architecture, window-sampling, input and inference hyper-parameters of
    :class:`~pysalient.models.instancefcn.model.InstanceFCN`.

    Attributes:
        num_classes: 1 = class-agnostic objectness (the paper); C > 1 gives the objectness branch C sigmoid logits
            (a pysalient extension, not in the paper: a positive window's label is its instance's class; the
            assembled mask stays class-agnostic).
        backbone: ``vgg16`` (the paper's, pool4 at stride 1, dilated conv5) or ``resnet18/34/50/101`` dilated to
            output stride 8.
        backbone_feature: the ResNet stage read (``res5``: res4 dilated 2 and res5 dilated 4; ``res4``: res4 dilated
            2 and no res5, the light model); VGG-16 always gives conv5_3 (``res5``).
        backbone_norm, backbone_freeze_at, backbone_width_multiplier, frozen_bn_eps: ResNet settings (VGG-16 uses
            the width multiplier and ``backbone_freeze_at`` as frozen blocks).
        branch_channels: width of both branches' hidden convolution (512).
        k: sub-windows per side of the instance-sensitive score maps (5; k^2 maps).
        m: window side in score-map cells (21, i.e. 168 input pixels).
        init_std: standard deviation of the branches' normal initialisation (0.01; biases 0).
        canonical_size: maximal box side of a positive's object in input pixels (168 x 128 / 224 = 96).
        positive_center: a positive window's centre lies within this many pixels (L-infinity) of the object's box
            centre (12).
        positive_scale: and the object's maximal side within this many octaves of ``canonical_size`` (1/4).
        negative_center: a negative window's centre is at least this far from every object's centre (24) ...
        negative_scale: ... or the object is at least this many octaves off ``canonical_size`` (1); windows that
            are neither positive nor negative are never sampled.
        windows_per_image: windows sampled per training image (256).
        positive_fraction: at most this fraction of them positive (0.5, the paper's 1:1); negatives fill the rest.
        mask_target_threshold: binarisation of the RoIAligned instance mask (0.5).
        objectness_loss_weight, mask_loss_weight: loss weights (1 : 1).
        pixel_mean, pixel_std: normalisation in ``input_format`` order, 0-255 range.
        input_format: channel order the network expects.
        min_size_test, max_size_test: the input resize (shortest side, longest cap): the reference scale the
            ``test_scales`` multiply (600 and no practical cap for the paper).
        test_scales: factors of the reference scale the detector runs at (the paper's six: 1.5^-4 .. 1.5^1).
        size_divisibility: padded inputs are multiples of this (8: exact cell <-> pixel geometry).
        pre_nms_topk_per_scale: windows kept per image and scale by objectness before assembling; 0 = all (the
            paper's protocol).
        nms_threshold: IoU of the greedy NMS over the binary masks' tight boxes of all scales (0.8).
        max_det: instances kept per image (the paper's N).
        score_threshold: default minimum objectness of a returned instance (``predict``'s ``conf``).
        mask_threshold: binarisation of the assembled probabilities and of the pasted masks (0.5).
    """

    num_classes: int = 1
    backbone: str = "vgg16"
    backbone_feature: str = "res5"
    backbone_norm: str = "FrozenBN"
    backbone_freeze_at: int = 0
    backbone_width_multiplier: float = 1.0
    frozen_bn_eps: float = 1e-5
    branch_channels: int = 512
    k: int = 5
    m: int = 21
    init_std: float = 0.01
    canonical_size: float = 96.0
    positive_center: float = 12.0
    positive_scale: float = 0.25
    negative_center: float = 24.0
    negative_scale: float = 1.0
    windows_per_image: int = 256
    positive_fraction: float = 0.5
    mask_target_threshold: float = 0.5
    objectness_loss_weight: float = 1.0
    mask_loss_weight: float = 1.0
    pixel_mean: Tuple[float, float, float] = TORCHVISION_MEAN_RGB
    pixel_std: Tuple[float, float, float] = TORCHVISION_STD_RGB
    input_format: str = "RGB"
    min_size_test: int = 600
    max_size_test: int = 4000
    test_scales: Tuple[float, ...] = PAPER_SCALE_FACTORS
    size_divisibility: int = STRIDE
    pre_nms_topk_per_scale: int = 2000
    nms_threshold: float = 0.8
    max_det: int = 100
    score_threshold: float = DEFAULT_CONF
    mask_threshold: float = 0.5

    def validate(self) -> List[str]:
        """Every problem of the config (the base class raises them as one ValueError)."""
        problems = super().validate()
        if self.backbone not in BACKBONES:
            problems.append(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        elif self.backbone != "vgg16":
            problems += resnet_problems(
                self.backbone, self.backbone_norm, self.backbone_freeze_at, self.backbone_width_multiplier
            )
        elif self.backbone_width_multiplier <= 0 or not 0 <= self.backbone_freeze_at <= 5:
            problems.append("vgg16 needs backbone_width_multiplier > 0 and backbone_freeze_at in [0, 5]")
        if self.backbone_feature not in ("res4", "res5") or (
            self.backbone == "vgg16" and self.backbone_feature != "res5"
        ):
            problems.append(
                f"backbone_feature must be 'res5' (any backbone) or 'res4' (ResNet), got {self.backbone_feature!r}"
            )
        if self.branch_channels < 1 or self.k < 1 or self.m < 1:
            problems.append(f"branch_channels, k and m must be >= 1, got {self.branch_channels}, {self.k}, {self.m}")
        elif self.m % 2 == 0:
            problems.append(f"m must be odd (windows are centred on a cell), got {self.m}")
        if self.init_std <= 0:
            problems.append(f"init_std must be positive, got {self.init_std}")
        if self.canonical_size <= 0 or min(self.positive_center, self.positive_scale) < 0:
            problems.append("canonical_size must be positive and the positive tolerances >= 0")
        if self.negative_center < self.positive_center or self.negative_scale < self.positive_scale:
            problems.append(
                f"negative tolerances ({self.negative_center} px, {self.negative_scale} octaves) must be at least "
                f"the positive ones ({self.positive_center} px, {self.positive_scale} octaves)"
            )
        if self.windows_per_image < 1 or not 0 < self.positive_fraction <= 1:
            problems.append(
                f"need windows_per_image >= 1 and positive_fraction in (0, 1], got {self.windows_per_image}, "
                f"{self.positive_fraction}"
            )
        if not 0 < self.mask_target_threshold <= 1:
            problems.append(f"mask_target_threshold must lie in (0, 1], got {self.mask_target_threshold}")
        if min(self.objectness_loss_weight, self.mask_loss_weight) < 0:
            problems.append("loss weights must be >= 0")
        if self.input_format not in ("RGB", "BGR"):
            problems.append(f"input_format must be 'RGB' or 'BGR', got {self.input_format!r}")
        if not self.test_scales or not all(math.isfinite(s) and 0 < s <= 8 for s in self.test_scales):
            problems.append(f"test_scales must be factors in (0, 8], got {self.test_scales}")
        if self.size_divisibility < 1 or self.size_divisibility % STRIDE:
            problems.append(f"size_divisibility must be a multiple of {STRIDE}, got {self.size_divisibility}")
        if self.pre_nms_topk_per_scale < 0:
            problems.append(f"pre_nms_topk_per_scale must be >= 0 (0: all), got {self.pre_nms_topk_per_scale}")
        if not 0 < self.mask_threshold < 1:
            problems.append(f"mask_threshold must lie in (0, 1), got {self.mask_threshold}")
        try:
            self.input_spec()
            self.inference_spec()
        except ValueError as error:
            problems.append(str(error))
        return problems

    def input_spec(self) -> InputSpec:
        """The reference scale: shortest side to ``min_size_test`` (longest capped), normalised, padded to 8."""
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
        """Keyword arguments of :func:`pysalient.backbones.build_backbone` (output stride 8 in every case)."""
        if self.backbone == "vgg16":
            return {"width_multiplier": self.backbone_width_multiplier, "freeze_at": self.backbone_freeze_at}
        dilation = (False, True, True) if self.backbone_feature == "res5" else (False, True, False)
        return resnet_kwargs(
            self.backbone_norm,
            self.backbone_freeze_at,
            self.frozen_bn_eps,
            [self.backbone_feature],
            self.backbone_width_multiplier,
            replace_stride_with_dilation=dilation,
        )

    def window_box_pixels(self) -> int:
        """Side of a window in input pixels (m x stride = 168)."""
        return self.m * STRIDE


@register_model("instancefcn_vgg16", family="instancefcn")
def instancefcn_vgg16(num_classes: int = 1, **changes: Any) -> InstanceFCNConfig:
    """The paper's InstanceFCN: dilated VGG-16 (stride 8), k = 5, m = 21, six test scales 118.5 .. 900 px.

    No official code or weights exist; see :mod:`pysalient.models.instancefcn.model` for every reading taken."""
    return InstanceFCNConfig(num_classes=num_classes, **changes)


@register_model("instancefcn_vgg16_sis", family="instancefcn")
def instancefcn_vgg16_sis(num_classes: int = 1, **changes: Any) -> InstanceFCNConfig:
    """``instancefcn_vgg16`` with the salient-instance scale set: 600 x 1.5^-5 = 79 px added, so that objects as
    long as the image (common in ISOD / SOC) can be positives (train with the ``"sis"`` recipe, same scales)."""
    defaults: Dict[str, Any] = {"test_scales": SIS_SCALE_FACTORS}
    defaults.update(changes)
    return InstanceFCNConfig(num_classes=num_classes, **defaults)


@register_model("instancefcn_r50", family="instancefcn")
def instancefcn_r50(num_classes: int = 1, **changes: Any) -> InstanceFCNConfig:
    """Dilated ResNet-50 (res4 dilation 2, res5 dilation 4: output stride 8, FrozenBN, detectron2 BGR means) with
    the paper's branches, windows and scales (the report's A17; not in the paper)."""
    defaults: Dict[str, Any] = {
        "backbone": "resnet50",
        "backbone_freeze_at": 2,
        "pixel_mean": DETECTRON2_MEAN_BGR,
        "pixel_std": (1.0, 1.0, 1.0),
        "input_format": "BGR",
    }
    defaults.update(changes)
    return InstanceFCNConfig(num_classes=num_classes, **defaults)


LIGHT_SCALE_FACTORS = tuple(1.5**exponent for exponent in range(-3, 3))  # x 256 = 76, 114, 171, 256, 384, 576 px


def light_defaults() -> Dict[str, Any]:
    """The light entry's departures from the paper architecture (also the base of the ablation runs)."""
    return {
        "backbone": "resnet18",
        "backbone_feature": "res4",
        "backbone_norm": "BN",
        "backbone_freeze_at": 0,
        "backbone_width_multiplier": 0.5,
        "branch_channels": 128,
        "pixel_mean": DETECTRON2_MEAN_BGR,
        "pixel_std": (57.375, 57.12, 58.395),
        "input_format": "BGR",
        "min_size_test": 256,
        "max_size_test": 512,
        "test_scales": LIGHT_SCALE_FACTORS,
        "nms_threshold": 0.3,
    }


# The light model is the family default: trained on SynthSIS, its weights ship with the package (recipe and
# measurements in benchmarks/RESULTS.md). A synthetic demo: fit for SynthSIS-like scenes, not for photographs.
SYNTHSIS_R18_LIGHT = synthsis_demo_weights(
    "instancefcn_r18_light_synthsis-0c7e0959.pth",
    "0c7e0959ecf9f048a574cf867909d24a3291e309cac10963791c232c12c8ecb3",
    256,
    {"AP": 61.54, "AP50": 88.20, "AP70": 75.02, "AP75": 68.75},
)


@register_model("instancefcn_r18_light", family="instancefcn", default=True, weights=SYNTHSIS_R18_LIGHT)
def instancefcn_r18_light(num_classes: int = 1, **changes: Any) -> InstanceFCNConfig:
    """CPU-sized InstanceFCN: half-width ResNet-18 (BN) up to res4, res4 dilated (output stride 8, 128 channels),
    128-wide branches; the paper's k = 5, m = 21 (168 px windows), window rule, losses and inference.

    Not an official architecture. The reference scale is 256 px (the SynthSIS images) and the six test scales are
    1.5^-3 .. 1.5^2 of it (76 .. 576 px), the paper's 1.5 steps shifted so that the 23-256 px objects of SynthSIS
    fall in the positive size range (81-114 px) at some scale. NMS at IoU 0.3 instead of the paper's 0.8: the paper's
    threshold is for segment proposals (recall at 1000 per image); for salient instances, where every duplicate is a
    false positive, 0.3 was the best of 0.8 / 0.5 / 0.4 / 0.3 on SynthSIS validation images (mask AP50 69.2 / 83.1 /
    85.0 / 87.2; benchmarks/RESULTS.md).
    """
    defaults = light_defaults()
    defaults.update(changes)
    return InstanceFCNConfig(num_classes=num_classes, **defaults)
