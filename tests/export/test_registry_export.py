"""Every registered model exports to TorchScript and gives eager predict's results (new families included)."""

from __future__ import annotations

import pytest
import torch

import pysalient
from tests.export.helpers import random_image, registry_model


@pytest.mark.parametrize("name", pysalient.list_models())
def test_every_registry_entry_exports_to_torchscript(name: str, tmp_path) -> None:
    model = registry_model(name, num_classes=2)
    path = model.export("torchscript", tmp_path / f"{name}.ts", imgsz=64)
    exported = pysalient.load(path)
    assert exported.metadata["name"] == name and exported.names == model.names
    image = random_image(70, 91, 0)
    (eager,) = model.predict(image, imgsz=64)
    (result,) = exported.predict(image)
    assert len(result) == len(eager)
    assert torch.equal(result.masks, eager.masks) and torch.equal(result.labels, eager.labels)
    assert torch.equal(result.boxes, eager.boxes)
    torch.testing.assert_close(result.scores, eager.scores, atol=1e-5, rtol=0)
