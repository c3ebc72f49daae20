"""InstanceFCN (instance-sensitive score maps and the assembling module): a dilated stride-8 FCN whose k^2 score maps
are assembled into the mask of every sliding window (see :mod:`.model` for every reading of the paper taken)."""

from pysalient.models.instancefcn.config import InstanceFCNConfig
from pysalient.models.instancefcn.detector import InstanceFCNDetector
from pysalient.models.instancefcn.model import InstanceFCN, build_instancefcn

__all__ = ["InstanceFCN", "InstanceFCNConfig", "InstanceFCNDetector", "build_instancefcn"]
