"""``pysalient.load``: a registry name or a checkpoint file in, a ready :class:`SalientModel` out."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import torch

from pysalient.engine.checkpoint import is_pysalient_checkpoint, read_checkpoint
from pysalient.engine.hub import resolve_weights
from pysalient.engine.model import SalientModel
from pysalient.engine.predictor import Predictor
from pysalient.export.formats import EXPORT_SUFFIXES
from pysalient.models.class_names import default_class_names
from pysalient.models.registry import ModelEntry, get_family, get_model_entry, list_models
from pysalient.utils.device import select_device

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def load(
    model: Union[str, os.PathLike],
    weights: Union[None, str, os.PathLike] = None,
    device: Union[None, str, int, torch.device] = None,
    num_classes: Optional[int] = None,
) -> Predictor:
    """Builds a model by registry name, or from a pysalient checkpoint file, and loads its weights.

    Args:
        model: a registry name (``"sparseinst_r50_giam"``), a family name (``"sparseinst"``: its default
            entry), or the path of a checkpoint written by :meth:`SalientModel.save`.
        weights: a local path or http(s) URL of weights for a registry name: a pysalient checkpoint or the
            family's official format (e.g. a detectron2 SparseInst ``.pth``). Defaults to the entry's own
            weights; an entry without weights is randomly initialised, with a warning saying so.
        device: where to put the model (CUDA when available if None).
        num_classes: class count for a randomly initialised model or to check a checkpoint against; read
            from the checkpoint when None.

    Returns:
        A :class:`SalientModel` in eval mode, or an :class:`~pysalient.engine.exported.ExportedModel` for a
        ``.ts`` / ``.pt2`` / ``.onnx`` file (both subclass :class:`~pysalient.engine.predictor.Predictor`).

    Raises:
        ValueError: unknown names, checkpoints of another family or class count, mismatched weights.
        FileNotFoundError: missing weights files.
    """
    if Path(os.fspath(model)).suffix.lower() in EXPORT_SUFFIXES:
        # An exported artifact (pysalient.export): imported on use, it pulls in torch.jit / AOTInductor loading.
        from pysalient.engine.exported import ExportedModel

        if weights is not None or num_classes is not None:
            raise ValueError(f"{model} is an exported model: its weights and classes are inside, pass neither")
        return ExportedModel(model, device=device)
    target_device = select_device(device)
    text = os.fspath(model)
    if Path(text).suffix in (".pt", ".pth", ".ckpt") and text not in list_models():
        if weights is not None:
            raise ValueError("pass either a checkpoint path or a registry name with weights=, not both")
        checkpoint = read_checkpoint(resolve_weights(text))
        if not is_pysalient_checkpoint(checkpoint):
            raise ValueError(
                f"{text} is not a pysalient checkpoint; load official weights with "
                f"pysalient.load('<registry name>', weights='{text}') (names: {', '.join(list_models())})"
            )
        return _from_pysalient_checkpoint(checkpoint, None, num_classes, target_device, text)

    entry = get_model_entry(text)
    if weights is None and entry.weights is not None:
        location = entry.weights.url
        if "://" not in location and not Path(location).is_absolute():
            location = str(PACKAGE_DIR / location)  # shipped weights live inside the package
        checkpoint = read_checkpoint(resolve_weights(location, entry.weights.sha256))
        class_names = entry.weights.class_names
    elif weights is not None:
        checkpoint = read_checkpoint(resolve_weights(os.fspath(weights)))
        class_names = None
    else:
        warnings.warn(
            f"{entry.name} has no trained weights yet: the model is randomly initialised "
            "(pass weights=... to load a checkpoint)",
            UserWarning,
            stacklevel=2,
        )
        classes = num_classes or 1
        config = entry.make_config(num_classes=classes)
        network = get_family(entry.family).build(config)
        return SalientModel(network, get_family(entry.family), config, default_class_names(classes), entry.name).to(
            target_device
        )

    if is_pysalient_checkpoint(checkpoint):
        source = os.fspath(weights) if weights is not None else f"{entry.name}'s packaged weights"
        return _from_pysalient_checkpoint(checkpoint, entry, num_classes, target_device, source)
    return _from_official_checkpoint(checkpoint, entry, num_classes, class_names, target_device)


def _from_pysalient_checkpoint(
    checkpoint: Mapping[str, Any],
    entry: Optional[ModelEntry],
    num_classes: Optional[int],
    device: torch.device,
    source: str,
) -> SalientModel:
    missing = [key for key in ("family", "config", "class_names", "state_dict", "name") if key not in checkpoint]
    if missing:
        raise ValueError(
            f"{source}: a pysalient checkpoint without {', '.join(repr(key) for key in missing)} (truncated or "
            "written by hand); re-save it with model.save(path)"
        )
    family = get_family(checkpoint["family"])
    if entry is not None and entry.family != family.name:
        raise ValueError(f"{source}: the weights are a {family.name} checkpoint, not {entry.family} ({entry.name})")
    config = family.config_from_dict(checkpoint["config"])
    class_names: Sequence[str] = checkpoint["class_names"]
    if num_classes is not None and num_classes != len(class_names):
        raise ValueError(f"{source}: the checkpoint predicts {len(class_names)} classes, not num_classes={num_classes}")
    if entry is not None:
        _check_same_architecture(config, entry.make_config(num_classes=len(class_names)), entry.name, source)
    network = family.build(config)
    family.load_weights(network, checkpoint["state_dict"], True)
    _check_finite_weights(network, source)
    return SalientModel(network, family, config, class_names, checkpoint["name"]).to(device)


def _check_same_architecture(found: Any, expected: Any, name: str, source: str) -> None:
    """Raises when a pysalient checkpoint loaded under a registry name describes another architecture."""
    found_dict, expected_dict = found.to_dict(), expected.to_dict()
    differing = sorted(
        key for key in set(found_dict) | set(expected_dict) if found_dict.get(key) != expected_dict.get(key)
    )
    if differing:
        shown = ", ".join(f"{key}={found_dict.get(key)!r} (not {expected_dict.get(key)!r})" for key in differing[:4])
        more = f" and {len(differing) - 4} more" if len(differing) > 4 else ""
        raise ValueError(
            f"{source} is not a {name} checkpoint: its architecture differs in {shown}{more}; load it by its path "
            f"alone (pysalient.load({source!r})) to get the architecture it was trained with"
        )


def _check_finite_weights(network: torch.nn.Module, source: str) -> None:
    """Raises when a loaded floating parameter or buffer holds NaN or infinity (a diverged or corrupt run)."""
    for key, tensor in network.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"{source}: the weights hold NaN or infinite values ({bad} in {key}): a diverged run?")


def _from_official_checkpoint(
    checkpoint: Mapping[str, Any],
    entry: ModelEntry,
    num_classes: Optional[int],
    class_names: Optional[Sequence[str]],
    device: torch.device,
) -> SalientModel:
    family = get_family(entry.family)
    found = family.num_classes_in(checkpoint)
    if num_classes is not None and found is not None and num_classes != found:
        raise ValueError(f"the checkpoint predicts {found} classes, not num_classes={num_classes}")
    classes = num_classes or found or (len(class_names) if class_names else 1)
    config = entry.make_config(num_classes=classes)
    network = family.build(config)
    family.load_weights(network, checkpoint, True)
    _check_finite_weights(network, "the checkpoint")
    names: Tuple[str, ...] = tuple(class_names) if class_names else default_class_names(classes)
    return SalientModel(network, family, config, names, entry.name).to(device)
