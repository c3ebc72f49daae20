"""RDPNet (Wu et al., IEEE TIP 2021): FCOS on a regularized densely-connected pyramid with a multi-level RoIAlign
mask decoder; official maskrcnn-benchmark checkpoints convert on load (see :mod:`.model` for where the official code
is followed over the paper)."""

from pysalient.models.rdpnet.config import RDPNetConfig
from pysalient.models.rdpnet.detector import RDPNetDetector
from pysalient.models.rdpnet.model import RDPNet, build_rdpnet

__all__ = ["RDPNet", "RDPNetConfig", "RDPNetDetector", "build_rdpnet"]
