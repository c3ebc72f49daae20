"""Models and images the export tests share, and the eager-vs-exported comparison they all make."""

from __future__ import annotations

import numpy as np
import torch

from pysalient.engine.model import SalientModel
from pysalient.models.class_names import default_class_names
from pysalient.models.registry import get_family, get_model_entry
from pysalient.structures import Result
from tests.models.family_fixtures import family_fixtures


def registry_model(name: str, num_classes: int = 1, seed: int = 0, **config_changes) -> SalientModel:
    """A randomly initialised (seeded) model of registry entry ``name``, without the weightless warning."""
    torch.manual_seed(seed)
    entry = get_model_entry(name)
    family = get_family(entry.family)
    config = entry.make_config(num_classes=num_classes, **config_changes)
    return SalientModel(family.build(config), family, config, default_class_names(num_classes), entry.name).to("cpu")


def confident_tiny_model(num_classes: int = 1, family: str = "sparseinst", **config_changes) -> SalientModel:
    """A small random model of ``family`` (its fixtures' ``CONFIDENT_ENTRY``) with non-trivial predictions."""
    fixtures = family_fixtures(family)
    return fixtures.make_confident(registry_model(fixtures.CONFIDENT_ENTRY, num_classes, **config_changes))


def sized_confident_model(imgsz: int, max_size: int, family: str = "sparseinst") -> SalientModel:
    """:func:`confident_tiny_model` at the test-time size ``imgsz`` capped at ``max_size``."""
    return confident_tiny_model(family=family, **family_fixtures(family).size_changes(imgsz, max_size))


# Settings of the AOTInductor package that tests/export/test_aoti.py and tests/cpp share (the session fixture
# ``shared_aoti_package`` of tests/conftest.py compiles it once: minutes on a small CPU). 93x256 is an x.5 tie of
# the resize rule at 64/128; max_det 8 is below the model's 50 queries, so the in-graph top-k is exercised.
SHARED_IMGSZ = 64
SHARED_MAX_SIZE = 128
SHARED_MAX_DET = 8


def shared_tiny_model(family: str = "sparseinst") -> SalientModel:
    """The model of the shared AOTInductor package: predictions that are non-trivial AND well separated
    (:func:`sized_confident_model` at 64 / 128, then the family's ``separate_queries``). The global RNG state is
    left as it was."""
    with torch.random.fork_rng(devices=[]):
        model = sized_confident_model(SHARED_IMGSZ, SHARED_MAX_SIZE, family)
    return family_fixtures(family).separate_queries(model)


def random_image(height: int, width: int, seed: int) -> np.ndarray:
    """BGR uint8 [height, width, 3] noise."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def assert_same_result(exported: Result, eager: Result, mask_tolerance: float = 0.0) -> None:
    """Same count, labels and names, scores within 1e-5; masks identical up to a fraction of their pixels.

    ``mask_tolerance`` > 0 is for compiled graphs (AOTInductor): their fused kernels round differently from eager
    ones (~1e-7), which flips the rare pixel whose probability is that close to the mask threshold; a flipped
    pixel on a mask's edge may then move its box by one pixel.
    """
    assert len(exported) == len(eager) > 0
    assert exported.image_size == eager.image_size
    differing = (exported.masks != eager.masks).sum().item()
    assert differing <= mask_tolerance * eager.masks.numel(), f"{differing} mask pixels differ"
    assert torch.equal(exported.labels, eager.labels)
    torch.testing.assert_close(exported.scores, eager.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(exported.boxes, eager.boxes, atol=1.0 if mask_tolerance else 0.0, rtol=0)
    assert exported.names == eager.names


def assert_nontrivial_masks(result: Result) -> None:
    """Every mask covers part of the image, so that comparing masks compares boundaries."""
    flat = result.masks.flatten(1)
    assert len(result) > 0 and flat.any(dim=1).all() and not flat.all(dim=1).any()
