"""Test-time input pipeline of SparseInst: resize, normalise, pad and batch, as the official detectron2 one.

The resize is detectron2's ``ResizeShortestEdge`` (shortest side to ``min_size``, longest capped at
``max_size``, sides rounded with ``int(x + 0.5)``) with Pillow's uint8 bilinear interpolation, reproduced
bit for bit by the native ``resize_image`` op: other bilinear resizers differ by +-1 on a few percent of the
pixels, which is enough to flip mask pixels and move scores beyond the parity tolerances.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pysalient import ops
from pysalient.models.sparseinst.config import SparseInstConfig
from pysalient.utils.resize import resized_hw


def preprocess_image(
    image: Union[Tensor, np.ndarray],
    config: SparseInstConfig,
    min_size: Optional[int] = None,
    max_size: Optional[int] = None,
) -> Tuple[Tensor, Tuple[int, int]]:
    """Resizes and normalises one RGB image for :class:`~pysalient.models.sparseinst.SparseInst`.

    Args:
        image: uint8 [H, W, 3] in **RGB** order (converted to ``config.input_format`` here).
        config: gives the normalisation, channel order and the default sizes.
        min_size: shortest side after resizing; ``config.min_size_test`` when None.
        max_size: cap of the longest side; ``config.max_size_test`` when None (the official configs keep
            853 for every shortest side, e.g. 640 / 853 for COCO).

    Returns:
        The normalised float32 [3, H', W'] tensor (not padded) and (H', W').
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))  # also accepts flipped (negative-stride) views
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {tuple(image.shape)}")
    min_size = config.min_size_test if min_size is None else int(min_size)
    max_size = config.max_size_test if max_size is None else int(max_size)
    height, width = image.shape[0], image.shape[1]
    out_h, out_w = resized_hw(height, width, min_size, max_size)
    if (out_h, out_w) != (height, width):
        image = ops.resize_image(image.contiguous(), out_h, out_w)
    if config.input_format == "BGR":
        image = image.flip(-1)
    # float32 (x - mean) / std per channel, in this order, exactly as the official normalizer.
    pixels = image.permute(2, 0, 1).to(torch.float32)
    mean = torch.tensor(config.pixel_mean, dtype=torch.float32).reshape(3, 1, 1)
    std = torch.tensor(config.pixel_std, dtype=torch.float32).reshape(3, 1, 1)
    return (pixels - mean) / std, (out_h, out_w)


def pad_and_batch(images: Sequence[Tensor], size_divisibility: int = 32) -> Tuple[Tensor, List[Tuple[int, int]]]:
    """Zero-pads normalised images at the bottom and right to a common size and stacks them.

    Padding comes after normalisation (as detectron2's ``ImageList.from_tensors``), so padded pixels are 0
    in normalised units, i.e. the mean colour.

    Args:
        images: [3, h_i, w_i] tensors of one dtype and device.
        size_divisibility: the padded height and width are the largest ones rounded up to a multiple of it.

    Returns:
        The [B, 3, Hp, Wp] batch and each image's (h_i, w_i).
    """
    if len(images) == 0:
        raise ValueError("pad_and_batch needs at least one image")
    sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
    divisor = max(int(size_divisibility), 1)
    padded_h = -(-max(h for h, _ in sizes) // divisor) * divisor
    padded_w = -(-max(w for _, w in sizes) // divisor) * divisor
    batch = images[0].new_zeros((len(images), images[0].shape[0], padded_h, padded_w))
    for index, (image, (h, w)) in enumerate(zip(images, sizes)):
        batch[index, :, :h, :w].copy_(image)
    return batch, sizes
