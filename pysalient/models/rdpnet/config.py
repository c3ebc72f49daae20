"""Typed, JSON-able configuration of the RDPNet family and its named presets.

Field defaults are the official ISOD configuration (yuhuan-wu/RDPNet ``configs/rdpnet/r50-isod-te.yaml`` on the
maskrcnn-benchmark/FCOS defaults): ResNet-50 with FrozenBN without epsilon and ``STRIDE_IN_1X1``, FPN P3-P7 of 256
channels (P6 from P5, P7 from ReLU(P6)), RDP, FCOS head of 128 channels, multi-level RoIAlign mask decoder of 128
channels; BGR input minus the Caffe2 mean with std 1, maskrcnn-benchmark's resize to 320 (longest side 480), padding
to 32; FCOS test thresholds 0.05 / top 1000 per level / NMS 0.6 / 100 detections, masks pasted at 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from pysalient.inputs import InputSpec
from pysalient.models.family import DEFAULT_CONF, FamilyConfig, InferenceSpec
from pysalient.models.registry import PublishedWeights, register_model, synthsis_demo_weights
from pysalient.models.resnet_options import resnet_kwargs, resnet_problems

# Smallest padded side: P7 (stride 128) keeps 2 x 2 cells (see RDPNetConfig.input_spec).
MIN_PADDED_SIZE = 160
CAFFE2_MEAN_BGR = (102.9801, 115.9465, 122.7717)


@dataclass(frozen=True)
class RDPNetConfig(FamilyConfig):
    """Architecture, input and inference hyper-parameters of :class:`~pysalient.models.rdpnet.model.RDPNet`.

    Attributes:
        num_classes: 1 = class-agnostic salient instances, 80 = COCO.
        backbone: ``resnet18/34/50/101``.
        backbone_norm: ``"FrozenBN"`` (pretrained, official) or ``"BN"`` (training from scratch).
        backbone_freeze_at: ResNet stages frozen (official ``FREEZE_CONV_BODY_AT: 2``: stem and res2).
        backbone_width_multiplier: scales the stem and every ResNet stage (0.5: a quarter of the parameters).
        stride_in_1x1: bottlenecks stride in the 1x1 convolution (the MSRA/Caffe2 weights of the official code).
        frozen_bn_eps: FrozenBN epsilon (maskrcnn-benchmark's has none: 0.0).
        fpn_channels: width of the FPN and RDP levels (256).
        head_channels: width of the FCOS towers (official: half the FPN width, 128).
        head_convs: convolutions per FCOS tower (4).
        head_num_scales: learnable FCOS scales (the official code creates 6 and uses 5).
        mask_channels: width of the mask decoder (128).
        norm_groups: GroupNorm groups of the head and the mask decoder (32).
        prior_prob: initial class probability of the FCOS logits (0.01).
        pixel_mean, pixel_std: normalisation in ``input_format`` order, 0-255 range.
        input_format: channel order the network expects (``"BGR"``, official).
        min_size_test, max_size_test: test-time resize (maskrcnn-benchmark rule, ``"shortest_edge_legacy"``).
        size_divisibility: padded inputs are multiples of this.
        candidate_threshold: FCOS ``INFERENCE_TH``: class probabilities strictly above it are candidates (with the
            at-least-one-per-level fallback); ``conf`` applies to the final score.
        pre_nms_top_n: candidates per level (1000).
        nms_threshold: NMS IoU (0.6 ISOD; the SOC configs use 0.8).
        max_det: detections per image (100, kept with the official kthvalue rule).
        score_threshold: default minimum final score of a returned instance (``predict``'s ``conf``).
        mask_threshold: the Masker threshold (0.5, strict).
    """

    num_classes: int = 1
    backbone: str = "resnet50"
    backbone_norm: str = "FrozenBN"
    backbone_freeze_at: int = 2
    backbone_width_multiplier: float = 1.0
    stride_in_1x1: bool = True
    frozen_bn_eps: float = 0.0
    fpn_channels: int = 256
    head_channels: int = 128
    head_convs: int = 4
    head_num_scales: int = 6
    mask_channels: int = 128
    norm_groups: int = 32
    prior_prob: float = 0.01
    pixel_mean: Tuple[float, float, float] = CAFFE2_MEAN_BGR
    pixel_std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    input_format: str = "BGR"
    min_size_test: int = 320
    max_size_test: int = 480
    size_divisibility: int = 32
    candidate_threshold: float = 0.05
    pre_nms_top_n: int = 1000
    nms_threshold: float = 0.6
    max_det: int = 100
    score_threshold: float = DEFAULT_CONF
    mask_threshold: float = 0.5

    def validate(self) -> List[str]:
        """Every problem of the config (the base class raises them as one ValueError)."""
        problems = super().validate()
        problems += resnet_problems(
            self.backbone, self.backbone_norm, self.backbone_freeze_at, self.backbone_width_multiplier
        )
        if self.frozen_bn_eps < 0:
            problems.append(f"frozen_bn_eps must be >= 0, got {self.frozen_bn_eps}")
        for name in ("fpn_channels", "head_channels", "mask_channels"):
            value = getattr(self, name)
            if value < 1 or value % self.norm_groups:
                problems.append(f"{name} ({value}) must be a positive multiple of norm_groups ({self.norm_groups})")
        if self.head_convs < 1 or self.head_num_scales < 5:
            problems.append(
                f"need head_convs >= 1 and head_num_scales >= 5, got {self.head_convs}, {self.head_num_scales}"
            )
        if not 0 < self.prior_prob < 1:
            problems.append(f"prior_prob must lie in (0, 1), got {self.prior_prob}")
        if self.input_format not in ("RGB", "BGR"):
            problems.append(f"input_format must be 'RGB' or 'BGR', got {self.input_format!r}")
        if self.min_size_test < 1 or self.max_size_test < self.min_size_test or self.size_divisibility < 1:
            problems.append("need 1 <= min_size_test <= max_size_test and size_divisibility >= 1")
        if self.size_divisibility % 32:
            problems.append(f"size_divisibility must be a multiple of 32 (stride of P5), got {self.size_divisibility}")
        if not 0 <= self.candidate_threshold < 1:
            problems.append(f"candidate_threshold must lie in [0, 1), got {self.candidate_threshold}")
        if self.pre_nms_top_n < 1:
            problems.append(f"pre_nms_top_n must be >= 1, got {self.pre_nms_top_n}")
        try:
            self.input_spec()
            self.inference_spec()
        except ValueError as error:
            problems.append(str(error))
        return problems

    def input_spec(self) -> InputSpec:
        """Official test-time input: BGR minus the Caffe2 mean (std 1), maskrcnn-benchmark's resize
        (``"shortest_edge_legacy"``) to ``min_size_test`` capped at ``max_size_test``, padding to 32.

        Deviation: padded sides are at least 160 px so that P7 (stride 128) keeps 2 x 2 cells; the official
        code pads a very elongated image (short side below 160 px after the resize, e.g. 1000 x 30) to less and
        runs P6 / P7 on 1-pixel maps. Images whose resized short side is >= 129 px are unaffected (the default
        320 px test size always is, unless the 480 px cap squeezes the short side below that).
        """
        return InputSpec(
            channel_order=self.input_format,
            pixel_mean=tuple(self.pixel_mean),
            pixel_std=tuple(self.pixel_std),
            resize="shortest_edge_legacy",
            min_size=self.min_size_test,
            max_size=self.max_size_test,
            size_divisibility=self.size_divisibility,
            min_padded_size=-(-MIN_PADDED_SIZE // self.size_divisibility) * self.size_divisibility,
        )

    def inference_spec(self) -> InferenceSpec:
        """The final score threshold, the Masker threshold, the FCOS NMS IoU and the detection cap."""
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
            stride_in_1x1=self.stride_in_1x1,
        )


# The authors' ISOD model (yuhuan-wu/RDPNet README, "Test / Evaluation / Results"; CC BY-NC-SA 4.0).
OFFICIAL_R50_ISOD = PublishedWeights(
    file_name="model_final.pth",
    source="yuhuan-wu/RDPNet README, Test section: ResNet-50 (ISOD dataset), Google Drive / Baidu Yun, 0.14 GB",
    trained_on="ISOD train split, 1 class (58.6 mask AP on the ISOD test split at 320)",
    license="CC BY-NC-SA 4.0 (non-commercial)",
)


@register_model("rdpnet_r50", family="rdpnet", published=OFFICIAL_R50_ISOD)
def rdpnet_r50(num_classes: int = 1, **changes: Any) -> RDPNetConfig:
    """ResNet-50 (FrozenBN) + FPN P3-P7 + RDP + FCOS + multi-level RoIAlign decoder: the official r50-isod."""
    return RDPNetConfig(num_classes=num_classes, **changes)


# The light model is the family default: trained on SynthSIS, its weights ship with the package (recipe and
# measurements in benchmarks/RESULTS.md). A synthetic demo: fit for SynthSIS-like scenes, not for photographs.
SYNTHSIS_R18_LIGHT = synthsis_demo_weights(
    "rdpnet_r18_light_synthsis-f460c17c.pth",
    "f460c17ca4ded830c61bbc7489f67d597e190f9665faf630bd00ba34984b40d4",
    224,
    {"AP": 73.40, "AP50": 93.87, "AP70": 87.23, "AP75": 82.48},
)


@register_model("rdpnet_r18_light", family="rdpnet", default=True, weights=SYNTHSIS_R18_LIGHT)
def rdpnet_r18_light(num_classes: int = 1, **changes: Any) -> RDPNetConfig:
    """Half-width ResNet-18 (BN) with a 96-channel pyramid, 64-channel head and decoder: trains on a CPU.

    Not an official architecture: every RDPNet component is kept (RDP, FCOS with 2 convolutions per tower, the
    five-level RoIAlign decoder), at widths a CPU can train from scratch (trainable BatchNorm, nothing frozen).
    Test size 224 capped at 448, for the 256-pixel SynthSIS images.
    """
    defaults: Dict[str, Any] = {
        "backbone": "resnet18",
        "backbone_norm": "BN",
        "backbone_freeze_at": 0,
        "backbone_width_multiplier": 0.5,
        "frozen_bn_eps": 1e-5,
        "fpn_channels": 96,
        "head_channels": 64,
        "head_convs": 2,
        "mask_channels": 64,
        "min_size_test": 224,
        "max_size_test": 448,
    }
    defaults.update(changes)
    return RDPNetConfig(num_classes=num_classes, **defaults)
