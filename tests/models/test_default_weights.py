"""The weights shipped inside the package: verified on load, and they actually segment salient instances."""

from __future__ import annotations

from pathlib import Path

import pysalient
from pysalient.data import synthesize
from pysalient.engine.hub import sha256_of
from pysalient.models import get_model_entry

PACKAGE_DIR = Path(pysalient.__file__).resolve().parent


def test_shipped_file_matches_its_spec_and_is_small() -> None:
    spec = get_model_entry("sparseinst").weights
    assert spec is not None and spec.class_names == ("salient",)
    path = PACKAGE_DIR / spec.url
    assert path.stat().st_size <= 10 * 2**20  # fp16 storage keeps the package small
    assert sha256_of(path) == spec.sha256 and path.name.split("-")[-1].startswith(spec.sha256[:8])


def test_default_model_segments_unseen_synthsis_images(tmp_path) -> None:
    # A seed no training run used; 24 images keep this fast. The full 300-image evaluation is in RESULTS.md.
    paths = synthesize(tmp_path, test=24, size=256, seed=2024)
    model = pysalient.load("sparseinst", device="cpu")
    assert model.name == "sparseinst_r18_light" and model.names == {0: "salient"}
    metrics = model.evaluate(data=paths["test"])
    assert metrics["AP50"] >= 85.0 and metrics["AP"] >= 60.0, metrics
