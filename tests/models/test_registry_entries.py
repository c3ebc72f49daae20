"""Every registered model, through its family's hooks: build, one train step, inference on two images.

Parametrised over ``pysalient.list_models()``, so a new family or entry is covered without new tests.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import pytest
import torch

import pysalient
from pysalient.models import get_family, get_model_entry

# Parameters that legitimately receive a zero gradient: a constant added to every logit of a spatial softmax
# cancels out (the official soft-IAM model has the same dead parameters).
DEAD_BY_DESIGN = ("decoder.inst_branch.softmax_bias", "decoder.inst_branch.iam_conv.bias")


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
    images, targets = family.prepare_batch(training_samples(), config, "cpu")
    losses = family.build_criterion(config)(network(images), targets)
    assert losses and all(torch.isfinite(value) for value in losses.values()), losses
    sum(losses.values()).backward()
    trainable = {key: value for key, value in network.named_parameters() if value.requires_grad}
    assert [key for key, value in trainable.items() if value.grad is None] == []
    assert [key for key, value in trainable.items() if not torch.isfinite(value.grad).all()] == []
    silent = [key for key, value in trainable.items() if value.grad.abs().max() == 0 and key not in DEAD_BY_DESIGN]
    assert silent == []

    network.eval()
    images_bgr = [sample["image"] for sample in training_samples()]
    detections = family.detect(network, images_bgr, 0.0, 64, 10)
    for detection, image in zip(detections, images_bgr):
        count = detection["scores"].shape[0]
        assert 0 < count <= 10 and detection["masks"].shape == (count, *image.shape[:2])
        assert detection["labels"].max() < 2 and torch.all(detection["scores"][:-1] >= detection["scores"][1:])
