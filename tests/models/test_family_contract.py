"""The family contract (``pysalient.models.registry.FamilySpec``), checked for every registered family.

A new family gets these checks by registering itself and adding ``tests/models/<family>/fixtures.py``; nothing
here names a family.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pysalient.data.collate import collate
from pysalient.engine.model import SalientModel
from pysalient.export.contract import ExportContract
from pysalient.inputs import InputSpec, Preprocessor
from pysalient.models import get_family, get_model_entry, list_families
from pysalient.models.family import FamilyConfig, InferenceSpec, TrainRecipe
from tests.export.helpers import random_image, registry_model
from tests.models.family_fixtures import family_fixtures
from tests.models.test_registry_entries import training_samples

FAMILIES = list_families()


def confident_model(family: str) -> SalientModel:
    fixtures = family_fixtures(family)
    changes = fixtures.size_changes(64, 128)
    return fixtures.make_confident(registry_model(fixtures.CONFIDENT_ENTRY, num_classes=2, **changes))


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trips_and_its_specs_are_valid(family: str) -> None:
    spec = get_family(family)
    default = get_model_entry(family)
    config = default.make_config(num_classes=3)
    assert isinstance(config, spec.config_type) and isinstance(config, FamilyConfig) and config.num_classes == 3
    saved = json.loads(json.dumps(config.to_dict()))  # what a checkpoint stores
    assert spec.config_from_dict(saved) == config and spec.config_from_dict(saved).to_dict() == saved
    assert config.replace(num_classes=5).num_classes == 5
    assert isinstance(config.input_spec(), InputSpec) and isinstance(config.inference_spec(), InferenceSpec)
    assert isinstance(spec.train_recipe, TrainRecipe)
    with pytest.raises(ValueError, match="unknown .* keys \\['not_a_field'\\]"):
        spec.config_from_dict({**saved, "not_a_field": 1})
    with pytest.raises(ValueError, match="num_classes"):
        config.replace(num_classes=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_detector_scripts_and_equals_the_exported_contract(family: str) -> None:
    model = confident_model(family)
    inference = model.config.inference_spec()
    detector = model.family.build_detector(model.network, model.config, inference)
    scripted_detector = torch.jit.script(detector)
    contract = ExportContract(Preprocessor(model.config.input_spec()), detector, inference.score_threshold).eval()
    scripted_contract = torch.jit.script(contract)
    images = [random_image(70, 90, 1), random_image(97, 64, 2)]
    for image in images:
        (eager,) = model.predict(image)
        tensor = torch.from_numpy(image)
        pixels, resized = Preprocessor(model.config.input_spec())(tensor)
        with torch.no_grad():
            (direct,) = scripted_detector(pixels[None], [resized], [list(image.shape[:2])], torch.tensor(0.3))
            outputs = [contract(tensor), scripted_contract(tensor)]
        assert len(eager) > 0 and eager.masks.flatten(1).any(1).all()
        for boxes, scores, labels, masks in [direct, *outputs]:
            assert torch.equal(scores, eager.scores) and torch.equal(labels, eager.labels)
            assert torch.equal(boxes, eager.boxes) and torch.equal(masks.bool(), eager.masks)
    # conf is the minimum final score, applied the same way by predict and the graph.
    with torch.no_grad():
        _, every, _, _ = contract(torch.from_numpy(images[0]), torch.tensor(0.0))
    middle = float(every[len(every) // 2])
    (eager,) = model.predict(images[0], conf=middle)
    with torch.no_grad():
        _, scores, _, _ = scripted_contract(torch.from_numpy(images[0]), torch.tensor(middle))
    assert torch.equal(scores, eager.scores) and torch.equal(scores, every[every >= middle])


@pytest.mark.parametrize("family", FAMILIES)
def test_network_with_targets_and_criterion_reach_every_trainable_parameter(family: str) -> None:
    torch.manual_seed(0)
    spec = get_family(family)
    config = get_model_entry(family).make_config(num_classes=2)
    network = spec.build(config).train()
    images, targets = collate(training_samples(), config.input_spec(), config.num_classes, "cpu")
    assert images.shape[0] == len(targets) == 2
    for target in targets:
        assert target["masks"].shape[-2:] == images.shape[-2:] and target["boxes"].shape == (2, 4)
    outputs = network(images, targets)
    losses = spec.build_criterion(config)(outputs, targets)
    assert losses and all(value.dtype == torch.float32 and torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    dead = set(family_fixtures(family).DEAD_BY_DESIGN)
    trainable = {key: value for key, value in network.named_parameters() if value.requires_grad}
    assert [key for key, value in trainable.items() if value.grad is None] == []
    silent = [key for key, value in trainable.items() if value.grad.abs().max() == 0 and key not in dead]
    assert silent == []


@pytest.mark.parametrize("family", FAMILIES)
def test_results_do_not_depend_on_batch(family: str) -> None:
    model = confident_model(family)
    images = [random_image(h, w, index) for index, (h, w) in enumerate([(70, 90), (97, 64), (64, 96), (50, 50)])]
    single = model.predict(images, batch=1, conf=0.0)
    for one, many in zip(single, model.predict(images, batch=4, conf=0.0)):
        assert len(one) == len(many) > 0
        torch.testing.assert_close(many.scores, one.scores, atol=1e-5, rtol=0)
        assert (one.masks != many.masks).float().mean() <= 1e-4
    assert np.all([result.image_size == image.shape[:2] for result, image in zip(single, images)])
