"""The models on the GPU. Every test here takes the ``cuda`` fixture (``tests/devices.py``): it skips without a GPU
and fails instead under ``PYSALIENT_REQUIRE_CUDA=1`` (``make gpu-check``)."""

from tests.devices import cuda  # noqa: F401 - fixture used by the tests of this folder
