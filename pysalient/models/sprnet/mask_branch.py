"""SPRNet's single-pixel-reconstruction (SPR) mask branch: a whole instance mask from the feature vector of one pixel.

Fusion (the encoder, on every pyramid level with shared weights): a 1x1 convolution (256) and three parallel 3x3
convolutions of dilations 2, 4, 6 (128 each) of the level, each with a ReLU, concatenated (640 channels; the report's
B3-B5: no projection, no norm). Decoder, on the ``[N, 640, 1, 1]`` vectors of the sampled pixels: three
non-overlapping deconvolutions (kernel 2, stride 2, no activation, B7) to 8 x 8, two (x2 up-sampling + 3x3
convolution + ReLU) steps to 32 x 32, plus the 8 x 8 map up-sampled x4 (nearest, B10: added), then a 1x1
convolution to one mask logit map per class.

The fusion output at a pixel depends on 1 + 9 * 3 taps of the level only (the centre and the 3 x 3 grids at each
dilation, zero outside the map), so :meth:`SPRMaskBranch.point_fusion` gathers those taps of the sampled pixels and
applies the four convolutions as matrix products: equal to the dense fusion indexed at the pixels (up to summation
order) at a tiny fraction of the cost; :meth:`SPRMaskBranch.dense_fusion` keeps the dense path for checks and the
ablation.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.layers.weight_init import c2_msra_fill, normal_fill

DECONVOLUTIONS = 3  # 1 -> 2 -> 4 -> 8
UPSAMPLINGS = 2  # 8 -> 16 -> 32


def fusion_taps(dilations: Sequence[int]) -> Tensor:
    """Offsets ``(dy, dx)`` of the taps of the fusion: the centre, then per dilation its 3 x 3 grid (row-major, the
    order of a convolution kernel) -> int64 [1 + 9 * len(dilations), 2]."""
    taps = [[0, 0]]
    for dilation in dilations:
        for ky in (-1, 0, 1):
            for kx in (-1, 0, 1):
                taps.append([ky * int(dilation), kx * int(dilation)])
    return torch.tensor(taps, dtype=torch.int64)


def anchor_cells(indices: Tensor, level_shapes: List[List[int]], num_anchors: int) -> List[Tensor]:
    """Where anchors sit: rows of the levels' anchors concatenated (:class:`pysalient.detection.AnchorGenerator`
    order: per level, row-major cells with ``num_anchors`` consecutive anchors each) -> their pixels.

    Args:
        indices: int64 [N] anchor rows.
        level_shapes: per level ``[H_l, W_l]``.
        num_anchors: anchors per cell (A).

    Returns:
        ``[level, y, x]``, three int64 [N] tensors.
    """
    level = torch.zeros_like(indices)
    local = indices.clone()
    widths = torch.ones_like(indices)
    start = 0
    for index, (height, width) in enumerate(level_shapes):
        count = height * width * num_anchors
        inside = (indices >= start) & (indices < start + count)
        level = torch.where(inside, torch.full_like(indices, index), level)
        local = torch.where(inside, indices - start, local)
        widths = torch.where(inside, torch.full_like(indices, width), widths)
        start = start + count
    cell = torch.div(local, num_anchors, rounding_mode="floor")
    return [level, torch.div(cell, widths, rounding_mode="floor"), torch.remainder(cell, widths)]


class SPRMaskBranch(nn.Module):
    """Fusion + decoder of the SPR mask branch.

    Args:
        in_channels: width of the pyramid levels.
        num_classes: mask logit maps (one per class).
        fusion_channels: widths of the 1x1 convolution and of each dilated 3x3 (256, 128).
        dilations: dilations of the three 3x3 convolutions (2, 4, 6).
        decoder_channels: width of the decoder (256).
        upsample: ``"nearest"`` or ``"bilinear"`` for the two x2 up-samplings.

    Attributes:
        out_channels: width of the fused vectors (``fusion_channels[0] + len(dilations) * fusion_channels[1]``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        fusion_channels: Sequence[int] = (256, 128),
        dilations: Sequence[int] = (2, 4, 6),
        decoder_channels: int = 256,
        upsample: str = "nearest",
    ) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, fusion_channels[0], 1)
        self.dilated = nn.ModuleList(
            nn.Conv2d(in_channels, fusion_channels[1], 3, padding=int(d), dilation=int(d)) for d in dilations
        )
        self.out_channels = int(fusion_channels[0]) + len(dilations) * int(fusion_channels[1])
        self.reach = max(int(d) for d in dilations)
        self.register_buffer("taps", fusion_taps(dilations), persistent=False)
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(self.out_channels if i == 0 else decoder_channels, decoder_channels, 2, stride=2)
            for i in range(DECONVOLUTIONS)
        )
        self.upsample_convs = nn.ModuleList(
            nn.Conv2d(decoder_channels, decoder_channels, 3, padding=1) for _ in range(UPSAMPLINGS)
        )
        self.predictor = nn.Conv2d(decoder_channels, num_classes, 1)
        self.bilinear = upsample == "bilinear"
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                c2_msra_fill(module)
        normal_fill(self.predictor, 0.001)

    def dense_fusion(self, feature: Tensor) -> Tensor:
        """The fusion over a whole level: [B, C, H, W] -> [B, out_channels, H, W]."""
        outputs = [torch.relu(self.reduce(feature))]
        for conv in self.dilated:
            outputs.append(torch.relu(conv(feature)))
        return torch.cat(outputs, dim=1)

    def gather_taps(self, levels: List[Tensor], batch: Tensor, level: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
        """The fusion's taps of each pixel, zero off the map.

        Args:
            levels: pyramid levels [B, C, H_l, W_l].
            batch, level, ys, xs: int64 [N], image, level and cell of each pixel.

        Returns:
            [N, T, C] (T = 1 + 9 * dilations, in :func:`fusion_taps` order).
        """
        reach = self.reach
        channels = levels[0].shape[1]
        taps = levels[0].new_zeros((batch.shape[0], self.taps.shape[0], channels))
        dy, dx = self.taps[:, 0][None, :], self.taps[:, 1][None, :]
        for index, feature in enumerate(levels):
            height, width = feature.shape[-2], feature.shape[-1]
            padded = F.pad(feature, [reach, reach, reach, reach]).permute(0, 2, 3, 1)  # [B, H + 2r, W + 2r, C]
            rows = ys.clamp(min=0, max=height - 1)[:, None] + dy + reach
            cols = xs.clamp(min=0, max=width - 1)[:, None] + dx + reach
            flat = (batch[:, None] * (height + 2 * reach) + rows) * (width + 2 * reach) + cols  # [N, T]
            values = padded.reshape(-1, channels)[flat.reshape(-1)].reshape(flat.shape[0], flat.shape[1], channels)
            taps = torch.where((level == index)[:, None, None], values, taps)
        return taps

    def point_fusion(self, levels: List[Tensor], batch: Tensor, level: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
        """The fusion at the given pixels only: equal to ``dense_fusion(levels[l])[b, :, y, x]`` per pixel.

        Args:
            levels: pyramid levels [B, C, H_l, W_l].
            batch, level, ys, xs: int64 [N], image, level and cell of each pixel.

        Returns:
            [N, out_channels].
        """
        taps = self.gather_taps(levels, batch, level, ys, xs)
        channels = taps.shape[-1]
        outputs = [torch.relu(F.linear(taps[:, 0], self.reduce.weight.flatten(1), self.reduce.bias))]
        first = 1
        for conv in self.dilated:
            weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.weight.shape[0], 9 * channels)
            grid = taps[:, first : first + 9].reshape(taps.shape[0], 9 * channels)
            outputs.append(torch.relu(F.linear(grid, weight, conv.bias)))
            first += 9
        return torch.cat(outputs, dim=1)

    def indexed_dense_fusion(
        self, levels: List[Tensor], batch: Tensor, level: Tensor, ys: Tensor, xs: Tensor
    ) -> Tensor:
        """:meth:`dense_fusion` of every level indexed at the pixels (the reference of :meth:`point_fusion`)."""
        fused = levels[0].new_zeros((batch.shape[0], self.out_channels))
        for index, feature in enumerate(levels):
            dense = self.dense_fusion(feature)
            height, width = feature.shape[-2], feature.shape[-1]
            values = dense[batch, :, ys.clamp(min=0, max=height - 1), xs.clamp(min=0, max=width - 1)]
            fused = torch.where((level == index)[:, None], values, fused)
        return fused

    def decode(self, vectors: Tensor) -> Tensor:
        """Fused vectors [N, out_channels] -> mask logits [N, num_classes, 32, 32]."""
        x = vectors[:, :, None, None]
        for deconv in self.deconvs:
            x = deconv(x)
        shortcut = F.interpolate(x, scale_factor=4.0, mode="nearest")
        for conv in self.upsample_convs:
            if self.bilinear:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            else:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = torch.relu(conv(x))
        return self.predictor(x + shortcut)

    def forward(
        self, levels: List[Tensor], batch: Tensor, level: Tensor, ys: Tensor, xs: Tensor, dense: bool = False
    ) -> Tensor:
        """Mask logits of the given pixels (int64 [N] image, level, row, column): [N, num_classes, 32, 32].

        ``dense`` runs the fusion over whole maps (:meth:`indexed_dense_fusion`) instead of at the pixels only.
        """
        if dense:
            return self.decode(self.indexed_dense_fusion(levels, batch, level, ys, xs))
        return self.decode(self.point_fusion(levels, batch, level, ys, xs))
