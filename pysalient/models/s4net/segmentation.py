"""S4Net's segmentation branch: a 3x3 convolution of the stride-8 map, RoIMasking, and a full-map stack.

Layer by layer as the released ``network_desp.py`` (every convolution with a bias and a ReLU, no normalisation):

====  ==========================================================  ==========================
 #    layer                                                        channels
====  ==========================================================  ==========================
 0    3x3 convolution of P3, once per image                        ``c0`` (128)
 --   RoIMasking: a full copy of the map per RoI times its mask    ``c0``
 1    3x3 max-pool, stride 1, same padding                         ``c0``
 2    residual: x + conv3x3(conv3x3(x))                            ``c0``
 3    3x3 max-pool, stride 1, same padding                         ``c0``
 4    3x3 convolution, dilation 2                                  ``c1`` (64)
 5    residual: x + conv3x3(conv3x3(x))                            ``c1``
 6    3x3 convolution to the 2 logits (background, foreground)     2 (+ ReLU in the release)
====  ==========================================================  ==========================

Nothing is cropped or resampled: each RoI keeps the whole map, so every layer after the masking runs on R full maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient import ops
from pysalient.layers.weight_init import c2_msra_fill, normal_fill


class ResidualPair(nn.Module):
    """``x + relu(conv(relu(conv(x))))`` with two 3x3 convolutions of ``channels``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """[R, C, H, W] -> [R, C, H, W]."""
        return x + torch.relu(self.conv2(torch.relu(self.conv1(x))))


class SegmentationBranch(nn.Module):
    """The RoIMasking segmentation branch.

    Args:
        in_channels: width of P3.
        channels: ``(c0, c1)``, widths before and after the dilated convolution (S4Net: 128, 64).
        stride: stride of the map it reads (8).
        masking_mode: ``"ternary"``, ``"binary"`` or ``"expanded_binary"`` (:func:`pysalient.ops.roi_masking`).
        expand_ratio: ring width per side as a fraction of the box (1/3).
        logits_relu: ReLU on the logits (the released code's quirk).
        msra_init: Kaiming (fan-out) instead of N(0, 0.01) initialisation of every convolution but the predictor.
    """

    def __init__(
        self,
        in_channels: int,
        channels: tuple,
        stride: int = 8,
        masking_mode: str = "ternary",
        expand_ratio: float = 1.0 / 3.0,
        logits_relu: bool = True,
        msra_init: bool = False,
    ) -> None:
        super().__init__()
        wide, narrow = int(channels[0]), int(channels[1])
        self.spatial_scale = 1.0 / float(stride)
        self.masking = ops.RoIMasking(self.spatial_scale, expand_ratio, masking_mode)
        self.reduce = nn.Conv2d(in_channels, wide, 3, padding=1)
        self.residual1 = ResidualPair(wide)
        self.dilated = nn.Conv2d(wide, narrow, 3, padding=2, dilation=2)
        self.residual2 = ResidualPair(narrow)
        self.predictor = nn.Conv2d(narrow, 2, 3, padding=1)
        self.logits_relu = bool(logits_relu)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if msra_init:
                    c2_msra_fill(module)
                else:
                    normal_fill(module, 0.01)
        normal_fill(self.predictor, 0.01)  # small logits at the start whatever the rest's initialisation

    def image_features(self, p3: Tensor) -> Tensor:
        """P3 [B, C, H, W] -> the masked map S [B, c0, H, W] (layer 0, once per image)."""
        return torch.relu(self.reduce(p3))

    def forward(self, image_features: Tensor, rois: Tensor) -> Tensor:
        """Segmentation logits of every RoI.

        Args:
            image_features: S [B, c0, H, W] from :meth:`image_features`.
            rois: [R, 5] (batch index, x1, y1, x2, y2) in input pixels, the dtype of ``image_features``.

        Returns:
            [R, 2, H, W] logits (background, foreground) over the whole map.
        """
        x = self.masking(image_features, rois)
        x = F.max_pool2d(x, 3, stride=1, padding=1)
        x = self.residual1(x)
        x = F.max_pool2d(x, 3, stride=1, padding=1)
        x = torch.relu(self.dilated(x))
        x = self.residual2(x)
        logits = self.predictor(x)
        if self.logits_relu:
            logits = torch.relu(logits)
        return logits
