"""pysalient: salient instance segmentation with native PyTorch operators."""

from pysalient import ops
from pysalient.version import __version__

__all__ = ["__version__", "ops"]
