"""Everything the trainer builds before its first iteration: the run to resume, the network, the data.

Kept apart from the loop (:mod:`pysalient.engine.trainer`) so each can be read on its own.
"""

from __future__ import annotations

import dataclasses
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from pysalient.engine import distributed as dist_utils
from pysalient.engine.checkpoint import is_pysalient_checkpoint, read_checkpoint
from pysalient.engine.distributed import DistributedContext
from pysalient.engine.hub import resolve_weights
from pysalient.engine.model import SalientModel
from pysalient.engine.run_files import latest_run_checkpoint, new_run_dir, remove_stale_temporaries
from pysalient.engine.train_config import TrainConfig
from pysalient.inputs import InputSpec
from pysalient.models.family import FamilyConfig
from pysalient.models.registry import FamilySpec, get_family, get_model_entry

# Settings a resumed run may change: they do not alter what is computed, only where and how it is reported
# (validation only reads the weights). epochs / max_iter may be raised to train longer; the learning-rate
# milestones then follow the new length.
RESUME_MAY_CHANGE = (
    "device",
    "workers",
    "val",
    "val_image_root",
    "eval_period",
    "checkpoint_period",
    "log_period",
    "epochs",
    "max_iter",
)
RESUME_IGNORES = ("resume", "project", "name", "exist_ok")  # the run directory is the checkpoint's


@dataclass
class NetworkSetup:
    """The network being trained and what describes it.

    Attributes:
        network: the ``nn.Module`` (trained in place).
        family: its family's contract.
        config: the family's model config.
        name: registry entry name (saved in checkpoints).
        class_names: class index -> name.
        weights: the weights training started from (a file), ``"none"`` (random initialisation) or None (the
            network came with its weights: a model trained in place, a checkpoint being resumed).
    """

    network: nn.Module
    family: FamilySpec
    config: FamilyConfig
    name: str
    class_names: Tuple[str, ...]
    weights: Optional[str] = None


