"""Every registered model, through its family's hooks: build, one train step, inference on two images.

Parametrised over ``pysalient.list_models()``, so a new family or entry is covered without new tests.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import pytest
import torch

import pysalient
from pysalient.data.collate import collate
from pysalient.engine.model import SalientModel
from pysalient.models import get_family, get_model_entry
from tests.models.family_fixtures import family_fixtures


def training_samples() -> List[Dict[str, Any]]:
    rng = np.random.default_rng(0)
    samples = []
    for index, (height, width) in enumerate([(64, 96), (80, 64)]):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        masks = np.zeros((2, height, width), dtype=bool)
        masks[0, 5:40, 10:50] = True
        masks[1, 30:60, 20:60] = True
        image[masks[0]] = (250, 40, 40)  # give the instances a visible colour
        samples.append(
            {
                "image": image,
                "masks": masks,
                "labels": np.array([0, 1], dtype=np.int64),
                "boxes": pysalient.structures.masks_to_boxes(torch.from_numpy(masks)).numpy(),
                "image_id": index + 1,
                "file_name": f"{index}.png",
            }
        )
    return samples


@pytest.mark.parametrize("name", pysalient.list_models())
def test_entry_trains_one_step_and_predicts(name: str) -> None:
    torch.manual_seed(0)
    entry = get_model_entry(name)
    family = get_family(entry.family)
    config = entry.make_config(num_classes=2)
    network = family.build(config).train()
    images, targets = collate(training_samples(), config.input_spec(), config.num_classes, "cpu")
    losses = family.build_criterion(config)(network(images, targets), targets)
    assert losses and all(torch.isfinite(value) for value in losses.values()), losses
    sum(losses.values()).backward()
    trainable = {key: value for key, value in network.named_parameters() if value.requires_grad}
    assert [key for key, value in trainable.items() if value.grad is None] == []
    assert [key for key, value in trainable.items() if not torch.isfinite(value.grad).all()] == []
    dead = set(family_fixtures(entry.family).DEAD_BY_DESIGN)
    silent = [key for key, value in trainable.items() if value.grad.abs().max() == 0 and key not in dead]
    assert silent == []

    model = SalientModel(network, family, config, ("a", "b"), name)
    images_bgr = [sample["image"] for sample in training_samples()]
    for result, image in zip(model.predict(images_bgr, conf=0.0, imgsz=64, max_det=10, batch=2), images_bgr):
        assert 0 < len(result) <= 10 and result.masks.shape == (len(result), *image.shape[:2])
        assert result.labels.max() < 2 and torch.all(result.scores[:-1] >= result.scores[1:])


def test_entries_say_what_their_weights_are_fit_for() -> None:
    from pysalient.models import list_models
    from pysalient.utils.text import plain_text

    for name in list_models():
        entry = get_model_entry(name)
        assert "`" not in entry.description and ":class:" not in entry.description, name
        if entry.weights is not None:  # every shipped weights file says what it was trained on and is fit for
            assert entry.weights.trained_on and entry.weights.fit_for, name
        if entry.published is not None:
            assert entry.published.file_name.endswith(".pth") and entry.published.license, name
    assert plain_text("the official ``sparse_inst`` :class:`~a.B` **x**") == "the official sparse_inst B x"
