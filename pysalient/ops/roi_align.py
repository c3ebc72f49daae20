"""RoIAlign: ``roi_align`` (drop-in for ``torchvision.ops.roi_align``) and ``multilevel_roi_align`` (RDPNet).

Both run the native ``pysalient::multilevel_roi_align`` operator, which pools every pyramid level in one
parallel launch; ``roi_align`` is its one-level case. Semantics are torchvision's (Mask R-CNN's RoIAlign):
each output bin is the average of ``sampling_ratio`` x ``sampling_ratio`` bilinear samples (or
``ceil(roi_size / output_size)`` per axis when ``sampling_ratio <= 0``); ``aligned=True`` shifts the RoI by
half a cell so that pixel centres line up, ``aligned=False`` is the legacy Detectron behaviour whose RoIs are
at least one cell wide. Gradients flow to the features, never to the boxes. The backward pass is deterministic
on the CPU; on CUDA it scatters with atomicAdd (summation order varies between runs, as torchvision's) and
raises under ``torch.use_deterministic_algorithms(True)``.
"""

from __future__ import annotations

import collections.abc
import math
from typing import List, Sequence, Tuple, Union

import torch
import torch.fx
from torch import Tensor, nn
from torch.jit.annotations import BroadcastingList2

from pysalient.ops import _reference
from pysalient.ops._library import has_native


