"""Optimizer and learning-rate schedule of the trainer (detectron2's "solver"): AdamW + warm-up + multi-step.

Weight decay: the official SparseInst ``build_optimizer`` gives every parameter the decay except those whose
NAME contains ``"norm"``. Names are a fragile proxy (a BatchNorm registered as ``bn1`` would decay, a conv
named ``normalize`` would not), so here a parameter gets no decay when it belongs to a normalisation LAYER
(BatchNorm/SyncBatchNorm/InstanceNorm, GroupNorm, LayerNorm, RMSNorm), whatever its name. Biases keep the
decay, as in the official recipe (detectron2's ``WEIGHT_DECAY_BIAS`` defaults to ``WEIGHT_DECAY``).
"""

from __future__ import annotations

import bisect
from typing import Any, Dict, List, Sequence, Set, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

# _NormBase covers BatchNorm1d/2d/3d, SyncBatchNorm and InstanceNorm*; FrozenBatchNorm has buffers only.
NORM_LAYER_TYPES: Tuple[type, ...] = (_NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)

WARMUP_FRACTION_CAP = 0.1  # the warm-up never takes more than this fraction of a run


def parameter_groups(model: nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """Splits the trainable parameters into a decayed group and a group of normalisation-layer parameters.

    Args:
        model: the network (a parameter shared by several modules is listed once).
        weight_decay: decay of the first group; the second has 0.

    Returns:
        ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay": 0.0}]`` with the
        parameters in ``model.parameters()`` order (so optimizer states line up between runs).
    """
    norm_parameters: Set[int] = set()
    for module in model.modules():
        if isinstance(module, NORM_LAYER_TYPES):
            norm_parameters.update(id(parameter) for parameter in module.parameters(recurse=False))
    decay, no_decay, seen = [], [], set()
    for parameter in model.parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        (no_decay if id(parameter) in norm_parameters else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: Tuple[float, float] = (0.9, 0.999)
) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups` (the official optimizer: ``SOLVER.OPTIMIZER = "ADAMW"``, no amsgrad)."""
    groups = [group for group in parameter_groups(model, weight_decay) if group["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)


def warmup_iterations(requested: int, total_iterations: int) -> int:
    """The warm-up length actually used: ``requested``, but at most a tenth of the run.

    detectron2 does not cap it; with its 1000-iteration default a short fine-tuning run would spend most of its
    iterations below the base rate, so the cap keeps short runs useful and leaves long ones (the official 270k
    iterations) untouched.
    """
    return min(int(requested), int(total_iterations * WARMUP_FRACTION_CAP))


def lr_factor(
    iteration: int, total_iterations: int, warmup: int, warmup_factor: float, steps: Sequence[float], gamma: float
) -> float:
    """Learning-rate multiplier of detectron2's ``WarmupMultiStepLR`` at 0-based ``iteration``.

    Args:
        iteration: the optimizer step about to be taken.
        total_iterations: length of the run (the fractions in ``steps`` refer to it).
        warmup: linear warm-up length; the factor rises from ``warmup_factor`` at 0 to 1 at ``warmup``.
        warmup_factor: factor at iteration 0.
        steps: increasing fractions of the run; at and after each one the rate is multiplied by ``gamma``.
        gamma: decay per step.
    """
    milestones = [int(round(step * total_iterations)) for step in steps]
    factor = gamma ** bisect.bisect_right(milestones, iteration)
    if iteration < warmup:
        alpha = iteration / warmup
        factor *= warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total_iterations: int,
    warmup: int,
    warmup_factor: float,
    steps: Sequence[float],
    gamma: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration ``LambdaLR`` of :func:`lr_factor`; call ``scheduler.step()`` after each optimizer step."""
    steps = tuple(steps)

    def factor(iteration: int) -> float:
        return lr_factor(iteration, total_iterations, warmup, warmup_factor, steps, gamma)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