def seed_everything(seed: int) -> None:
    """Seeds Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resume_checkpoint_path(config: TrainConfig) -> Optional[Path]:
    """The training checkpoint ``config.resume`` designates, or None for a new run.

    Raises:
        FileNotFoundError: the path, or every ``last.pth`` of ``project/name*``, is missing.
    """
    if config.resume is False:
        return None
    if config.resume is True:
        return latest_run_checkpoint(config.project, config.name)
    path = Path(config.resume)
    if path.is_dir():
        path = path / "last.pth"
    if not path.is_file():
        raise FileNotFoundError(f"resume={config.resume!r}: checkpoint {path} not found")
    return path


def merged_resume_config(saved: Mapping[str, Any], requested: TrainConfig) -> TrainConfig:
    """The saved config of the run being resumed, with the changes a resumed run allows.

    A field counts as requested when it differs from the TrainConfig default (for the recipe fields, whose default
    is None, "the family's recipe": any value given counts; the saved config is the resolved one). Requests equal to
    the saved value are fine; ``RESUME_MAY_CHANGE`` fields take the requested value; any other difference would make
    the continuation a different run, so it raises.

    Raises:
        ValueError: naming the settings that differ from the checkpoint's.
    """
    config = TrainConfig.from_dict(saved)
    defaults = TrainConfig()
    changes, conflicts = {}, []
    for item in dataclasses.fields(TrainConfig):
        key = item.name
        wanted = getattr(requested, key)
        if key in RESUME_IGNORES or wanted == getattr(defaults, key) or wanted == getattr(config, key):
            continue
        if key in RESUME_MAY_CHANGE:
            changes[key] = wanted
        else:
            conflicts.append(f"{key}={wanted!r} (the run has {getattr(config, key)!r})")
    if conflicts:
        raise ValueError(
            "a resumed run continues with its saved settings; these requests differ from them: "
            + ", ".join(conflicts)
            + " (start a new run instead, or drop them)"
        )
    if "max_iter" not in changes and "epochs" in changes and config.max_iter is not None:
        changes["max_iter"] = None  # the request counts in epochs, which max_iter would otherwise override
    return config.replace(**changes)


def resolve_run(
    requested: TrainConfig, context: DistributedContext
) -> Tuple[TrainConfig, Path, Optional[Path], Optional[Mapping[str, Any]]]:
    """The run to execute: a new one (rank 0 creates its numbered directory) or the one ``resume`` designates.

    Returns:
        ``(config, run_dir, checkpoint_path, checkpoint)``; the last two are None for a new run.

    Raises:
        ValueError: resuming from a model-only checkpoint, or with settings that differ from the saved ones.
    """
    path = dist_utils.broadcast_object(resume_checkpoint_path(requested) if context.is_main else None, context)
    if path is None:
        made = new_run_dir(requested.project, requested.name, requested.exist_ok) if context.is_main else None
        return requested, Path(dist_utils.broadcast_object(made, context)), None, None
    checkpoint = read_checkpoint(path)
    if "train_config" not in checkpoint:
        raise ValueError(
            f"{path} is a model checkpoint, not a training checkpoint: start a new run from it with "
            f"model={str(path)!r} instead of resuming"
        )
    config = merged_resume_config(checkpoint["train_config"], requested)
    if context.is_main:  # what a killed save left behind; the checkpoint being resumed is complete
        for stale in remove_stale_temporaries(Path(path).parent):
            print(f"removed {stale.name}, left by an interrupted save")
    return config, Path(path).parent, Path(path), checkpoint


def build_network(
    config: TrainConfig,
    model: Optional[SalientModel],
    checkpoint: Optional[Mapping[str, Any]],
    class_names: Sequence[str],
) -> NetworkSetup:
    """The network to train: ``model``'s own, the one a checkpoint describes, or a registry architecture.

    Args:
        config: gives ``model`` (registry name or checkpoint path), ``weights`` and ``model_config``.
        model: train this model's network in place (``SalientModel.train``).
        checkpoint: a training checkpoint being resumed (its architecture; weights are loaded by the trainer).
        class_names: the training set's classes; the network must predict as many.

    Raises:
        ValueError: class-count or architecture mismatches, unknown names, ``model_config`` with a checkpoint.
    """
    if checkpoint is not None:
        family = get_family(checkpoint["family"])
        model_config = family.config_from_dict(checkpoint["config"])
        if model is not None and model.config.to_dict() != model_config.to_dict():
            raise ValueError("the checkpoint being resumed has another architecture than this model")
        network = model.network if model is not None else family.build(model_config)
        setup = NetworkSetup(network, family, model_config, checkpoint["name"], tuple(checkpoint["class_names"]))
    elif model is not None:
        setup = NetworkSetup(model.network, model.family, model.config, model.name, tuple(model.names.values()))
    elif Path(config.model).suffix in (".pt", ".pth", ".ckpt"):
        if config.model_config or config.weights:
            raise ValueError("model_config and weights apply to registry names, not to a checkpoint path model")
        from pysalient.engine.loader import load  # the loader imports the whole registry

        loaded = load(config.model, device="cpu")
        setup = NetworkSetup(loaded.network, loaded.family, loaded.config, loaded.name, tuple(loaded.names.values()))
    else:
        if "num_classes" in config.model_config:
            raise ValueError("num_classes comes from the training set (or class_agnostic=True), not model_config")
        entry = get_model_entry(config.model)
        family = get_family(entry.family)
        model_config = entry.make_config(num_classes=len(class_names), **config.model_config)
        network = family.build(model_config)
        start = starting_weights(config.weights, entry.weights)
        if start is not None:
            load_starting_weights(network, family, start)
        setup = NetworkSetup(network, family, model_config, entry.name, tuple(class_names), start or NO_WEIGHTS)
    classes = int(setup.config.num_classes)
    if classes != len(class_names):
        raise ValueError(
            f"the model predicts {classes} classes but the training set has {len(class_names)} "
            f"({', '.join(class_names)}): set class_agnostic=True or train a model with {len(class_names)} classes"
        )
    return dataclasses.replace(setup, class_names=tuple(class_names))


NO_WEIGHTS = "none"  # weights=none: train a registry architecture from random initialisation


def starting_weights(requested: Optional[str], packaged: Any) -> Optional[str]:
    """The weights a registry architecture starts training from.

    Args:
        requested: ``TrainConfig.weights``: a file or URL, ``"none"`` for random initialisation, or None for the
            entry's packaged weights when it has them.
        packaged: the entry's :class:`~pysalient.models.registry.WeightsSpec`, or None.

    Returns:
        A local path or URL, or None for random initialisation.
    """
    if requested is not None:
        return None if requested.strip().lower() in (NO_WEIGHTS, "") else requested
    if packaged is None:
        return None
    from pysalient.engine.loader import PACKAGE_DIR

    location = packaged.url
    if "://" in location or Path(location).is_absolute():
        return location
    return str(PACKAGE_DIR / location)


def load_starting_weights(network: nn.Module, family: FamilySpec, location: str) -> None:
    """Loads ``location`` into ``network``; tensors whose shape differs (a class layer trained for another class
    count) keep their initialisation, and a line names them.

    Raises:
        ValueError: keys the network does not have, or missing keys other than the shape-mismatched ones.
    """
    weights = read_checkpoint(resolve_weights(location))
    if not is_pysalient_checkpoint(weights):  # official formats: the family converts them, strictly
        family.load_weights(network, weights, True)
        return
    own = network.state_dict()
    state = dict(weights["state_dict"])
    mismatched = sorted(
        key for key, value in state.items() if key in own and tuple(value.shape) != tuple(own[key].shape)
    )
    for key in mismatched:
        del state[key]
    if mismatched:
        unknown = sorted(set(state) - set(own))
        missing = sorted(set(own) - set(state) - set(mismatched))
        if unknown or missing:
            raise ValueError(f"{location}: unexpected keys {unknown[:8]}, missing keys {missing[:8]}")
        print(
            f"starting from {location}; re-initialised (shape differs: another class count?): {', '.join(mismatched)}"
        )
    family.load_weights(network, state, not mismatched)


def model_family_and_input(
    config: TrainConfig, model: Optional[SalientModel], checkpoint: Optional[Mapping[str, Any]]
) -> Tuple[FamilySpec, InputSpec]:
    """The family and the input spec of the model to train, known before the data is (the recipe and the training
    resize depend on them): from the checkpoint being resumed, ``model``, a checkpoint file or a registry entry."""
    if checkpoint is not None:
        family = get_family(checkpoint["family"])
        return family, family.config_from_dict(checkpoint["config"]).input_spec()
    if model is not None:
        return model.family, model.config.input_spec()
    if Path(config.model).suffix in (".pt", ".pth", ".ckpt"):
        saved = read_checkpoint(config.model)
        if not is_pysalient_checkpoint(saved):
            raise ValueError(f"model={config.model!r} is not a pysalient checkpoint (official weights: weights=...)")
        family = get_family(saved["family"])
        return family, family.config_from_dict(saved["config"]).input_spec()
    if "num_classes" in config.model_config:
        raise ValueError("num_classes comes from the training set (or class_agnostic=True), not model_config")
    entry = get_model_entry(config.model)
    return get_family(entry.family), entry.make_config(**config.model_config).input_spec()


def build_train_data(config: TrainConfig, input_spec: InputSpec, world_size: int) -> Tuple[Any, Any]:
    """The training dataset (the recipe's resize, then flips) and its loader for this process.

    Args:
        config: a resolved config (:meth:`TrainConfig.resolved`): data paths, batch (over all processes), workers,
            sizes, flips.
        input_spec: the model's input; ``"shortest_edge"`` families train multi-scale on ``config.train_sizes``
            capped at ``config.max_size``, ``"fixed"`` ones at their own size (aspect ratio not kept).
        world_size: number of processes; each loads ``config.batch / world_size`` images per iteration.

    Returns:
        ``(dataset, loader)``.
    """
    from pysalient.data import CocoInstanceDataset, build_loader
    from pysalient.data.transforms import Compose, RandomFlip, ResizeFixed, ResizeShortestEdge

    if not config.data:
        raise ValueError("no training data: set data=<COCO instances json>")
    if config.batch % world_size:
        raise ValueError(f"batch={config.batch} must be divisible by the number of processes ({world_size})")
    per_process = config.batch // world_size
    if not config.is_resolved:
        raise ValueError("build_train_data needs a resolved TrainConfig (TrainConfig.resolved(recipe, test_size))")
    if input_spec.resize == "fixed":
        steps: List[Any] = [ResizeFixed(input_spec.min_size)]
    else:
        steps = [ResizeShortestEdge(config.train_sizes, config.max_size, sample_style="choice")]
    if config.flip:
        steps.append(RandomFlip())
    dataset = CocoInstanceDataset(
        config.data, image_root=config.image_root, class_agnostic=config.class_agnostic, transforms=Compose(steps)
    )
    if len(dataset) == 0:
        raise ValueError(f"the training set {config.data} has no image")
    drop_last = len(dataset) // world_size >= per_process  # full batches only, unless the set is smaller than one
    if not drop_last:
        warnings.warn(
            f"the training set ({len(dataset)} images) is smaller than a batch of {config.batch}: "
            "each iteration uses every image once",
            UserWarning,
            stacklevel=2,
        )
    loader = build_loader(
        dataset,
        batch_size=per_process,
        shuffle=True,
        workers=config.workers,
        distributed=world_size > 1,
        seed=config.seed,  # the same on every process: distributed samplers split one shared permutation
        drop_last=drop_last,
    )
    return dataset, loader


def describe_run(
    network: nn.Module,
    name: str,
    class_names: Sequence[str],
    context: DistributedContext,
    images: int,
    config: TrainConfig,
) -> str:
    """The start-of-run summary line: model, device(s), data, schedule and run directory."""
    device = context.device
    where = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"
    if device.type == "cpu":
        where += f" ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"
    parameters = sum(parameter.numel() for parameter in network.parameters()) / 1e6
    classes = f"{len(class_names)} class" + ("es" if len(class_names) != 1 else "")
    return (
        f"training {name} ({parameters:.2f} M parameters, {classes}) on {where} "
        f"x{context.world_size}: {images} images, batch {config.batch}"
    )