@torch.fx.wrap
def roi_align(
    input: Tensor,
    boxes: Union[Tensor, List[Tensor]],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign of one feature map, with ``torchvision.ops.roi_align``'s arguments and results.

    Args:
        input: [B, C, H, W] feature map (float16, bfloat16, float32 or float64).
        boxes: [K, 5] (batch_idx, x1, y1, x2, y2) in input pixels, or a list of B tensors [L_i, 4]
            (x1, y1, x2, y2) of image i. Same dtype and device as ``input``.
        output_size: ``out`` or ``(out_h, out_w)``, the pooled size.
        spatial_scale: map cells per input pixel (1 / stride).
        sampling_ratio: bilinear samples per bin and axis; ``<= 0`` chooses ``ceil(roi_size / output_size)``
            per RoI and axis.
        aligned: shift the RoI by -0.5 cell (pixel-exact); False keeps the legacy RoIs of at least one cell.

    Returns:
        [K, C, out_h, out_w] pooled features. Under ``torch.autocast`` features and boxes are pooled in float32
        (float64 stays float64) and the result has the dtype of ``input``, as torchvision's.

    ``torch.fx.symbolic_trace`` keeps a call to this function as one node (``torch.fx.wrap``, as torchvision).

    Raises:
        ValueError: ``spatial_scale`` is not finite and positive, or ``sampling_ratio`` exceeds 1024.
    """
    if not torch.jit.is_scripting():
        output_size = _pair(output_size)
    _check_sampling("roi_align", "spatial_scale", [spatial_scale], str(spatial_scale), sampling_ratio)
    if isinstance(boxes, torch.Tensor):
        rois = boxes
    else:
        rois = _boxes_to_rois(boxes)
    sizes = [output_size[0], output_size[1]]
    return multilevel_roi_align([input], rois, [spatial_scale], sizes, sampling_ratio, aligned)[0]


def multilevel_roi_align(
    features: List[Tensor],
    rois: Union[Tensor, List[Tensor]],
    spatial_scales: List[float],
    output_sizes: List[int],
    sampling_ratio: int = 2,
    aligned: bool = False,
) -> List[Tensor]:
    """RoIAlign of the same RoIs on every pyramid level (one native launch for all levels).

    Output ``l`` equals ``roi_align(features[l], rois, (out_h_l, out_w_l), spatial_scales[l], sampling_ratio,
    aligned)``. The defaults are RDPNet's (official configs: ``POOLER_SAMPLING_RATIO: 2`` with
    maskrcnn-benchmark's legacy, unaligned RoIAlign; P3..P7 at scales 1/8..1/128 pooled at 32/16/8/4/4).

    Args:
        features: L maps [B, C_l, H_l, W_l] of one dtype and device (channels may differ per level).
        rois: [R, 5] (batch_idx, x1, y1, x2, y2) in input pixels, or a list of B tensors [L_i, 4].
        spatial_scales: L scales, map cells per input pixel of each level.
        output_sizes: L square sizes, or 2L entries ``[out_h_0, out_w_0, out_h_1, out_w_1, ...]``.
        sampling_ratio: bilinear samples per bin and axis; ``<= 0`` is adaptive (see :func:`roi_align`).
        aligned: half-pixel offset (True) or legacy RoIs of at least one cell (False).

    Returns:
        L tensors [R, C_l, out_h_l, out_w_l].

    Raises:
        ValueError: when the list lengths do not match the number of levels, a scale is not finite and positive, or
            ``sampling_ratio`` exceeds 1024 (one bin would take over a million samples).
    """
    levels = len(features)
    if len(spatial_scales) != levels:
        raise ValueError(
            f"multilevel_roi_align: expected {levels} spatial_scales (one per level), got {len(spatial_scales)}"
        )
    if len(output_sizes) != levels and len(output_sizes) != 2 * levels:
        raise ValueError(
            f"multilevel_roi_align: output_sizes must hold {levels} or {2 * levels} entries, got {len(output_sizes)}"
        )
    _check_sampling("multilevel_roi_align", "spatial_scales", spatial_scales, str(list(spatial_scales)), sampling_ratio)
    if isinstance(rois, torch.Tensor):
        boxes = rois
    else:
        boxes = _boxes_to_rois(rois)
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.multilevel_roi_align(
                features, boxes, spatial_scales, output_sizes, sampling_ratio, aligned
            )
    return torch.ops.pysalient.multilevel_roi_align(
        features, boxes, spatial_scales, output_sizes, sampling_ratio, aligned
    )


def _check_sampling(op: str, name: str, scales: List[float], shown: str, sampling_ratio: int) -> None:
    """Raises a ValueError naming ``op`` when a scale is not finite and positive or ``sampling_ratio`` is
    above the native kernels' bound (``kMaxSamplingRatio``, csrc/ops/checks.h: one bin would take over a million
    samples); ``shown`` is the argument as the caller passed it."""
    for scale in scales:
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"{op}: {name} must be finite and > 0, got {shown}")
    if sampling_ratio > 1024:
        raise ValueError(
            f"{op}: sampling_ratio must be <= 1024 samples per bin and axis (or <= 0 for adaptive sampling), "
            f"got {sampling_ratio}"
        )


class RoIAlign(nn.Module):
    """Module form of :func:`roi_align` (``torchvision.ops.RoIAlign``'s constructor).

    Args:
        output_size: ``out`` or ``(out_h, out_w)``.
        spatial_scale: map cells per input pixel.
        sampling_ratio: samples per bin and axis; ``<= 0`` is adaptive.
        aligned: half-pixel offset (True) or legacy (False).
    """

    def __init__(
        self, output_size: Union[int, Sequence[int]], spatial_scale: float, sampling_ratio: int, aligned: bool = False
    ) -> None:
        super().__init__()
        self.output_size: List[int] = list(_pair(output_size))
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: Tensor, rois: Union[Tensor, List[Tensor]]) -> Tensor:
        """Pools ``rois`` ([K, 5] or a list of [L_i, 4]) from ``input`` [B, C, H, W] into [K, C, out_h, out_w]."""
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (
            f"output_size={tuple(self.output_size)}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


class MultiLevelRoIAlign(nn.Module):
    """Module form of :func:`multilevel_roi_align` with fixed levels.

    Args:
        spatial_scales: one scale per level (map cells per input pixel).
        output_sizes: one entry per level, each ``out`` or ``(out_h, out_w)``.
        sampling_ratio: samples per bin and axis; ``<= 0`` is adaptive. RDPNet uses 2.
        aligned: half-pixel offset (True) or legacy (False, RDPNet).
    """

    def __init__(
        self,
        spatial_scales: Sequence[float],
        output_sizes: Sequence[Union[int, Sequence[int]]],
        sampling_ratio: int = 2,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        if len(spatial_scales) != len(output_sizes) or len(spatial_scales) == 0:
            raise ValueError(
                f"MultiLevelRoIAlign: need one output size per spatial scale, got {len(spatial_scales)} scales "
                f"and {len(output_sizes)} sizes"
            )
        self.spatial_scales: List[float] = [float(scale) for scale in spatial_scales]
        self.output_sizes: List[int] = [int(value) for size in output_sizes for value in _pair(size)]
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, features: List[Tensor], rois: Union[Tensor, List[Tensor]]) -> List[Tensor]:
        """Pools ``rois`` from every level of ``features``: L tensors [R, C_l, out_h_l, out_w_l]."""
        return multilevel_roi_align(
            features, rois, self.spatial_scales, self.output_sizes, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        sizes = [tuple(self.output_sizes[i : i + 2]) for i in range(0, len(self.output_sizes), 2)]
        return (
            f"spatial_scales={self.spatial_scales}, output_sizes={sizes}, sampling_ratio={self.sampling_ratio}, "
            f"aligned={self.aligned}"
        )


def _pair(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``out`` -> ``(out, out)``; an iterable must hold exactly (out_h, out_w) (torchvision's ``_pair``)."""
    if not isinstance(size, collections.abc.Iterable):
        return int(size), int(size)
    pair = tuple(size)
    if len(pair) != 2:
        raise ValueError(f"output size must be an int or a pair (height, width), got {size}")
    return int(pair[0]), int(pair[1])


def _boxes_to_rois(boxes: List[Tensor]) -> Tensor:
    """Per-image boxes [L_i, 4] -> rois [sum L_i, 5] whose first column is the image index."""
    if len(boxes) == 0:
        raise ValueError("boxes must be a Tensor[K, 5] or a non-empty list of Tensor[L_i, 4]")
    with_index: List[Tensor] = []
    for image, image_boxes in enumerate(boxes):
        if image_boxes.dim() != 2 or image_boxes.shape[1] != 4:
            raise ValueError(f"boxes[{image}] must have shape [L, 4] (x1, y1, x2, y2), got {list(image_boxes.shape)}")
        index = torch.full_like(image_boxes[:, :1], image)
        with_index.append(torch.cat([index, image_boxes], dim=1))
    return torch.cat(with_index, dim=0)
