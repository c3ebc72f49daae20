"""SalientModel.fuse: batch norms folded for inference, same detections, training and saving refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pysalient
from pysalient.data.synthsis import render_sample


@pytest.mark.parametrize("name", ["sparseinst", "rdpnet"])
def test_fused_default_model_predicts_the_same_instances(name: str, tmp_path: Path) -> None:
    image = render_sample((256, 320), seed=5, split="test", index=0).image
    model = pysalient.load(name, device="cpu")
    (expected,) = model.predict(image, conf=0.3)
    assert len(expected) > 0
    assert model.fuse() is model and model.fused
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.network.modules())
    (actual,) = model.predict(image, conf=0.3)
    assert len(actual) == len(expected)
    torch.testing.assert_close(actual.scores, expected.scores, rtol=0, atol=1e-4)
    differing = (actual.masks != expected.masks).sum().item()
    assert differing <= 1e-4 * expected.masks.numel()
    # An export of the fused model is the folded network, with exactly the fused model's results.
    exported = pysalient.load(model.export("torchscript", tmp_path / "fused.ts"))
    (from_export,) = exported.predict(image, conf=0.3)
    assert torch.equal(from_export.masks, actual.masks) and torch.equal(from_export.scores, actual.scores)
    with pytest.raises(ValueError, match="cannot save a fused model"):
        model.save(tmp_path / "fused.pth")
    assert not (tmp_path / "fused.pth").exists()
    with pytest.raises(ValueError, match="cannot train a fused model"):
        model.train(str(tmp_path / "missing.json"))
