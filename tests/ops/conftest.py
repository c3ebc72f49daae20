"""Device parametrisation of the op tests: every test taking ``device`` runs on ``cpu`` and ``cuda`` (see
``tests/devices.py``: the CUDA case skips without a GPU, and fails instead under ``PYSALIENT_REQUIRE_CUDA=1``)."""

from tests.devices import cuda, device  # noqa: F401 - fixtures used by the tests of this folder
