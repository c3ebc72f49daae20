"""The training configuration: one typed dataclass, filled from a YAML/JSON file and ``key=value`` overrides.

The defaults are the official SparseInst recipe (hustvl/SparseInst ``Base-SparseInst.yaml`` on top of the
detectron2 solver defaults): AdamW, learning rate 5e-5, weight decay 0.05, default betas, a linear warm-up of
1000 iterations from 1/1000 of the rate, x0.1 decays at 210k and 250k of 270k iterations (kept here as the
fractions 7/9 and 25/27 of the run, so they scale with any run length), no gradient clipping, multi-scale
training on the shortest sides 416-640 (scaled to the model's test size) with the longest side capped at 853,
horizontal flips. The config is saved as a dict inside every training checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from pysalient.engine.config_file import parse_scalar, read_config_file

OFFICIAL_TRAIN_SIZES = (416, 448, 480, 512, 544, 576, 608, 640)  # INPUT.MIN_SIZE_TRAIN, for MIN_SIZE_TEST 640
OFFICIAL_TEST_SIZE = 640
OFFICIAL_LR_STEPS = (210000 / 270000, 250000 / 270000)  # SOLVER.STEPS / SOLVER.MAX_ITER


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the model's own architecture config.

    Attributes:
        model: registry name (``"sparseinst_mbv2_tiny"``) or the path of a pysalient checkpoint to start from.
        weights: weights to start a registry-name model from (pysalient or official checkpoint, path or URL);
            None trains from random initialisation.
        model_config: architecture changes applied to the registry entry's config (``inst_dim=64``, ...).
        data: COCO instances json of the training set (required).
        val: COCO json validated during and after training; None skips validation.
        image_root, val_image_root: image folders of ``data`` / ``val`` (the dataset's default layout if None).
        class_agnostic: train every category as the single class "salient".
        epochs: passes over the training set (ignored when ``max_iter`` is set).
        max_iter: total iterations (optimizer steps).
        batch: images per iteration over ALL processes (detectron2's ``IMS_PER_BATCH``); each of the K
            distributed processes takes ``batch / K``.
        workers: data-loading processes per training process (0 loads in the main process).
        lr: base learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay (normalisation-layer parameters get none).
        betas: AdamW betas.
        warmup_iters: iterations of the linear warm-up (capped at a tenth of the run so short runs train).
        warmup_factor: learning-rate factor at iteration 0 of the warm-up.
        lr_steps: fractions of the run after which the learning rate is multiplied by ``gamma``.
        gamma: decay factor of each step.
        clip_grad: max L2 norm of all gradients together; None disables clipping (as official).
        amp: float16 mixed precision with loss scaling; applies on CUDA only (CPU training stays float32).
        train_sizes: shortest sides sampled per image; empty means the official multi-scale set scaled to the
            model's test size (416-640 for 640, 208-320 for 320).
        max_size: cap of the longest side after resizing.
        flip: random horizontal flips.
        eval_period: iterations between validations (0: once per epoch); also validates at the end.
        checkpoint_period: iterations between ``last.pth`` saves (0: once per epoch); also saved at the end.
        log_period: iterations between ``metrics.jsonl`` records and (off a terminal) progress lines.
        project: folder of the run directories.
        name: run directory name, numbered ``name2``, ``name3``... when taken (unless ``exist_ok``).
        exist_ok: reuse ``project/name`` even when it exists.
        resume: True continues the latest ``project/name*`` run from its ``last.pth``; a path continues that
            checkpoint; False starts a new run.
        seed: seeds Python, NumPy and torch (each distributed process adds its rank for data augmentation).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; CUDA when available if None (``cuda:LOCAL_RANK`` in DDP).
    """

    model: str = "sparseinst_mbv2_tiny"
    weights: Optional[str] = None
    model_config: Dict[str, Any] = field(default_factory=dict)
    data: str = ""
    val: Optional[str] = None
    image_root: Optional[str] = None
    val_image_root: Optional[str] = None
    class_agnostic: bool = False
    epochs: int = 36
    max_iter: Optional[int] = None
    batch: int = 8
    workers: int = 2
    lr: float = 5e-5
    weight_decay: float = 0.05
    betas: Tuple[float, float] = (0.9, 0.999)
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    lr_steps: Tuple[float, ...] = OFFICIAL_LR_STEPS
    gamma: float = 0.1
    clip_grad: Optional[float] = None
    amp: bool = True
    train_sizes: Tuple[int, ...] = ()
    max_size: int = 853
    flip: bool = True
    eval_period: int = 0
    checkpoint_period: int = 0
    log_period: int = 20
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False
    resume: Union[bool, str] = False
    seed: int = 0
    device: Optional[str] = None

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):
            object.__setattr__(self, item.name, _coerce(getattr(self, item.name), hints[item.name], item.name))
        problems = []
        positive = ("batch", "epochs", "lr", "max_size", "log_period")
        problems += [f"{key} must be > 0, got {getattr(self, key)}" for key in positive if getattr(self, key) <= 0]
        non_negative = ("workers", "weight_decay", "warmup_iters", "eval_period", "checkpoint_period")
        problems += [f"{key} must be >= 0, got {getattr(self, key)}" for key in non_negative if getattr(self, key) < 0]
        if self.max_iter is not None and self.max_iter < 1:
            problems.append(f"max_iter must be >= 1 (or None to use epochs), got {self.max_iter}")
        if not 0 < self.warmup_factor <= 1 or not 0 < self.gamma <= 1:
            problems.append(f"warmup_factor and gamma must lie in (0, 1], got {self.warmup_factor}, {self.gamma}")
        if any(not 0 < step <= 1 for step in self.lr_steps) or list(self.lr_steps) != sorted(self.lr_steps):
            problems.append(f"lr_steps must be increasing fractions of the run in (0, 1], got {self.lr_steps}")
        if any(not 0 <= beta < 1 for beta in self.betas):
            problems.append(f"betas must lie in [0, 1), got {self.betas}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            problems.append(f"clip_grad must be > 0 or None, got {self.clip_grad}")
        if any(size < 1 for size in self.train_sizes):
            problems.append(f"train_sizes must be positive, got {self.train_sizes}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (values coerced to the field types and validated)."""
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; known keys are {field_names()}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict (tuples become lists), as saved in checkpoints."""
        return {key: _jsonable(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a ValueError naming them."""
        return cls().replace(**dict(data))

    def resolved_train_sizes(self, test_size: int) -> Tuple[int, ...]:
        """``train_sizes``, or the official multi-scale set scaled from test size 640 to ``test_size``."""
        if self.train_sizes:
            return self.train_sizes
        return tuple(int(size * test_size / OFFICIAL_TEST_SIZE + 0.5) for size in OFFICIAL_TRAIN_SIZES)


def field_names() -> Tuple[str, ...]:
    """The keys a config file or ``key=value`` override may set."""
    return tuple(item.name for item in dataclasses.fields(TrainConfig))


def load_train_config(
    path: Union[None, str, os.PathLike] = None, overrides: Sequence[str] = (), **changes: Any
) -> TrainConfig:
    """Builds a :class:`TrainConfig` from defaults, then a file, then ``key=value`` strings, then keywords.

    Args:
        path: a ``.yaml`` / ``.yml`` / ``.json`` file with TrainConfig keys (None: defaults).
        overrides: ``"key=value"`` strings (``lr=1e-3``, ``train_sizes=[256,288]``, ``model_config.inst_dim=64``);
            values are parsed, then converted to the field's type.
        **changes: typed values applied last.

    Raises:
        ValueError: unknown keys, malformed overrides or values of the wrong type, each named.
    """
    values: Dict[str, Any] = dict(read_config_file(path)) if path is not None else {}
    for override in overrides:
        key, separator, text = override.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ValueError(f"override {override!r} must look like key=value")
        if key.startswith("model_config."):
            nested = dict(values.get("model_config") or {})
            nested[key[len("model_config.") :]] = parse_scalar(text)
            values["model_config"] = nested
        else:
            values[key] = _parse_override(key, text)
    values.update(changes)
    return TrainConfig.from_dict(values)


def _parse_override(key: str, text: str) -> Any:
    """The value of ``key=text``: string fields keep the text as written (``name=2024``, ``data=1e3.json``)."""
    hint = typing.get_type_hints(TrainConfig).get(key)
    if hint in (str, Optional[str]):
        stripped = text.strip()
        if hint is not str and stripped.lower() in ("none", "null", ""):
            return None
        quoted = len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\""
        return stripped[1:-1] if quoted else stripped
    if typing.get_origin(hint) is tuple and not text.strip().startswith(("[", "(")):
        return parse_scalar(f"[{text}]")  # train_sizes=256,288 as well as train_sizes=[256,288]
    return parse_scalar(text)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` converted to the type ``hint`` (file values and parsed overrides), or a ValueError naming ``name``."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        if value is None and type(None) in arguments:
            return None
        errors = []
        for option in (argument for argument in arguments if argument is not type(None)):
            try:
                return _coerce(value, option, name)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(" or ".join(errors))
    if hint is Any:
        return value
    if hint in (int, float) and isinstance(value, str) and isinstance(parse_scalar(value), (int, float)):
        value = parse_scalar(value)  # PyYAML reads 1e-3 (no dot) as a string, the YAML 1.1 rule
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{name} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
        raise ValueError(f"{name} must be a string, got {value!r}")
    if origin is tuple:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # a single number for a tuple field, e.g. train_sizes=320
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list, got {value!r}")
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_coerce(item, arguments[0], name) for item in value)
        if len(value) != len(arguments):
            raise ValueError(f"{name} must have {len(arguments)} values, got {value!r}")
        return tuple(_coerce(item, kind, name) for item, kind in zip(value, arguments))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a mapping, got {value!r}")
        return {str(key): item for key, item in value.items()}
    raise TypeError(f"TrainConfig field {name} has an unsupported type {hint}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value
