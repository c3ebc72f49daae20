"""SparseInst (Cheng et al., CVPR'22): instance activation maps, bipartite matching, no NMS."""

from pysalient.models.sparseinst.config import PRESETS, SparseInstConfig, preset_config
from pysalient.models.sparseinst.convert import ConversionReport, convert_official_checkpoint, load_official_checkpoint
from pysalient.models.sparseinst.decoder import BaseIAMDecoder, GroupIAMDecoder, GroupIAMSoftDecoder
from pysalient.models.sparseinst.encoder import InstanceContextEncoder
from pysalient.models.sparseinst.model import SparseInst, build_sparseinst
from pysalient.models.sparseinst.postprocess import postprocess, postprocess_single
from pysalient.models.sparseinst.preprocess import pad_and_batch, preprocess_image, resized_hw

__all__ = [
    "PRESETS",
    "BaseIAMDecoder",
    "ConversionReport",
    "GroupIAMDecoder",
    "GroupIAMSoftDecoder",
    "InstanceContextEncoder",
    "SparseInst",
    "SparseInstConfig",
    "build_sparseinst",
    "convert_official_checkpoint",
    "load_official_checkpoint",
    "pad_and_batch",
    "postprocess",
    "postprocess_single",
    "preprocess_image",
    "preset_config",
    "resized_hw",
]
