"""Models and images the export tests share, and the eager-vs-exported comparison they all make."""

from __future__ import annotations

import numpy as np
import torch

from pysalient.engine.model import SalientModel
from pysalient.models.class_names import default_class_names
from pysalient.models.registry import get_family, get_model_entry
from pysalient.structures import Result


def registry_model(name: str, num_classes: int = 1, seed: int = 0, **config_changes) -> SalientModel:
    """A randomly initialised (seeded) model of registry entry ``name``, without the weightless warning."""
    torch.manual_seed(seed)
    entry = get_model_entry(name)
    family = get_family(entry.family)
    config = entry.make_config(num_classes=num_classes, **config_changes)
    return SalientModel(family.build(config), family, config, default_class_names(num_classes), entry.name).to("cpu")


def confident_tiny_model(num_classes: int = 1, **config_changes) -> SalientModel:
    """The default entry (``sparseinst_mbv2_tiny``), random but with non-trivial predictions.

    Class and objectness biases at +5 make every query pass the thresholds; larger mask-kernel weights make the
    masks cover part of the image (with the official initialisation every pixel is above the mask threshold).
    """
    model = registry_model("sparseinst_mbv2_tiny", num_classes, **config_changes)
    branch = model.network.decoder.inst_branch
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        branch.cls_score.bias.fill_(5.0)
        branch.objectness.bias.fill_(5.0)
        branch.mask_kernel.weight.copy_(torch.randn(branch.mask_kernel.weight.shape, generator=generator))
    return model


# Settings of the AOTInductor package that tests/export/test_aoti.py and tests/cpp share (the session fixture
# ``shared_aoti_package`` of tests/conftest.py compiles it once: minutes on a small CPU). 93x256 is an x.5 tie of
# the resize rule at 64/128; max_det 8 is below the model's 50 queries, so the in-graph top-k is exercised.
SHARED_IMGSZ = 64
SHARED_MAX_SIZE = 128
SHARED_MAX_DET = 8


def shared_tiny_model() -> SalientModel:
    """The model of the shared AOTInductor package: predictions that are non-trivial AND well separated.

    :func:`confident_tiny_model` (every query passes the thresholds, masks cover part of the image) at test sizes
    64 / 128, with the instance-activation weights x300 and the class / objectness weights x30, so that the
    queries attend to different places (masks of different areas, top-8 scores spread by > 1e-3) and the mask
    kernel x10, so that few mask probabilities lie near the threshold (compiled graphs round differently from
    eager ones, ~1e-7). The global RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        model = confident_tiny_model(min_size_test=SHARED_IMGSZ, max_size_test=SHARED_MAX_SIZE)
    branch = model.network.decoder.inst_branch
    with torch.no_grad():
        branch.iam_conv.weight.mul_(300.0)
        branch.cls_score.weight.mul_(30.0)
        branch.objectness.weight.mul_(30.0)
        branch.mask_kernel.weight.mul_(10.0)
    return model


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
