"""The weights shipped inside the package: verified on load, and they actually segment salient instances."""

from __future__ import annotations

from pathlib import Path

import pytest

import pysalient
from pysalient.data import synthesize
from pysalient.engine.hub import sha256_of
from pysalient.models import get_model_entry, list_families, list_models

PACKAGE_DIR = Path(pysalient.__file__).resolve().parent
SHIPPED = [family for family in list_families() if get_model_entry(family).weights is not None]
# Entries other than the family defaults that also ship weights (e.g. the embedded-size SparseInst).
SHIPPED_EXTRA = [
    name
    for name in list_models()
    if get_model_entry(name).weights is not None
    and name not in {get_model_entry(family).name for family in list_families()}
]
# Floors on 24 unseen SynthSIS images, under the 300-image results of benchmarks/RESULTS.md.
MINIMUM = {
    "sparseinst": (85.0, 60.0),
    "rdpnet": (85.0, 60.0),
    "s4net": (75.0, 40.0),
    "sprnet": (85.0, 50.0),
    "instancefcn": (80.0, 50.0),
    "sparseinst_r18_nano": (85.0, 60.0),
}  # (AP50, AP)


def test_every_family_ships_default_weights() -> None:
    assert set(SHIPPED) == set(list_families()), "a family without shipped default weights"


def test_extra_shipped_entries_are_the_expected_ones() -> None:
    assert SHIPPED_EXTRA == ["sparseinst_r18_nano"]


@pytest.mark.parametrize("family", SHIPPED + SHIPPED_EXTRA)
def test_shipped_file_matches_its_spec_and_is_small(family: str) -> None:
    spec = get_model_entry(family).weights
    assert spec is not None and spec.class_names == ("salient",)
    path = PACKAGE_DIR / spec.url
    assert path.stat().st_size <= 10 * 2**20  # fp16 storage keeps the package small
    assert sha256_of(path) == spec.sha256 and path.name.split("-")[-1].startswith(spec.sha256[:8])


@pytest.mark.parametrize("family", SHIPPED + SHIPPED_EXTRA)
def test_default_model_segments_unseen_synthsis_images(family: str, tmp_path) -> None:
    # A seed no training run used; 24 images keep this fast. The full 300-image evaluation is in RESULTS.md.
    paths = synthesize(tmp_path, test=24, size=256, seed=2024)
    model = pysalient.load(family, device="cpu")
    assert model.name == get_model_entry(family).name and model.names == {0: "salient"}
    metrics = model.evaluate(data=paths["test"])
    ap50, ap = MINIMUM[family]
    assert metrics["AP50"] >= ap50 and metrics["AP"] >= ap, metrics
