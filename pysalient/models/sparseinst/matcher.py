"""Bipartite matching of SparseInst predictions to ground-truth instances (Cheng et al., CVPR'22, Sec. 3.3).

Each image's N predictions are paired one-to-one with its K targets by maximising the matching score
``S_ij = D(m_i, t_j)^alpha * p_i(c_j)^beta`` (dice coefficient of the masks, probability of the target's
class; alpha = 0.8, beta = 0.2 as the paper and the official ``SparseInstMatcher``), solved exactly by the
``linear_sum_assignment`` op. Target masks live in the padded input frame and are resized bilinearly to the
stride-4 prediction grid, as in the official code.

Differences from the official matcher (hustvl/SparseInst ``sparseinst/loss.py``), all marked ``DEVIATION``:

* scores are computed per image (the official code scores every prediction against every target of the
  whole batch, B times the work, then keeps the diagonal blocks);
* all score matrices travel to the host in ONE transfer (one device synchronisation per batch);
* a batch without any instance returns empty int64 matches (the official returns float tensors that crash
  the loss); an image with more targets than queries warns; non-finite predictions or labels outside
  ``[0, num_classes)`` raise a ValueError naming the image instead of failing inside the solver or as a
  device-side assert.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient.ops import dice_cost, linear_sum_assignment

MASK_STRIDE = 4  # pred_masks are at 1/4 of the padded input (stride-8 decoder output upsampled x2)

Matches = List[Tuple[Tensor, Tensor]]


def resize_target_masks(
    masks: Sequence[Tensor], mask_hw: Tuple[int, int], input_hw: Optional[Tuple[int, int]] = None
) -> Tensor:
    """Puts every target mask of a batch into the padded input frame and resizes it to the prediction grid.

    Masks smaller than the padded input (at the image resolution, as detectron2 bitmasks are) sit at its top
    left corner and are zero-padded, exactly what the padded image batch did to the pixels; then all masks are
    resized bilinearly (``align_corners=False``) in one call, as the official ``nested_masks_from_list`` +
    ``F.interpolate``.

    Args:
        masks: per image, [K_i, H_i, W_i] bool, uint8 (0/1) or float in [0, 1]; H_i <= H and W_i <= W.
        mask_hw: (h, w) of ``pred_masks``.
        input_hw: (H, W) of the padded input batch; defaults to ``MASK_STRIDE * mask_hw``.

    Returns:
        [sum K_i, h, w] float32 soft targets in [0, 1], image after image, on the device of ``masks[0]``.
    """
    height, width = input_hw if input_hw is not None else (MASK_STRIDE * mask_hw[0], MASK_STRIDE * mask_hw[1])
    for index, image_masks in enumerate(masks):
        if image_masks.dim() != 3 or image_masks.shape[-2] > height or image_masks.shape[-1] > width:
            raise ValueError(
                f"image {index}: target masks must be [K, H, W] with H <= {height} and W <= {width} (the padded "
                f"input size), got {tuple(image_masks.shape)}"
            )
    total = sum(int(image_masks.shape[0]) for image_masks in masks)
    device = masks[0].device if len(masks) else torch.device("cpu")
    if total == 0:
        return torch.zeros((0, mask_hw[0], mask_hw[1]), dtype=torch.float32, device=device)
    canvas = torch.zeros((total, height, width), dtype=torch.float32, device=device)
    start = 0
    for image_masks in masks:
        count, mask_height, mask_width = image_masks.shape
        canvas[start : start + count, :mask_height, :mask_width] = image_masks.to(device=device, dtype=torch.float32)
        start += count
    return F.interpolate(canvas[:, None], size=tuple(mask_hw), mode="bilinear", align_corners=False)[:, 0]


class SparseInstMatcher(nn.Module):
    """Optimal one-to-one assignment of predictions to targets, image by image (no gradient).

    Args:
        alpha: exponent of the dice coefficient in the matching score (0.8 officially).
        beta: exponent of the class probability (0.2 officially).
    """

    def __init__(self, alpha: float = 0.8, beta: float = 0.2) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(
        self,
        outputs: Dict[str, Tensor],
        targets: Sequence[Dict[str, Tensor]],
        input_hw: Optional[Tuple[int, int]] = None,
    ) -> Matches:
        """Matches raw model outputs to per-image targets.

        Args:
            outputs: ``pred_logits`` [B, N, C] class logits and ``pred_masks`` [B, N, h, w] mask logits.
            targets: B dicts with ``labels`` int64 [K_i] and ``masks`` [K_i, H_i, W_i] (see
                :func:`resize_target_masks`).
            input_hw: (H, W) of the padded input batch; defaults to 4 x (h, w).

        Returns:
            See :meth:`match`.
        """
        pred_masks = outputs["pred_masks"]
        target_masks = resize_target_masks(
            [target["masks"].to(pred_masks.device) for target in targets], tuple(pred_masks.shape[-2:]), input_hw
        )
        return self.match(outputs["pred_logits"], pred_masks, [target["labels"] for target in targets], target_masks)

    def match(self, pred_logits: Tensor, pred_masks: Tensor, labels: Sequence[Tensor], target_masks: Tensor) -> Matches:
        """Matches predictions to already resized targets (what the criterion calls, sharing the resize).

        Args:
            pred_logits: [B, N, C] class logits.
            pred_masks: [B, N, h, w] mask logits.
            labels: B int64 tensors [K_i], class indices in [0, C).
            target_masks: [sum K_i, h, w] targets in [0, 1], image after image (:func:`resize_target_masks`).

        Returns:
            B pairs (pred_index, target_index), int64 [min(N, K_i)] each on the CPU (where the solver ran):
            prediction ``pred_index[j]`` is matched to target ``target_index[j]`` of that image.

        Raises:
            ValueError: when an image has non-finite predictions (hence a non-finite matching score) or labels
                outside [0, C); the message names the image.
        """
        batch, num_queries, num_classes = pred_logits.shape
        counts = [int(image_labels.shape[0]) for image_labels in labels]
        if len(counts) != batch or sum(counts) != target_masks.shape[0]:
            raise ValueError(
                f"got {len(counts)} label tensors with {sum(counts)} labels and {target_masks.shape[0]} target "
                f"masks for a batch of {batch} images"
            )
        for index, count in enumerate(counts):
            if count > num_queries:
                # DEVIATION: the official code silently leaves the extra instances unmatched.
                warnings.warn(
                    f"image {index}: {count} target instances but only {num_queries} queries; matching "
                    f"{num_queries} of them, {count - num_queries} instances get no prediction "
                    "(raise num_queries)",
                    stacklevel=2,
                )
        device = pred_logits.device
        # Matching picks indices; no gradient flows through it (the official matcher runs under no_grad).
        pred_logits, target_masks = pred_logits.detach(), target_masks.detach()
        probabilities = pred_logits.float().sigmoid()
        flat_masks = pred_masks.detach().flatten(2)
        # Per-image health flags travel with the scores (same transfer) so errors can say why, at no extra sync.
        flags = [torch.isfinite(pred_logits).flatten(1).all(1), torch.isfinite(flat_masks).flatten(1).all(1)]
        label_ok = []
        pieces = []
        start = 0
        for index, count in enumerate(counts):
            image_labels = labels[index].to(device)
            label_ok.append(((image_labels >= 0) & (image_labels < num_classes)).all())
            if count == 0:
                continue
            dice = dice_cost(flat_masks[index], target_masks[start : start + count].flatten(1))
            # Clamped only so that a bad label cannot trigger a device-side assert; it is reported below.
            class_probability = probabilities[index][:, image_labels.clamp(0, num_classes - 1)]
            pieces.append((dice.pow(self.alpha) * class_probability.pow(self.beta)).flatten())
            start += count
        flags.append(torch.stack(label_ok) if label_ok else torch.ones(0, dtype=torch.bool, device=device))
        # ONE host transfer per batch: the solver is a CPU kernel, and copying each image's [N, K_i] block on
        # its own would synchronise the device B times. The blocks are laid flat, image after image (offsets
        # N * K_i), followed by the [3, B] flags. For a CPU batch .cpu() is a no-op.
        host = torch.cat(pieces + [torch.stack(flags).float().flatten()]).cpu()
        flags_host = host[host.numel() - 3 * batch :].view(3, batch).bool()
        matches: Matches = []
        offset = 0
        for index, count in enumerate(counts):
            scores = host[offset : offset + num_queries * count].view(num_queries, count)
            offset += num_queries * count
            _check_image(index, scores, num_classes, *flags_host[:, index].tolist())
            rows, cols = linear_sum_assignment(scores, maximize=True)
            matches.append((rows, cols))
        return matches


def _check_image(
    index: int, scores: Tensor, num_classes: int, logits_finite: bool, masks_finite: bool, labels_valid: bool
) -> None:
    """Raises a ValueError naming image ``index`` when its matching problem is ill-posed (see ``match``)."""
    if not labels_valid:
        raise ValueError(f"image {index}: target labels outside [0, {num_classes}) (check the dataset's class ids)")
    causes = [name for name, finite in (("pred_logits", logits_finite), ("pred_masks", masks_finite)) if not finite]
    why = (" and ".join(causes) + (" has" if len(causes) == 1 else " have") + " non-finite values") if causes else ""
    if not bool(torch.isfinite(scores).all()):
        kind = "NaN" if bool(torch.isnan(scores).any()) else "inf"
        raise ValueError(f"image {index}: matching cost contains {kind} ({why or 'non-finite score'})")
    if causes:
        # Saturated sigmoids can keep the score finite, but such predictions make the loss non-finite anyway.
        raise ValueError(f"image {index}: cannot match non-finite predictions ({why})")
