"""Optimizer and learning-rate schedule of the trainer (detectron2's "solver"): SGD or AdamW over parameter groups,
linear or constant warm-up, step or cosine decay.

Parameter groups follow detectron2's ``get_default_optimizer_params``: weights take ``weight_decay``; biases take
``weight_decay_bias`` (``weight_decay`` when None, detectron2's default) and the learning rate times
``bias_lr_factor`` (RDPNet / FCOS: x2, no decay); parameters of normalisation LAYERS (BatchNorm/SyncBatchNorm/
InstanceNorm, GroupNorm, LayerNorm, RMSNorm) take ``weight_decay_norm``, whatever their names. The official SparseInst
``build_optimizer`` recognises norms by the substring ``"norm"`` in a parameter's name, a fragile proxy (a BatchNorm
registered as ``bn1`` would decay); recognising the layer type gives what the name rule intends.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

# _NormBase covers BatchNorm1d/2d/3d, SyncBatchNorm and InstanceNorm*; FrozenBatchNorm has buffers only.
NORM_LAYER_TYPES: Tuple[type, ...] = (_NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)

WARMUP_FRACTION_CAP = 0.1  # the warm-up never takes more than this fraction of a run
OPTIMIZERS = ("sgd", "adamw")
WARMUPS = ("linear", "constant")
SCHEDULES = ("step", "cosine")


def parameter_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    weight_decay_bias: Optional[float] = None,
    weight_decay_norm: float = 0.0,
    bias_lr_factor: float = 1.0,
) -> List[Dict[str, Any]]:
    """Splits the trainable parameters into weights, biases and normalisation-layer parameters.

    Args:
        model: the network (a parameter shared by several modules is listed once).
        lr: base learning rate.
        weight_decay: decay of weights.
        weight_decay_bias: decay of biases (not of norm layers); ``weight_decay`` when None.
        weight_decay_norm: decay of normalisation-layer parameters (weights and biases).
        bias_lr_factor: learning-rate factor of biases (not of norm layers).

    Returns:
        Up to three groups ``{"params", "lr", "weight_decay", "name"}`` (``"weights"``, ``"biases"``, ``"norms"``),
        empty ones left out, each with its parameters in ``model.parameters()`` order (so optimizer states line up
        between runs).
    """
    norm_parameters: Set[int] = set()
    for module in model.modules():
        if isinstance(module, NORM_LAYER_TYPES):
            norm_parameters.update(id(parameter) for parameter in module.parameters(recurse=False))
    groups: Dict[str, List[nn.Parameter]] = {"weights": [], "biases": [], "norms": []}
    seen: Set[int] = set()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        if id(parameter) in norm_parameters:
            groups["norms"].append(parameter)
        elif name.endswith("bias"):
            groups["biases"].append(parameter)
        else:
            groups["weights"].append(parameter)
    bias_decay = weight_decay if weight_decay_bias is None else weight_decay_bias
    settings = {
        "weights": (lr, weight_decay),
        "biases": (lr * bias_lr_factor, bias_decay),
        "norms": (lr, weight_decay_norm),
    }
    return [
        {"params": params, "lr": settings[name][0], "weight_decay": settings[name][1], "name": name}
        for name, params in groups.items()
        if params
    ]


def build_optimizer(
    model: nn.Module,
    optimizer: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    betas: Tuple[float, float] = (0.9, 0.999),
    weight_decay_bias: Optional[float] = None,
    weight_decay_norm: float = 0.0,
    bias_lr_factor: float = 1.0,
) -> torch.optim.Optimizer:
    """SGD (momentum, detectron2's default) or AdamW (SparseInst's, no amsgrad) over :func:`parameter_groups`.

    Args:
        model: the network whose trainable parameters are optimised.
        optimizer: ``"sgd"`` or ``"adamw"``.
        lr: base learning rate (biases take ``lr * bias_lr_factor``).
        weight_decay: decay of weights (SGD: L2 added to the gradient; AdamW: decoupled).
        momentum: SGD momentum (ignored by AdamW).
        betas: AdamW betas (ignored by SGD).
        weight_decay_bias: decay of biases; ``weight_decay`` when None.
        weight_decay_norm: decay of normalisation-layer parameters.
        bias_lr_factor: learning-rate factor of biases.

    Returns:
        The optimizer, its ``param_groups`` named ``"weights"``, ``"biases"`` and ``"norms"`` (empty ones left out).

    Raises:
        ValueError: an unknown optimizer, or a model without trainable parameters.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    groups = parameter_groups(model, lr, weight_decay, weight_decay_bias, weight_decay_norm, bias_lr_factor)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)


def warmup_iterations(requested: int, total_iterations: int) -> int:
    """The warm-up length actually used: ``requested``, but at most a tenth of the run.

    detectron2 does not cap it; with its 1000-iteration default a short fine-tuning run would spend most of its
    iterations below the base rate, so the cap keeps short runs useful and leaves long ones (the official 270k
    iterations) untouched.
    """
    return min(int(requested), int(total_iterations * WARMUP_FRACTION_CAP))


def lr_factor(
    iteration: int,
    total_iterations: int,
    warmup: int,
    warmup_factor: float,
    steps: Sequence[float],
    gamma: float,
    warmup_kind: str = "linear",
    schedule: str = "step",
) -> float:
    """Learning-rate multiplier at 0-based ``iteration`` (detectron2's ``WarmupMultiStepLR`` / ``WarmupCosineLR``).

    Args:
        iteration: the optimizer step about to be taken.
        total_iterations: length of the run (the fractions in ``steps`` refer to it).
        warmup: warm-up length in iterations.
        warmup_factor: ``"linear"``: the factor rises from it at 0 to 1 at ``warmup``; ``"constant"``: the factor
            during the whole warm-up (maskrcnn-benchmark's constant warm-up, RDPNet's x1/3).
        steps: ``"step"`` schedule: increasing fractions of the run; at and after each the rate is x ``gamma``.
        gamma: decay per step.
        warmup_kind: ``"linear"`` or ``"constant"``.
        schedule: ``"step"`` or ``"cosine"`` (``0.5 (1 + cos(pi t / T))`` over the whole run, as detectron2).
    """
    if schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * iteration / max(total_iterations, 1)))
    else:
        milestones = [int(round(step * total_iterations)) for step in steps]
        factor = gamma ** bisect.bisect_right(milestones, iteration)
    if iteration < warmup:
        if warmup_kind == "constant":
            factor *= warmup_factor
        else:
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
    warmup_kind: str = "linear",
    schedule: str = "step",
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration ``LambdaLR`` of :func:`lr_factor` (it scales each group's own rate, so the bias factor stays);
    call ``scheduler.step()`` after each optimizer step.

    Args:
        optimizer: the optimizer whose groups' initial rates are scaled.
        total_iterations: length of the run.
        warmup: warm-up length in iterations (already capped, :func:`warmup_iterations`).
        warmup_factor: see :func:`lr_factor`.
        steps: fractions of the run of a step schedule.
        gamma: decay per step.
        warmup_kind: ``"linear"`` or ``"constant"``.
        schedule: ``"step"`` or ``"cosine"``.

    Returns:
        The scheduler.

    Raises:
        ValueError: an unknown warm-up kind or schedule.
    """
    if warmup_kind not in WARMUPS:
        raise ValueError(f"warmup must be one of {WARMUPS}, got {warmup_kind!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    steps = tuple(steps)

    def factor(iteration: int) -> float:
        return lr_factor(iteration, total_iterations, warmup, warmup_factor, steps, gamma, warmup_kind, schedule)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
