"""Reference of ``resize_image``: Pillow's uint8 bilinear resize, one separable pass per axis."""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor


def resize_image(image: Tensor, out_h: int, out_w: int) -> Tensor:
    """Pillow-identical uint8 bilinear resize (see ``pysalient.ops.resize_image``).

    Args:
        image: uint8 [H, W, C] or [B, H, W, C].
        out_h: output height, at least 1.
        out_w: output width, at least 1.

    Returns:
        uint8 [(B,) out_h, out_w, C].
    """
    if image.dim() not in (3, 4) or image.dtype != torch.uint8:
        raise ValueError(
            f"resize_image: image must be uint8 [H, W, C] or [B, H, W, C], got {image.dtype} {tuple(image.shape)}"
        )
    if out_h < 1 or out_w < 1:
        raise ValueError(f"resize_image: output size must be at least 1x1, got {out_h}x{out_w}")
    images = image if image.dim() == 4 else image[None]
    height, width = images.shape[1], images.shape[2]
    # One pass per axis, the first rounded to uint8 before the second; a pass whose size does not change is
    # skipped (it would be the identity). Pillow >= 13 runs the vertical pass first when the height shrinks by
    # more than twice as many pixels as the width (python-pillow/Pillow#9549), otherwise the horizontal one.
    axes = [(2, out_w), (1, out_h)]
    if out_h < height and height - out_h > 2 * (width - out_w):
        axes.reverse()
    resized = images
    for dim, size in axes:
        if size != images.shape[dim]:
            resized = _pillow_resample_axis(resized, dim, size)
    if resized is images:
        resized = images.clone()
    return resized if image.dim() == 4 else resized[0]


def _pillow_bilinear_taps(n_in: int, n_out: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """Input indices and 22-bit fixed-point weights, both [n_out, taps], of Pillow's stretched triangle filter."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)  # downscaling widens the filter so that every input sample is averaged
    inverse_stretch = 1.0 / stretch
    max_taps = int(math.ceil(stretch)) * 2 + 1
    center = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * scale
    # C's (int) cast truncates toward zero; Pillow clamps the range into [0, n_in) afterwards.
    first = (center - stretch + 0.5).trunc().clamp(min=0.0)
    end = (center + stretch + 0.5).trunc().clamp(max=float(n_in))
    index = first[:, None] + torch.arange(max_taps, dtype=torch.float64, device=device)
    # Multiplying by the reciprocal (not dividing by the stretch) matches Pillow to the last ulp.
    weight = (1.0 - ((index - center[:, None] + 0.5) * inverse_stretch).abs()).clamp(min=0.0)
    weight = torch.where(index < end[:, None], weight, torch.zeros_like(weight))
    total = torch.zeros_like(center)
    for tap in range(max_taps):  # summed in tap order as Pillow does; torch.sum may reorder and change an ulp
        total = total + weight[:, tap]
    weight = torch.where(total[:, None] != 0, weight / total[:, None], weight)
    fixed = torch.floor(0.5 + weight * float(1 << 22)).to(torch.int64)
    return index.to(torch.int64).clamp(max=n_in - 1), fixed


def _pillow_resample_axis(images: Tensor, dim: int, n_out: int) -> Tensor:
    """Resamples uint8 [B, H, W, C] along dim 1 (rows) or 2 (columns) to ``n_out`` samples."""
    index, weight = _pillow_bilinear_taps(images.shape[dim], n_out, images.device)
    samples = images.movedim(dim, -2).to(torch.int64)  # [..., n_in, C]
    accumulated = (samples[..., index, :] * weight[:, :, None]).sum(-2) + (1 << 21)
    return (accumulated >> 22).clamp(0, 255).to(torch.uint8).movedim(-2, dim)
