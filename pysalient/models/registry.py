"""The model registry: named entries (``family_backbone_variant``) with their config and weights spec.

A family registers itself once (:func:`register_family`: how to build a model from its config and how to
read checkpoints), then each named architecture with :func:`register_model`, decorating the function that
returns its config. ``pysalient.load(name)`` and ``pysalient.list_models()`` read this table; tests
parametrised over :func:`list_models` give every new entry build/forward/backward coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from torch import nn


@dataclass(frozen=True)
class WeightsSpec:
    """Where an entry's trained weights live and what they were trained for.

    Attributes:
        url: local path (relative paths are inside the package) or http(s) URL; the file name carries a
            sha256 prefix (``name-<hex>.pth``).
        sha256: full hex digest, verified after every download and on load.
        class_names: the classes the weights predict, index = label.
        input_size: shortest-side test size the metrics were measured at.
        metrics: e.g. ``{"AP": 71.2, "AP50": 92.0}`` and the dataset they were measured on.
        license: licence of the weights.
    """

    url: str
    sha256: Optional[str]
    class_names: Tuple[str, ...]
    input_size: int
    metrics: Mapping[str, Any] = field(default_factory=dict)
    license: str = "Apache-2.0"


@dataclass(frozen=True)
class FamilySpec:
    """How to build, load and run one model family.

    Attributes:
        name: family name, e.g. ``"sparseinst"``.
        build: config -> ``nn.Module``.
        config_from_dict: JSON dict saved in a checkpoint -> config.
        load_weights: ``(model, state_or_checkpoint, strict)`` loads weights (pysalient state dicts as well
            as the family's official checkpoint formats) and raises ValueError naming mismatched keys.
        num_classes_in: the class count a loaded checkpoint predicts, or None when it cannot tell.
        detect: ``(model, images, conf, imgsz, max_det)`` runs a batch of BGR uint8 [H, W, 3] images and
            returns one dict per image with ``masks`` bool [K, H, W], ``boxes`` [K, 4], ``scores`` [K] and
            ``labels`` [K] at the original image sizes.
        build_criterion: config -> the training loss ``nn.Module``, called as ``criterion(outputs, targets)`` on
            the network's outputs and the targets of ``prepare_batch``; returns a dict of weighted scalar losses
            whose sum is minimised.
        prepare_batch: ``(samples, config, device) -> (images, targets)`` collates data samples (see
            :mod:`pysalient.data`: BGR uint8 images already resized by the transforms, bool masks, int64
            labels) into the network input [B, 3, Hp, Wp] and one target dict per image.
    """

    name: str
    build: Callable[[Any], nn.Module]
    config_from_dict: Callable[[Dict[str, Any]], Any]
    load_weights: Callable[[nn.Module, Mapping[str, Any], bool], Any]
    num_classes_in: Callable[[Mapping[str, Any]], Optional[int]]
    detect: Callable[..., List[Dict[str, Any]]]
    build_criterion: Callable[[Any], nn.Module]
    prepare_batch: Callable[..., Tuple[Any, List[Dict[str, Any]]]]


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    Attributes:
        name: registry name, ``family_backbone_variant``.
        family: the :class:`FamilySpec` name.
        make_config: ``(num_classes=..., **changes) -> config``.
        weights: default weights, or None (the model is then randomly initialised).
        description: first line of the config function's docstring.
    """

    name: str
    family: str
    make_config: Callable[..., Any]
    weights: Optional[WeightsSpec]
    description: str


_FAMILIES: Dict[str, FamilySpec] = {}
_MODELS: Dict[str, ModelEntry] = {}
_DEFAULT_OF_FAMILY: Dict[str, str] = {}


def register_family(spec: FamilySpec) -> FamilySpec:
    """Adds a model family; registering the same name twice is an error."""
    if spec.name in _FAMILIES:
        raise ValueError(f"model family {spec.name!r} is already registered")
    _FAMILIES[spec.name] = spec
    return spec


def register_model(
    name: str, *, family: str, weights: Optional[WeightsSpec] = None, default: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a config function under ``name``.

    Args:
        name: registry name (``family_backbone_variant``).
        family: name of a registered family.
        weights: the entry's default weights.
        default: whether ``pysalient.load(family)`` means this entry.
    """

    def decorator(make_config: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        if family not in _FAMILIES:
            raise ValueError(f"register the family {family!r} before its model {name!r}")
        description = (make_config.__doc__ or "").strip().splitlines()[0] if make_config.__doc__ else ""
        _MODELS[name] = ModelEntry(name, family, make_config, weights, description)
        if default:
            if family in _DEFAULT_OF_FAMILY:
                raise ValueError(f"family {family!r} already has the default entry {_DEFAULT_OF_FAMILY[family]!r}")
            _DEFAULT_OF_FAMILY[family] = name
        return make_config

    return decorator


def list_models(family: Optional[str] = None, pretrained: bool = False) -> List[str]:
    """Sorted registry names, optionally of one family or only those with default weights."""
    return sorted(
        name
        for name, entry in _MODELS.items()
        if (family is None or entry.family == family) and (not pretrained or entry.weights is not None)
    )


def get_model_entry(name: str) -> ModelEntry:
    """The entry called ``name``; a family name means that family's default entry."""
    name = _DEFAULT_OF_FAMILY.get(name, name)
    if name not in _MODELS:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(list_models())} (or a family name: "
            f"{', '.join(sorted(_DEFAULT_OF_FAMILY))})"
        )
    return _MODELS[name]


def get_family(name: str) -> FamilySpec:
    """The registered family called ``name``."""
    if name not in _FAMILIES:
        raise ValueError(f"unknown model family {name!r}; available: {sorted(_FAMILIES)}")
    return _FAMILIES[name]
