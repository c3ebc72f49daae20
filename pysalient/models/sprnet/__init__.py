"""SPRNet (single pixel reconstruction): RetinaNet with a gated FPN and a mask branch that reconstructs each
instance's mask from one pixel's features (see :mod:`.model` for every reading of the paper taken)."""

from pysalient.models.sprnet.config import SPRNetConfig
from pysalient.models.sprnet.detector import SPRNetDetector
from pysalient.models.sprnet.model import SPRNet, build_sprnet

__all__ = ["SPRNet", "SPRNetConfig", "SPRNetDetector", "build_sprnet"]
