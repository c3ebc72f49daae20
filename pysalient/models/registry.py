"""The model registry: named entries (``family_backbone_variant``) with their config and weights spec.

A family registers itself once (:func:`register_family`: how to build a model from its config and how to
read checkpoints), then each named architecture with :func:`register_model`, decorating the function that
returns its config. ``pysalient.load(name)`` and ``pysalient.list_models()`` read this table; tests
parametrised over :func:`list_models` give every new entry build/forward/backward coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type

from torch import nn

from pysalient.models.family import FamilyConfig, InferenceSpec, TrainRecipe
from pysalient.utils.text import plain_text


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
        trained_on: the training data, in words (``pysalient models`` shows it).
        fit_for: what the weights are fit for, e.g. ``"synthetic demo"``: weights trained on synthetic data only
            find regions of similar colour on photographs, not salient objects.
    """

    url: str
    sha256: Optional[str]
    class_names: Tuple[str, ...]
    input_size: int
    metrics: Mapping[str, Any] = field(default_factory=dict)
    license: str = "Apache-2.0"
    trained_on: str = ""
    fit_for: str = ""


SYNTHSIS_TEST_SPLIT = "SynthSIS test split, 300 images of 256x256, seed 7 (never used for training)"


def synthsis_demo_weights(file_name: str, sha256: str, input_size: int, mask_ap: Mapping[str, float]) -> WeightsSpec:
    """The :class:`WeightsSpec` of a light entry's weights shipped in the package: trained on SynthSIS only (one class,
    "salient"), a synthetic demo; ``mask_ap`` holds the held-out test split's AP, AP50, AP70, AP75."""
    return WeightsSpec(
        url=f"weights/{file_name}",
        sha256=sha256,
        class_names=("salient",),
        input_size=input_size,
        metrics={"dataset": SYNTHSIS_TEST_SPLIT, **dict(mask_ap)},
        trained_on="SynthSIS only (procedural shapes on procedural backgrounds, 1 class)",
        fit_for="synthetic demo, not fit for photographs",
    )


@dataclass(frozen=True)
class PublishedWeights:
    """Trained weights published by an architecture's authors, which pysalient does not ship or download (their
    licence or hosting does not allow it) but converts on load: ``pysalient.load(entry, weights=file_name)``.

    Attributes:
        file_name: the file as published.
        source: where it is published, in words (the repository and the section of its README).
        trained_on: the dataset.
        license: the licence of the weights.
    """

    file_name: str
    source: str
    trained_on: str
    license: str


