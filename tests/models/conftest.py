"""``device`` for the model tests that also run on CUDA (``tests/devices.py``: skipped without a GPU)."""

from tests.devices import device  # noqa: F401 - fixture used by the tests of this folder
