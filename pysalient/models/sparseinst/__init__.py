"""SparseInst (Cheng et al., CVPR'22): instance activation maps, bipartite matching, no NMS."""

from pysalient.models.sparseinst.config import SparseInstConfig
from pysalient.models.sparseinst.convert import ConversionReport, convert_official_checkpoint, load_official_checkpoint
from pysalient.models.sparseinst.decoder import BaseIAMDecoder, GroupIAMDecoder, GroupIAMSoftDecoder
from pysalient.models.sparseinst.detector import SparseInstDetector, postprocess_single
from pysalient.models.sparseinst.encoder import InstanceContextEncoder
from pysalient.models.sparseinst.model import SparseInst, build_sparseinst

__all__ = [
    "BaseIAMDecoder",
    "ConversionReport",
    "GroupIAMDecoder",
    "GroupIAMSoftDecoder",
    "InstanceContextEncoder",
    "SparseInst",
    "SparseInstConfig",
    "SparseInstDetector",
    "build_sparseinst",
    "convert_official_checkpoint",
    "load_official_checkpoint",
    "postprocess_single",
]