@dataclass(frozen=True)
class FamilySpec:
    """Everything the engine, the export code and the CLI know about a model family (the family contract).

    Attributes:
        name: family name, e.g. ``"sparseinst"``.
        config_type: the family's :class:`~pysalient.models.family.FamilyConfig` subclass (checkpoints store
            ``config.to_dict()`` and are read back with ``config_type.from_dict``).
        build: config -> network, called as ``network(images, targets=None)``: ``images`` [B, 3, Hp, Wp]
            normalised and padded (:mod:`pysalient.inputs`), ``targets`` (training only) one dict per image with
            ``labels`` int64 [K], ``boxes`` float32 [K, 4] and ``masks`` bool [K, Hp, Wp] in the padded frame
            (:func:`pysalient.data.collate.collate`). Target-dependent sampling (RoIs, windows, pixels) happens
            inside this forward, so it runs inside the DDP forward. Returns a dict of tensors.
        build_detector: ``(network, config, inference) -> detector``: a scriptable, exportable module called as
            ``detector(images, image_sizes, output_sizes, conf)`` with ``images`` the padded batch, ``image_sizes``
            and ``output_sizes`` ``List[List[int]]`` (the resized size inside the padding and the size of the
            returned masks, per image) and ``conf`` a float32 0-d tensor, the minimum score of a returned instance
            (applied last, before masks are pasted at full size). It returns per image ``(boxes float32 [K, 4],
            scores float32 [K], labels int64 [K], masks uint8 [K, H, W])`` by decreasing score. Eager ``predict``
            and the exported graphs run this same module.
        build_criterion: config -> the training loss module, ``criterion(outputs, targets)`` -> dict of weighted
            float32 scalars whose sum is minimised.
        train_recipe: the family's published recipe (:class:`~pysalient.models.family.TrainRecipe`); training
            settings left unset take its values.
        load_weights: ``(network, state_or_checkpoint, strict)`` loads weights (pysalient state dicts as well as
            the family's official checkpoint formats) and raises ValueError naming mismatched keys.
        num_classes_in: the class count a loaded checkpoint predicts, or None when it cannot tell.
        named_recipes: further recipes by name (e.g. a paper's own next to a practical default), chosen with
            ``TrainConfig(recipe=name)``; ``train_recipe`` is the default.
    """

    name: str
    config_type: Type[FamilyConfig]
    build: Callable[[Any], nn.Module]
    build_detector: Callable[[nn.Module, Any, InferenceSpec], nn.Module]
    build_criterion: Callable[[Any], nn.Module]
    train_recipe: TrainRecipe
    load_weights: Callable[[nn.Module, Mapping[str, Any], bool], Any]
    num_classes_in: Callable[[Mapping[str, Any]], Optional[int]]
    named_recipes: Mapping[str, TrainRecipe] = field(default_factory=dict)

    def recipe(self, name: Optional[str] = None) -> TrainRecipe:
        """The recipe called ``name`` (None: the default ``train_recipe``).

        Raises:
            ValueError: an unknown name, with the known ones.
        """
        if name is None:
            return self.train_recipe
        if name not in self.named_recipes:
            known = sorted(self.named_recipes) or "none"
            raise ValueError(f"family {self.name!r} has no training recipe {name!r}; named recipes: {known}")
        return self.named_recipes[name]

    def config_from_dict(self, data: Mapping[str, Any]) -> FamilyConfig:
        """The family config saved in a checkpoint (``config.to_dict()``); ValueError on unknown keys."""
        return self.config_type.from_dict(data)


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    Attributes:
        name: registry name, ``family_backbone_variant``.
        family: the :class:`FamilySpec` name.
        make_config: ``(num_classes=..., **changes) -> config``.
        weights: default weights, or None (the model is then randomly initialised).
        description: first line of the config function's docstring, as plain text (no reST markup).
        published: the authors' published weights for this architecture, when there are any.
    """

    name: str
    family: str
    make_config: Callable[..., Any]
    weights: Optional[WeightsSpec]
    description: str
    published: Optional[PublishedWeights] = None


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
    name: str,
    *,
    family: str,
    weights: Optional[WeightsSpec] = None,
    default: bool = False,
    published: Optional[PublishedWeights] = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a config function under ``name``.

    Args:
        name: registry name (``family_backbone_variant``).
        family: name of a registered family.
        weights: the entry's default weights.
        default: whether ``pysalient.load(family)`` means this entry.
        published: the authors' published weights of this architecture (not shipped; converted on load).
    """

    def decorator(make_config: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        description = (make_config.__doc__ or "").strip().splitlines()[0] if make_config.__doc__ else ""
        _MODELS[name] = ModelEntry(name, family, make_config, weights, plain_text(description), published)
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
    """The entry called ``name``; a family name means that family's default entry.

    Raises:
        ValueError: unknown names, or an entry whose family was never registered (checked here, at lookup, so
            a family folder may decorate its presets before it registers the family).
    """
    name = _DEFAULT_OF_FAMILY.get(name, name)
    if not isinstance(name, str) or name not in _MODELS:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(list_models())} (or a family name: "
            f"{', '.join(sorted(_DEFAULT_OF_FAMILY))})"
        )
    entry = _MODELS[name]
    if entry.family not in _FAMILIES:
        raise ValueError(f"model {name!r} belongs to the family {entry.family!r}, which is not registered")
    return entry


def list_families() -> List[str]:
    """Sorted names of the registered families."""
    return sorted(_FAMILIES)


def get_family(name: str) -> FamilySpec:
    """The registered family called ``name``."""
    if name not in _FAMILIES:
        raise ValueError(f"unknown model family {name!r}; available: {sorted(_FAMILIES)}")
    return _FAMILIES[name]
