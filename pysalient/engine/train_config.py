"""The training configuration: one typed dataclass, filled from a YAML/JSON file and ``key=value`` overrides.

The optimisation and data settings default to None, meaning "the family's published recipe"
(:class:`pysalient.models.family.TrainRecipe`, e.g. SparseInst's AdamW 5e-5 with multi-scale 416-640 training, or
RDPNet's SGD with a constant warm-up): :meth:`TrainConfig.resolved` fills them in once the model is known, and the
resolved config is what a run saves (``config.json``, the ``train_config`` of its checkpoints), so a resumed run
continues with exactly those values. The config is saved as a dict inside every training checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import textwrap
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from pysalient.engine.config_file import parse_scalar, read_config_file
from pysalient.models.family import TrainRecipe
from pysalient.utils.text import plain_text

# The settings a family's TrainRecipe provides when the TrainConfig leaves them None.
RECIPE_FIELDS = (
    "optimizer",
    "lr",
    "momentum",
    "betas",
    "weight_decay",
    "weight_decay_bias",
    "weight_decay_norm",
    "bias_lr_factor",
    "warmup",
    "warmup_iters",
    "warmup_factor",
    "schedule",
    "lr_steps",
    "gamma",
    "max_size",
    "batch",
    "epochs",
    "flip",
    "clip_grad",
    "amp",
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the model's own architecture config.

    Attributes:
        model: registry name (``"sparseinst_mbv2_tiny"``) or the path of a pysalient checkpoint to start from.
        weights: weights to start a registry-name model from (pysalient or official checkpoint, path or URL);
            None starts from the entry's packaged weights when it has them (layers of another shape, such as the
            class layer for another class count, keep their initialisation) and from random initialisation
            otherwise; ``"none"`` always starts from random initialisation. The run's ``config.json`` records
            what it started from.
        model_config: architecture changes applied to the registry entry's config (``inst_dim=64``, ...).
        data: COCO instances json of the training set (required).
        val: COCO json validated during and after training; None skips validation.
        image_root, val_image_root: image folders of ``data`` / ``val`` (the dataset's default layout if None).
        class_agnostic: train every category as the single class "salient".
        recipe: a named recipe of the model's family (e.g. SPRNet's ``"paper"``) instead of its default; None is
            the default recipe.
        Every field marked "(recipe)" defaults to None: the family's :class:`~pysalient.models.family.TrainRecipe`.

        epochs: passes over the training set, ignored when ``max_iter`` is set (recipe).
        max_iter: total iterations (optimizer steps).
        batch: images per iteration over ALL processes (detectron2's ``IMS_PER_BATCH``); each of the K
            distributed processes takes ``batch / K`` (recipe).
        workers: data-loading processes per training process (0 loads in the main process).
        optimizer: ``"sgd"`` or ``"adamw"`` (recipe).
        lr: base learning rate (recipe).
        momentum: SGD momentum (recipe).
        betas: AdamW betas (recipe).
        weight_decay: decay of weights (recipe).
        weight_decay_bias: decay of biases; None in the recipe means ``weight_decay`` (recipe).
        weight_decay_norm: decay of normalisation-layer parameters (recipe).
        bias_lr_factor: learning-rate factor of biases (recipe).
        warmup: ``"linear"`` or ``"constant"`` warm-up (recipe).
        warmup_iters: warm-up length (capped at a tenth of the run so short runs train) (recipe).
        warmup_factor: learning-rate factor at the start of (linear) or during (constant) the warm-up (recipe).
        schedule: ``"step"`` or ``"cosine"`` (recipe).
        lr_steps: fractions of the run after which a step schedule multiplies the rate by ``gamma`` (recipe).
        gamma: decay factor of each step (recipe).
        clip_grad: max L2 norm of all gradients together; 0 disables clipping (recipe).
        amp: float16 mixed precision with loss scaling; applies on CUDA only (CPU training stays float32) (recipe).
        train_sizes: shortest sides sampled per image; None means the recipe's sizes scaled from its reference
            test size to the model's (SparseInst: 416-640 for 640, 208-320 for 320). Fixed-size families ignore it.
        max_size: cap of the longest side after resizing (recipe).
        flip: random horizontal flips (recipe).
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
    recipe: Optional[str] = None
    epochs: Optional[int] = None
    max_iter: Optional[int] = None
    batch: Optional[int] = None
    workers: int = 2
    optimizer: Optional[str] = None
    lr: Optional[float] = None
    momentum: Optional[float] = None
    betas: Optional[Tuple[float, float]] = None
    weight_decay: Optional[float] = None
    weight_decay_bias: Optional[float] = None
    weight_decay_norm: Optional[float] = None
    bias_lr_factor: Optional[float] = None
    warmup: Optional[str] = None
    warmup_iters: Optional[int] = None
    warmup_factor: Optional[float] = None
    schedule: Optional[str] = None
    lr_steps: Optional[Tuple[float, ...]] = None
    gamma: Optional[float] = None
    clip_grad: Optional[float] = None
    amp: Optional[bool] = None
    train_sizes: Optional[Tuple[int, ...]] = None
    max_size: Optional[int] = None
    flip: Optional[bool] = None
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
        given = {key: getattr(self, key) for key in field_names() if getattr(self, key) is not None}
        positive = ("batch", "epochs", "lr", "max_size", "log_period", "bias_lr_factor")
        problems += [f"{key} must be > 0, got {given[key]}" for key in positive if key in given and given[key] <= 0]
        non_negative = ("workers", "weight_decay", "weight_decay_bias", "weight_decay_norm", "warmup_iters")
        non_negative += ("eval_period", "checkpoint_period", "clip_grad", "momentum")
        problems += [f"{key} must be >= 0, got {given[key]}" for key in non_negative if key in given and given[key] < 0]
        if self.max_iter is not None and self.max_iter < 1:
            problems.append(f"max_iter must be >= 1 (or None to use epochs), got {self.max_iter}")
        for key in ("warmup_factor", "gamma"):
            if key in given and not 0 < given[key] <= 1:
                problems.append(f"{key} must lie in (0, 1], got {given[key]}")
        steps = given.get("lr_steps", ())
        if any(not 0 < step <= 1 for step in steps) or list(steps) != sorted(steps):
            problems.append(f"lr_steps must be increasing fractions of the run in (0, 1], got {steps}")
        if any(not 0 <= beta < 1 for beta in given.get("betas", ())):
            problems.append(f"betas must lie in [0, 1), got {self.betas}")
        if any(size < 1 for size in given.get("train_sizes", ())):
            problems.append(f"train_sizes must be positive, got {self.train_sizes}")
        for key, choices in (("optimizer", ("sgd", "adamw")), ("warmup", ("linear", "constant"))):
            if key in given and given[key] not in choices:
                problems.append(f"{key} must be one of {choices}, got {given[key]!r}")
        if "schedule" in given and given["schedule"] not in ("step", "cosine"):
            problems.append(f"schedule must be one of ('step', 'cosine'), got {given['schedule']!r}")
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

    def resolved(self, recipe: TrainRecipe, test_size: Optional[int] = None) -> TrainConfig:
        """This config with every unset (None) recipe field taken from ``recipe``; explicit values win.

        Args:
            recipe: the family's training recipe.
            test_size: the model's test size (``input_spec().min_size``); when given, unset ``train_sizes`` become
                :meth:`resolved_train_sizes` (what the trainer does, so the saved config is complete); when None,
                ``train_sizes`` stay as they are.
        """
        changes: Dict[str, Any] = {key: getattr(recipe, key) for key in RECIPE_FIELDS if getattr(self, key) is None}
        if changes.get("clip_grad", 0) is None:
            changes["clip_grad"] = 0.0  # the recipe's "no clipping"
        if "weight_decay_bias" in changes and changes["weight_decay_bias"] is None:
            changes["weight_decay_bias"] = changes.get("weight_decay", self.weight_decay)  # detectron2's default
        if self.train_sizes is None and test_size is not None:
            changes["train_sizes"] = self.resolved_train_sizes(test_size, recipe)
        return self.replace(**changes) if changes else self

    def resolved_train_sizes(self, test_size: int, recipe: TrainRecipe) -> Tuple[int, ...]:
        """The training shortest sides: ``train_sizes`` when set, else the recipe's scaled to ``test_size``
        (:func:`scaled_train_sizes`; SparseInst's 416-640 for 640 give 208-320 for 320)."""
        return self.train_sizes if self.train_sizes is not None else scaled_train_sizes(recipe, test_size)

    @property
    def is_resolved(self) -> bool:
        """Whether every recipe field has a value (what the trainer and a saved run need)."""
        return all(getattr(self, key) is not None for key in (*RECIPE_FIELDS, "train_sizes"))


def scaled_train_sizes(recipe: TrainRecipe, test_size: int) -> Tuple[int, ...]:
    """The recipe's training sizes for a model tested at ``test_size`` (SparseInst's 416-640 at 640 -> 208-320).

    Sizes are scaled by ``test_size / recipe.reference_test_size`` and rounded half up; sizes that round to the same
    value are kept once. A recipe without a reference test size gives its sizes unchanged, one without sizes the test
    size alone.
    """
    if not recipe.train_sizes:
        return (int(test_size),)
    if recipe.reference_test_size <= 0:
        return tuple(recipe.train_sizes)
    scaled = (int(size * test_size / recipe.reference_test_size + 0.5) for size in recipe.train_sizes)
    return tuple(dict.fromkeys(scaled))


def field_names() -> Tuple[str, ...]:
    """The keys a config file or ``key=value`` override may set."""
    return tuple(item.name for item in dataclasses.fields(TrainConfig))


def settings_help() -> str:
    """Every ``KEY=VALUE`` setting with its default and its description (from :class:`TrainConfig`'s docstring), for
    ``pysalient train --help``; ``(recipe)`` settings show ``recipe``: the model family's value."""
    descriptions = _attribute_descriptions(TrainConfig.__doc__ or "")
    defaults = TrainConfig()
    rows = []
    for item in dataclasses.fields(TrainConfig):
        value = getattr(defaults, item.name)
        if value is None:
            shown = "recipe" if item.name in RECIPE_FIELDS else "unset"
        else:
            shown = json.dumps(_jsonable(value))
        rows.append((f"{item.name}={shown}", plain_text(descriptions.get(item.name, "").replace(" (recipe)", ""))))
    width = max(len(key) for key, _ in rows)
    lines = [
        "settings (KEY=VALUE, after the config file; architecture changes as model_config.KEY=VALUE; 'recipe': the",
        "model family's training recipe decides; 'unset': see the description):",
    ]
    for key, text in rows:
        wrapped = textwrap.wrap(text, 118 - width - 4) or [""]
        lines.append(f"  {key.ljust(width)}  {wrapped[0]}")
        lines.extend(" " * (width + 4) + more for more in wrapped[1:])
    return "\n".join(lines)


def _attribute_descriptions(docstring: str) -> Dict[str, str]:
    """``{name: text}`` of a Google-style ``Attributes:`` section (``a, b: text`` gives both names the text)."""
    descriptions: Dict[str, str] = {}
    names: List[str] = []
    in_section = False
    for line in docstring.splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            in_section = True
            continue
        if not in_section or not stripped:
            continue
        match = re.match(r"^\s{8}([a-z_][a-z0-9_, ]*):\s(.*)$", line)
        if match:
            names = [name.strip() for name in match.group(1).split(",")]
            for name in names:
                descriptions[name] = match.group(2).strip()
        elif len(line) - len(line.lstrip()) <= 8:  # a paragraph of the section, not a continuation
            names = []
        elif names:
            for name in names:
                descriptions[name] += " " + stripped
    return descriptions


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
    if typing.get_origin(hint) is Union:  # Optional[X]: parse as X ("none" / "null" give None)
        if text.strip().lower() in ("none", "null"):
            return None
        hint = next(argument for argument in typing.get_args(hint) if argument is not type(None))
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
