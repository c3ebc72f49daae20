"""Box coders: what a detector head regresses instead of raw box corners.

- :class:`DeltaBoxCoder`: R-CNN deltas of a box relative to a reference box (anchor or proposal), ``dx = wx (x -
  x_a) / w_a``, ``dy = wy (y - y_a) / h_a``, ``dw = ww log(w / w_a)``, ``dh = wh log(h / h_a)`` of the centres and
  sizes, as detectron2's ``Box2BoxTransform`` and torchvision's ``BoxCoder``. ``legacy=True`` is the
  maskrcnn-benchmark / Detectron convention: sizes are ``x2 - x1 + 1`` and decoded corners ``centre +- size / 2``
  with 1 taken off ``x2`` and ``y2``.
- :func:`encode_distances` / :func:`decode_distances`: anchor-free point coding (FCOS): the distances
  ``(l, t, r, b)`` from a point to the box's four sides.

All scriptable; every function broadcasts over leading dimensions.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

# detectron2's and torchvision's clamp of dw, dh before exp: a box at most 1000/16 times its reference.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class DeltaBoxCoder:
    """Encodes boxes as deltas relative to reference boxes, and decodes deltas back.

    Args:
        weights: ``(wx, wy, ww, wh)`` multipliers of the deltas (detectron2's RPN and RetinaNet: all 1; its box
            head ``(10, 10, 5, 5)``).
        scale_clamp: ``dw`` and ``dh`` are clamped to at most this before ``exp`` when decoding.
        legacy: maskrcnn-benchmark's ``+1`` pixel convention (see the module docstring).

    Raises:
        ValueError: not four positive weights, or a non-positive ``scale_clamp``.
    """

    def __init__(
        self,
        weights: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
        scale_clamp: float = DEFAULT_SCALE_CLAMP,
        legacy: bool = False,
    ) -> None:
        if len(weights) != 4 or not all(float(weight) > 0 for weight in weights):
            raise ValueError(f"DeltaBoxCoder: weights must be 4 positive numbers, got {tuple(weights)}")
        if not float(scale_clamp) > 0:
            raise ValueError(f"DeltaBoxCoder: scale_clamp must be positive, got {scale_clamp}")
        self.weights = (float(weights[0]), float(weights[1]), float(weights[2]), float(weights[3]))
        self.scale_clamp = float(scale_clamp)
        self.offset = 1.0 if legacy else 0.0

    def encode(self, reference_boxes: Tensor, target_boxes: Tensor) -> Tensor:
        """Deltas that turn ``reference_boxes`` into ``target_boxes``.

        Args:
            reference_boxes: [..., 4] (x1, y1, x2, y2), positive sizes.
            target_boxes: [..., 4] (x1, y1, x2, y2), broadcastable with ``reference_boxes``.

        Returns:
            [..., 4] deltas (dx, dy, dw, dh), in the dtype of the boxes.
        """
        ref_w, ref_h, ref_x, ref_y = self._sizes_and_centres(reference_boxes)
        w, h, x, y = self._sizes_and_centres(target_boxes)
        wx, wy, ww, wh = self.weights
        deltas = [
            wx * (x - ref_x) / ref_w,
            wy * (y - ref_y) / ref_h,
            ww * torch.log(w / ref_w),
            wh * torch.log(h / ref_h),
        ]
        return torch.stack(deltas, dim=-1)

    def decode(self, deltas: Tensor, reference_boxes: Tensor) -> Tensor:
        """Boxes from deltas relative to ``reference_boxes``.

        Args:
            deltas: [N, 4 * k] deltas (dx, dy, dw, dh) of k boxes per reference (class-specific regression).
            reference_boxes: [N, 4] (x1, y1, x2, y2).

        Returns:
            [N, 4 * k] boxes (x1, y1, x2, y2) in the dtype of ``deltas``.
        """
        if deltas.shape[-1] % 4 != 0:
            raise ValueError(f"DeltaBoxCoder.decode: deltas must be [N, 4 * k] (a multiple of 4), got {deltas.shape}")
        reference_boxes = reference_boxes.to(deltas.dtype)
        ref_w, ref_h, ref_x, ref_y = self._sizes_and_centres(reference_boxes)
        wx, wy, ww, wh = self.weights
        grouped = deltas.reshape(deltas.shape[0], deltas.shape[-1] // 4, 4)  # -1 is ambiguous for 0 rows
        dx, dy = grouped[..., 0] / wx, grouped[..., 1] / wy
        dw = torch.clamp(grouped[..., 2] / ww, max=self.scale_clamp)
        dh = torch.clamp(grouped[..., 3] / wh, max=self.scale_clamp)
        x = dx * ref_w[:, None] + ref_x[:, None]
        y = dy * ref_h[:, None] + ref_y[:, None]
        w = torch.exp(dw) * ref_w[:, None]
        h = torch.exp(dh) * ref_h[:, None]
        boxes = torch.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w - self.offset, y + 0.5 * h - self.offset], dim=-1)
        return boxes.reshape(deltas.shape)

    def _sizes_and_centres(self, boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        widths = boxes[..., 2] - boxes[..., 0] + self.offset
        heights = boxes[..., 3] - boxes[..., 1] + self.offset
        return widths, heights, boxes[..., 0] + 0.5 * widths, boxes[..., 1] + 0.5 * heights


def encode_distances(points: Tensor, boxes: Tensor) -> Tensor:
    """Distances from points to the sides of boxes (FCOS' regression target).

    Args:
        points: [..., 2] (x, y).
        boxes: [..., 4] (x1, y1, x2, y2), broadcastable with ``points``.

    Returns:
        [..., 4] ``(x - x1, y - y1, x2 - x, y2 - y)``: all positive exactly when the point lies inside the box.
    """
    x, y = points[..., 0], points[..., 1]
    return torch.stack([x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y], dim=-1)


def decode_distances(points: Tensor, distances: Tensor) -> Tensor:
    """Boxes from points and their distances to the four sides (inverse of :func:`encode_distances`).

    Args:
        points: [..., 2] (x, y).
        distances: [..., 4] (l, t, r, b), broadcastable with ``points``.

    Returns:
        [..., 4] boxes ``(x - l, y - t, x + r, y + b)``.
    """
    x, y = points[..., 0], points[..., 1]
    return torch.stack(
        [x - distances[..., 0], y - distances[..., 1], x + distances[..., 2], y + distances[..., 3]], dim=-1
    )
