"""A shared anchor head (Faster R-CNN's RPN head, S4Net's detector): one hidden convolution, then class logits and
box deltas for every anchor of every cell, the same weights on every pyramid level.

Outputs are per level ``[B, A * K, H, W]`` logits and ``[B, A * 4, H, W]`` deltas, channel ``a * K + k`` holding
class ``k`` of anchor ``a`` (anchor-major, as detectron2's RPN and RetinaNet heads);
:func:`flatten_anchor_outputs` turns them into ``[B, H * W * A, K]`` rows in the order of
:class:`pysalient.detection.anchors.AnchorGenerator`.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from pysalient.layers.weight_init import normal_fill


def flatten_anchor_outputs(predictions: List[Tensor], values_per_anchor: int) -> Tensor:
    """Per-level ``[B, A * K, H_l, W_l]`` -> ``[B, sum_l H_l W_l A, K]`` (row-major cells, anchors of a cell
    consecutive, levels in order), ``K = values_per_anchor``."""
    flattened: List[Tensor] = []
    for level in predictions:
        batch, _, height, width = level.shape
        grouped = level.reshape(batch, -1, values_per_anchor, height, width)  # [B, A, K, H, W]
        flattened.append(grouped.permute(0, 3, 4, 1, 2).reshape(batch, -1, values_per_anchor))
    return torch.cat(flattened, dim=1)


class AnchorHead(nn.Module):
    """Hidden ``3 x 3`` convolution + ReLU, then ``predictor_kernel`` convolutions to class logits and box deltas.

    Args:
        in_channels: width of the pyramid levels.
        num_anchors: anchors per cell (A).
        num_logits: class logits per anchor (K: 2 for a 2-way softmax of background and object, 1 for a sigmoid
            objectness, C + 1 for a softmax over C classes and background).
        hidden_channels: width of the hidden convolution (S4Net 512, detectron2's RPN the level width).
        predictor_kernel: kernel of the two predictors (S4Net 3, Faster R-CNN's RPN 1).
        init_std: standard deviation of the normal initialisation of every convolution (zero biases).
    """

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_logits: int,
        hidden_channels: int = 512,
        predictor_kernel: int = 3,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if min(in_channels, num_anchors, num_logits, hidden_channels) < 1 or predictor_kernel not in (1, 3):
            raise ValueError(
                "AnchorHead needs positive widths and counts and predictor_kernel 1 or 3, got "
                f"in_channels={in_channels}, num_anchors={num_anchors}, num_logits={num_logits}, "
                f"hidden_channels={hidden_channels}, predictor_kernel={predictor_kernel}"
            )
        self.num_anchors = int(num_anchors)
        self.num_logits = int(num_logits)
        padding = predictor_kernel // 2
        self.conv = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(hidden_channels, num_anchors * num_logits, predictor_kernel, padding=padding)
        self.bbox_pred = nn.Conv2d(hidden_channels, num_anchors * 4, predictor_kernel, padding=padding)
        for conv in (self.conv, self.cls_logits, self.bbox_pred):
            normal_fill(conv, init_std)

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Levels [B, C, H_l, W_l] -> (logits [B, A * K, H_l, W_l], deltas [B, A * 4, H_l, W_l]) per level."""
        logits: List[Tensor] = []
        deltas: List[Tensor] = []
        for feature in features:
            hidden = torch.relu(self.conv(feature))
            logits.append(self.cls_logits(hidden))
            deltas.append(self.bbox_pred(hidden))
        return logits, deltas
