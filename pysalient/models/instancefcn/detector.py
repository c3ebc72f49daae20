"""InstanceFCN inference: dense windows at every scale, assembled masks, NMS on their tight boxes, pasted masks.

:class:`InstanceFCNDetector` is the family's detector of the contract (``FamilySpec.build_detector``): eager
``predict`` runs it on a padded batch and the exported graphs on a batch of one, every scale inside the graph.

Per scale factor ``s`` of the config's ``test_scales`` (the input is at the reference scale, e.g. 600 px): the padded
batch is resized by ``s`` (bilinear, antialiased when shrinking; ``s = 1`` is the input itself) and zero-padded to a
multiple of 8 plus one cell, the network computes the k^2 score maps and the objectness, and every window whose
centre lies inside the image is a candidate, scored by its objectness probability (the best class with several
classes). The ``pre_nms_topk_per_scale`` best per image (0: all) are assembled from the score-map *probabilities* (so
cells off the map are exactly 0, A8), binarised at the mask threshold, and their tight boxes taken on the cell grid
(``8 (x0 + j_min) / s`` ... ``8 (y0 + i_max + 1) / s`` in reference pixels); empty masks are dropped. The candidates
of all scales go through one greedy NMS on those boxes (IoU > 0.8 suppresses; class-wise with several classes), the
``max_det`` best are kept, ``conf`` filters them, and the survivors' m x m probabilities are pasted into their window
boxes at the output size (:func:`pysalient.ops.paste_masks`, ``>= 0.5``). The returned boxes are the tight boxes of
the pasted masks; a detection whose mask pastes empty is dropped.

Resizing the padded input (not the original image) at each scale is a deviation from the paper's re-resize of the
original, chosen so that every scale runs inside the exported graph from one uint8 input; the reference scale is
exactly the standard input.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient import ops
from pysalient.detection.boxes import scale_boxes
from pysalient.models.family import InferenceSpec
from pysalient.models.instancefcn.config import STRIDE, InstanceFCNConfig

Detections = Tuple[Tensor, Tensor, Tensor, Tensor]  # boxes f32 [K, 4], scores f32 [K], labels i64 [K], masks u8
Candidates = Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]  # tight boxes, scores, labels, m x m probs, window boxes


def resize_batch(images: Tensor, factor: float, stride: int) -> Tensor:
    """``images`` [B, 3, Hp, Wp] resized by ``factor`` (output pixel ``i`` samples input ``(i + 0.5) / factor - 0.5``;
    bilinear, antialiased when shrinking) and zero-padded to multiples of ``stride`` plus one cell."""
    if factor != 1.0:
        # Zeros beyond the filter's reach first, so that the samples near the right / bottom edge are the same
        # whatever padding the batch already had (an image alone or padded to a larger batch).
        margin = int(math.ceil(1.0 / factor)) + 1
        images = F.pad(images, [0, margin, 0, margin])
        images = F.interpolate(
            images, scale_factor=factor, mode="bilinear", align_corners=False, antialias=factor < 1.0
        )
    pad_h = (stride - images.shape[-2] % stride) % stride
    pad_w = (stride - images.shape[-1] % stride) % stride
    # One more row and column of cells: every map is then provably >= 2 cells per side, so that torch.export does not
    # specialise a size to the example's (a 1-cell map is a distinct case to it). Windows centred there are not used.
    pad_h += stride
    pad_w += stride
    return F.pad(images, [0, pad_w, 0, pad_h])


def grid_tight_boxes(binary: Tensor) -> Tuple[Tensor, Tensor]:
    """Cell-grid tight boxes of binary windows.

    Args:
        binary: bool [R, m, m].

    Returns:
        boxes: float32 [R, 4] (j_min, i_min, j_max + 1, i_max + 1) in cells of the window; nonempty: bool [R].
    """
    m = binary.shape[-1]
    rows = binary.any(dim=2).to(torch.int32)  # [R, m]
    cols = binary.any(dim=1).to(torch.int32)
    i_min = rows.argmax(dim=1)
    i_max = m - 1 - rows.flip(1).argmax(dim=1)
    j_min = cols.argmax(dim=1)
    j_max = m - 1 - cols.flip(1).argmax(dim=1)
    boxes = torch.stack([j_min, i_min, j_max + 1, i_max + 1], dim=1).to(torch.float32)
    return boxes, rows.amax(dim=1) > 0


def mask_tight_boxes(masks: Tensor) -> Tuple[Tensor, Tensor]:
    """Pixel tight boxes float32 [K, 4] (exclusive right / bottom) of uint8 masks [K, H, W] and bool [K] nonempty."""
    height, width = masks.shape[-2], masks.shape[-1]
    rows = masks.amax(dim=2).to(torch.int32)  # [K, H]
    cols = masks.amax(dim=1).to(torch.int32)  # [K, W]
    y1 = rows.argmax(dim=1)
    y2 = height - rows.flip(1).argmax(dim=1)
    x1 = cols.argmax(dim=1)
    x2 = width - cols.flip(1).argmax(dim=1)
    return torch.stack([x1, y1, x2, y2], dim=1).to(torch.float32), rows.amax(dim=1) > 0


class InstanceFCNDetector(nn.Module):
    """InstanceFCN network + multi-scale dense windows + assembling + NMS + pasting, scriptable and exportable.

    Args:
        network: an :class:`~pysalient.models.instancefcn.model.InstanceFCN`.
        config: scales, window size and top-k.
        inference: NMS IoU, mask threshold and detection cap (its ``score_threshold`` is the callers' default).
    """

    def __init__(self, network: nn.Module, config: InstanceFCNConfig, inference: InferenceSpec) -> None:
        super().__init__()
        self.network = network
        self.scales: List[float] = [float(scale) for scale in config.test_scales]
        self.m = int(config.m)
        self.k = int(config.k)
        self.stride = STRIDE
        self.num_classes = int(config.num_classes)
        self.pre_nms_topk = int(config.pre_nms_topk_per_scale)
        self.nms_threshold = float(config.nms_threshold if inference.nms_threshold is None else inference.nms_threshold)
        self.max_det = int(inference.max_det)
        self.mask_threshold = float(inference.mask_threshold)

    def scale_candidates(self, images: Tensor, image_sizes: List[List[int]], factor: float) -> List[Candidates]:
        """Per image, the nonempty candidates of one scale, boxes in reference-scale pixels."""
        outputs = self.network(resize_batch(images, factor, self.stride))
        probabilities = outputs["score_maps"][0].float().sigmoid()
        objectness = outputs["objectness"][0].float().sigmoid()
        height, width = objectness.shape[-2], objectness.shape[-1]
        device = objectness.device
        centre_y = torch.arange(height, device=device, dtype=torch.float32) * self.stride + self.stride / 2
        centre_x = torch.arange(width, device=device, dtype=torch.float32) * self.stride + self.stride / 2
        half = self.m // 2
        results: List[Candidates] = []
        for index, size in enumerate(image_sizes):
            inside = (centre_y[:, None] < size[0] * factor) & (centre_x[None, :] < size[1] * factor)
            cells = torch.nonzero(inside.flatten()).flatten()
            scores, labels = objectness[index].flatten(1).max(dim=0)
            scores, labels = scores[cells], labels[cells]
            if self.pre_nms_topk > 0:
                scores, order = torch.topk(scores, min(self.pre_nms_topk, scores.shape[0]))
                cells, labels = cells[order], labels[order]
            ys = torch.div(cells, width, rounding_mode="floor")
            xs = cells - ys * width
            windows = torch.stack([torch.full_like(ys, index), ys - half, xs - half], dim=1)
            masks = ops.assemble_instances(probabilities, windows, self.m, self.k)
            cell_boxes, nonempty = grid_tight_boxes(masks >= self.mask_threshold)
            origin = torch.stack([xs - half, ys - half, xs - half, ys - half], dim=1).to(torch.float32)
            tight = (origin + cell_boxes) * (self.stride / factor)
            window = (origin + torch.tensor([0, 0, self.m, self.m], device=device)) * (self.stride / factor)
            keep = torch.nonzero(nonempty).flatten()
            results.append((tight[keep], scores[keep], labels[keep], masks[keep], window[keep]))
        return results

    def forward(
        self, images: Tensor, image_sizes: List[List[int]], output_sizes: List[List[int]], conf: Tensor
    ) -> List[Detections]:
        """Detects the instances of a padded batch.

        Args:
            images: [B, 3, Hp, Wp] normalised, zero-padded images at the reference scale, in the network's dtype.
            image_sizes: per image, ``[h, w]`` of the resized image inside the padding.
            output_sizes: per image, ``[H, W]`` of the returned masks (normally the original image size).
            conf: float32 0-d tensor, minimum score of a returned instance.

        Returns:
            Per image: boxes float32 [K, 4] (x1, y1, x2, y2 in output pixels, the pasted masks' tight boxes),
            scores float32 [K] (objectness), labels int64 [K] (0-based) and masks uint8 [K, H, W], by decreasing
            score.
        """
        per_scale = [self.scale_candidates(images, image_sizes, factor) for factor in self.scales]
        results: List[Detections] = []
        for index in range(len(image_sizes)):
            tight = torch.cat([candidates[index][0] for candidates in per_scale])
            scores = torch.cat([candidates[index][1] for candidates in per_scale])
            labels = torch.cat([candidates[index][2] for candidates in per_scale])
            masks = torch.cat([candidates[index][3] for candidates in per_scale])
            windows = torch.cat([candidates[index][4] for candidates in per_scale])
            if self.num_classes == 1:
                keep = ops.nms(tight, scores, self.nms_threshold)
            else:
                keep = ops.batched_nms(tight, scores, labels, self.nms_threshold)
            keep = keep[: self.max_det]
            keep = keep[torch.nonzero(scores[keep] >= conf.to(scores.device, scores.dtype)).flatten()]
            output_hw = output_sizes[index]
            output_windows = scale_boxes(windows[keep], image_sizes[index], output_hw)
            pasted = ops.paste_masks(masks[keep], output_windows, output_hw[0], output_hw[1], self.mask_threshold)
            boxes, nonempty = mask_tight_boxes(pasted)
            kept = torch.nonzero(nonempty).flatten()
            results.append((boxes[kept], scores[keep][kept], labels[keep][kept], pasted[kept].to(torch.uint8)))
        return results


def build_detector(network: nn.Module, config: InstanceFCNConfig, inference: InferenceSpec) -> InstanceFCNDetector:
    """The family's ``build_detector`` hook."""
    return InstanceFCNDetector(network, config, inference)
