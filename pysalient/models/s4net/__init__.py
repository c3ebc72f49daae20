"""S4Net (Fan et al., CVPR 2019 / CVM 2020): a single-stage anchor detector on an FPN with the ternary RoIMasking
segmentation branch (see :mod:`.model` for where the released code is followed and where it is not)."""

from pysalient.models.s4net.config import S4NetConfig
from pysalient.models.s4net.detector import S4NetDetector
from pysalient.models.s4net.model import S4Net, build_s4net

__all__ = ["S4Net", "S4NetConfig", "S4NetDetector", "build_s4net"]
