"""Assignment of predictions (anchors, proposals) to ground-truth boxes by IoU (detectron2's ``Matcher`` rules).

Each prediction takes the ground truth of highest IoU; its label comes from where that IoU falls among the
thresholds: with ``thresholds = [t1, ..., tn]`` and ``labels = [l0, ..., ln]``, an IoU in ``[t_i, t_i+1)`` gets
``l_i`` (``t_0 = -inf``, ``t_n+1 = +inf``). Labels are 1 (positive), 0 (negative) or -1 (ignored). Examples:
RDPNet's mask head (maskrcnn-benchmark ``Matcher(0.5, 0.5)``) is ``thresholds=[0.5], labels=[0, 1]``; RetinaNet
(``0.4``/``0.5`` with an ignore band) is ``thresholds=[0.4, 0.5], labels=[0, -1, 1]``.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor


class IoUMatcher:
    """Matches predictions to ground truth from a ground truth x prediction IoU matrix.

    Args:
        thresholds: increasing IoU thresholds.
        labels: ``len(thresholds) + 1`` labels in {-1, 0, 1}.
        allow_low_quality_matches: the predictions of each ground truth's highest IoU (ties included) are labelled
            1 even below the positive threshold (Faster R-CNN's RPN rule; as detectron2, their ``matches`` stay
            their own best ground truth).

    Raises:
        ValueError: thresholds not increasing, or labels of the wrong count or values.
    """

    def __init__(self, thresholds: Sequence[float], labels: Sequence[int], allow_low_quality_matches: bool = False):
        thresholds = [float(value) for value in thresholds]
        labels = [int(value) for value in labels]
        if any(low > high for low, high in zip(thresholds[:-1], thresholds[1:])):
            raise ValueError(f"IoUMatcher: thresholds must be increasing, got {thresholds}")
        if len(labels) != len(thresholds) + 1 or any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(
                f"IoUMatcher: need len(thresholds) + 1 labels in {{-1, 0, 1}}, got {labels} for {thresholds}"
            )
        self.thresholds: List[float] = [-float("inf")] + thresholds + [float("inf")]
        self.labels: List[int] = labels
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, iou: Tensor) -> Tuple[Tensor, Tensor]:
        """Assigns every column (prediction) of ``iou``.

        Args:
            iou: [G, N] IoU of G ground-truth boxes with N predictions.

        Returns:
            ``matches`` int64 [N], the index of the ground truth of highest IoU (the first among ties; 0 when
            G == 0), and ``match_labels`` int8 [N] in {-1, 0, 1} (all 0 when G == 0).
        """
        if iou.dim() != 2:
            raise ValueError(f"IoUMatcher expects a [G, N] IoU matrix, got shape {tuple(iou.shape)}")
        num_predictions = iou.shape[1]
        if iou.shape[0] == 0:
            matches = torch.zeros(num_predictions, dtype=torch.int64, device=iou.device)
            return matches, torch.zeros(num_predictions, dtype=torch.int8, device=iou.device)
        best, matches = iou.max(dim=0)
        match_labels = torch.zeros(num_predictions, dtype=torch.int8, device=iou.device)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            match_labels[(best >= low) & (best < high)] = label
        if self.allow_low_quality_matches:
            highest = iou.max(dim=1, keepdim=True).values
            claimed = (iou == highest).any(dim=0)
            match_labels[claimed] = 1
        return matches, match_labels
