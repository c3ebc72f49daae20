"""Registers the SparseInst family and its named architectures with :mod:`pysalient.models.registry`."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from pysalient.models.registry import FamilySpec, WeightsSpec, register_family, register_model
from pysalient.models.sparseinst import config as presets
from pysalient.models.sparseinst.config import SparseInstConfig
from pysalient.models.sparseinst.convert import CLASS_SCORE_KEY, convert_official_checkpoint, load_official_checkpoint
from pysalient.models.sparseinst.model import SparseInst, build_sparseinst
from pysalient.models.sparseinst.postprocess import postprocess
from pysalient.models.sparseinst.preprocess import pad_and_batch, preprocess_image
from pysalient.models.sparseinst.training import build_criterion, prepare_batch


def detect(
    model: SparseInst, images: Sequence[np.ndarray], conf: float, imgsz: Optional[int], max_det: int
) -> List[Dict[str, Any]]:
    """Runs SparseInst on BGR uint8 [H, W, 3] images as ONE padded batch.

    Args:
        model: the network (its device is used).
        images: OpenCV-convention images of any sizes.
        conf: class-score threshold (strict).
        imgsz: shortest side after resizing; the config's ``min_size_test`` when None.
        max_det: at most this many instances per image.

    Returns:
        Per image: ``masks`` bool [K, H, W], ``boxes`` float [K, 4], ``scores`` [K], ``labels`` int64 [K].
    """
    config: SparseInstConfig = model.config
    device = next(model.parameters()).device
    normalized, original_sizes = [], []
    for image in images:
        rgb = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1]))
        tensor, _ = preprocess_image(rgb, config, min_size=imgsz)
        normalized.append(tensor.to(device))
        original_sizes.append((int(image.shape[0]), int(image.shape[1])))
    batch, image_sizes = pad_and_batch(normalized, config.size_divisibility)
    with torch.inference_mode():
        outputs = model(batch)
    padded_hw = (int(batch.shape[-2]), int(batch.shape[-1]))
    return postprocess(
        outputs,
        image_sizes,
        padded_hw,
        original_sizes,
        conf=conf,
        mask_threshold=config.mask_threshold,
        max_det=max_det,
    )


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], strict: bool) -> Any:
    """Loads a pysalient or official (detectron2-format) SparseInst state dict; see ``load_official_checkpoint``."""
    return load_official_checkpoint(model, checkpoint, strict=strict)


def num_classes_in(checkpoint: Mapping[str, Any]) -> Optional[int]:
    """Rows of the class-score layer of a loaded checkpoint (None if it has no such layer)."""
    state, _ = convert_official_checkpoint(checkpoint)
    weight = state.get(CLASS_SCORE_KEY)
    return None if weight is None else int(weight.shape[0])


FAMILY = register_family(
    FamilySpec(
        name="sparseinst",
        build=build_sparseinst,
        config_from_dict=SparseInstConfig.from_dict,
        load_weights=load_weights,
        num_classes_in=num_classes_in,
        detect=detect,
        build_criterion=build_criterion,
        prepare_batch=prepare_batch,
    )
)

# The light ResNet model is the family default: trained on SynthSIS, its weights ship with the package
# (recipe and measurements in benchmarks/RESULTS.md).
SYNTHSIS_R18_LIGHT = WeightsSpec(
    url="weights/sparseinst_r18_light_synthsis-76e1be60.pth",
    sha256="76e1be60361f20788869ebbe0e58c0e73e40e9523cf80963bd34cbc842fd91dc",
    class_names=("salient",),
    input_size=224,
    metrics={
        "dataset": "SynthSIS test split, 300 images of 256x256, seed 7 (never used for training)",
        "AP": 74.60,
        "AP50": 96.28,
        "AP70": 89.64,
        "AP75": 85.63,
    },
)
register_model("sparseinst_r18_light", family="sparseinst", default=True, weights=SYNTHSIS_R18_LIGHT)(
    presets.sparseinst_r18_light
)
register_model("sparseinst_mbv2_tiny", family="sparseinst")(presets.sparseinst_mbv2_tiny)
register_model("sparseinst_r50_giam", family="sparseinst")(presets.sparseinst_r50_giam)
register_model("sparseinst_r50_base", family="sparseinst")(presets.sparseinst_r50_base)
register_model("sparseinst_r50_giam_soft", family="sparseinst")(presets.sparseinst_r50_giam_soft)
