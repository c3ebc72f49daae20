"""What every family config provides: the base :class:`FamilyConfig`, the test-time :class:`InferenceSpec` and
the family's :class:`TrainRecipe`.

The engine, the export code and the CLI talk to a family only through these types and
:class:`pysalient.models.registry.FamilySpec`; none of them reads a family's own field names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

from pysalient.inputs import InputSpec

ConfigT = TypeVar("ConfigT", bound="FamilyConfig")

DEFAULT_CONF = 0.3  # the one default minimum score of predict in the API, the CLI and the C++ runtime
EVALUATION_CONF = 0.0  # evaluate keeps every instance the family's own candidate rules produce (AP needs the tail)


def check_conf(conf: Any, name: str = "conf") -> float:
    """``conf`` as a float in [0, 1]; ValueError naming ``name`` for anything else (NaN, bools, strings)."""
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not math.isfinite(conf) or not 0 <= conf <= 1:
        raise ValueError(f"{name} must be a number in [0, 1] (the minimum score of a returned instance), got {conf!r}")
    return float(conf)


@dataclass(frozen=True)
class InferenceSpec:
    """What a family's detector applies at test time; baked into exported graphs (``score_threshold`` is only
    their default: the graph takes the threshold as a run-time input).

    Attributes:
        score_threshold: minimum final score of a returned instance (the API's ``conf``), applied last.
        mask_threshold: binarisation threshold of mask probabilities.
        nms_threshold: IoU of the final NMS, or None for NMS-free families (SparseInst).
        max_det: at most this many instances per image, the highest scores first.
    """

    score_threshold: float = DEFAULT_CONF
    mask_threshold: float = 0.5
    nms_threshold: Optional[float] = None
    max_det: int = 100

    def __post_init__(self) -> None:
        check_conf(self.score_threshold, "score_threshold")
        problems: List[str] = []
        if not (isinstance(self.mask_threshold, (int, float)) and 0 <= self.mask_threshold < 1):
            problems.append(f"mask_threshold must lie in [0, 1), got {self.mask_threshold!r}")
        if self.nms_threshold is not None and not 0 < self.nms_threshold <= 1:
            problems.append(f"nms_threshold must lie in (0, 1] or be None, got {self.nms_threshold!r}")
        if isinstance(self.max_det, bool) or not isinstance(self.max_det, int) or self.max_det < 1:
            problems.append(f"max_det must be a positive int, got {self.max_det!r}")
        if problems:
            raise ValueError("invalid InferenceSpec: " + "; ".join(problems))

    def replace(self, **changes: Any) -> InferenceSpec:
        """A copy with ``changes`` applied; None values mean "keep" (the API's unset arguments)."""
        return dataclasses.replace(self, **{key: value for key, value in changes.items() if value is not None})


@dataclass(frozen=True)
class TrainRecipe:
    """A family's published training recipe; :class:`pysalient.engine.train_config.TrainConfig` only overrides it.

    Attributes:
        optimizer: ``"sgd"`` or ``"adamw"``.
        lr: base learning rate (for the recipe's ``batch``).
        momentum: SGD momentum (ignored by AdamW).
        betas: AdamW betas (ignored by SGD).
        weight_decay: decay of weights.
        weight_decay_bias: decay of biases (None: ``weight_decay``, detectron2's default).
        weight_decay_norm: decay of normalisation-layer parameters.
        bias_lr_factor: learning-rate factor of biases (detectron2 ``BIAS_LR_FACTOR``).
        warmup: ``"linear"`` (from ``warmup_factor`` to 1) or ``"constant"`` (``warmup_factor`` throughout).
        warmup_iters: warm-up length in iterations (capped at a tenth of the run).
        warmup_factor: learning-rate factor at the start of (or, constant, during) the warm-up.
        schedule: ``"step"`` (x ``gamma`` at each of ``lr_steps``) or ``"cosine"`` (to 0 at the end of the run).
        lr_steps: fractions of the run after which a step schedule multiplies the rate by ``gamma``.
        gamma: decay per step.
        train_sizes: training sizes of the shortest side for a test size of ``reference_test_size``
            (scaled to the model's; a fixed-size family resizes to its own input size and ignores them).
        reference_test_size: test size the ``train_sizes`` were published for.
        max_size: cap of the longest side when training.
        batch: images per iteration.
        epochs: passes over the training set.
        flip: random horizontal flips.
        clip_grad: max gradient norm, None for no clipping.
        amp: float16 mixed precision on CUDA.
    """

    optimizer: str = "adamw"
    lr: float = 5e-5
    momentum: float = 0.9
    betas: Tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    weight_decay_bias: Optional[float] = None
    weight_decay_norm: float = 0.0
    bias_lr_factor: float = 1.0
    warmup: str = "linear"
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    schedule: str = "step"
    lr_steps: Tuple[float, ...] = ()
    gamma: float = 0.1
    train_sizes: Tuple[int, ...] = ()
    reference_test_size: int = 0
    max_size: int = 1333
    batch: int = 8
    epochs: int = 12
    flip: bool = True
    clip_grad: Optional[float] = None
    amp: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"TrainRecipe.optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.warmup not in ("linear", "constant"):
            raise ValueError(f"TrainRecipe.warmup must be 'linear' or 'constant', got {self.warmup!r}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"TrainRecipe.schedule must be 'step' or 'cosine', got {self.schedule!r}")

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self.__dict__.items()}


@dataclass(frozen=True)
class FamilyConfig:
    """Base of every family config: JSON-able fields only (ints, floats, strings, bools, tuples of them).

    ``to_dict`` / ``from_dict`` / ``replace`` and the validation that turns every problem into ONE ValueError are
    written here once. A subclass declares its fields, overrides :meth:`validate` (returning problem strings),
    :meth:`input_spec` and :meth:`inference_spec`, and may list renamed keys in ``LEGACY_KEYS`` so old
    checkpoints still load.

    Attributes:
        num_classes: 1 = class-agnostic salient instances, 80 = COCO.
    """

    num_classes: int = 1

    LEGACY_KEYS = {}  # type: Mapping[str, str]  # old key -> current key (class attribute, not a field)

    def __post_init__(self) -> None:
        problems = self.validate()
        if problems:
            raise ValueError(f"invalid {type(self).__name__}: " + "; ".join(problems))

    def validate(self) -> List[str]:
        """The problems of this config (empty when valid); subclasses extend the list."""
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            return [f"num_classes must be an int >= 1, got {self.num_classes!r}"]
        return []

    def input_spec(self) -> InputSpec:
        """Channel order, normalisation, resize rule and padding of the network input."""
        raise NotImplementedError(f"{type(self).__name__} must define input_spec()")

    def inference_spec(self) -> InferenceSpec:
        """Thresholds and detection cap of the family's detector."""
        raise NotImplementedError(f"{type(self).__name__} must define inference_spec()")

    def replace(self: ConfigT, **changes: Any) -> ConfigT:
        """A copy with ``changes`` applied (and validated); unknown keys raise a ValueError naming them."""
        self._check_keys(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict (tuples become lists), as saved in checkpoints."""
        return {item.name: _jsonable(getattr(self, item.name)) for item in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: Type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
        """Inverse of :meth:`to_dict`; legacy keys are renamed, unknown keys raise a ValueError naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a {cls.__name__} is read from a mapping, got {type(data).__name__}")
        values = {cls.LEGACY_KEYS.get(key, key): _from_json(value) for key, value in data.items()}
        cls._check_keys(values)
        return cls(**values)

    @classmethod
    def _check_keys(cls, values: Mapping[str, Any]) -> None:
        known = sorted(item.name for item in dataclasses.fields(cls))
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; known keys are {known}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_json(item) for item in value)
    return value
