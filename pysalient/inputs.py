"""The one input pipeline of every family: :class:`InputSpec` (what the network expects), :class:`Preprocessor`
(one BGR uint8 image -> normalised, padded CHW pixels; scriptable and exportable) and :func:`pad_and_batch`.

Three callers share it, so they cannot drift apart:

- eager ``predict`` runs the :class:`Preprocessor` on each image, then stacks images of equal padded size;
- the export contract (:class:`pysalient.export.contract.ExportContract`) runs the same module inside the graph;
- training collation (:func:`pysalient.data.collate.collate`) normalises already-resized samples with
  :meth:`Preprocessor.normalize` and pads them with :func:`pad_and_batch`.

Resize modes: ``"shortest_edge"`` is detectron2's ``ResizeShortestEdge`` (shortest side to ``min_size``, longest capped
at ``max_size``, sides rounded with ``int(x + 0.5)``); ``"shortest_edge_legacy"`` is maskrcnn-benchmark's ``Resize``
(RDPNet, FCOS: a capped short side rounded half to even, the long side truncated, no resize when the short side already
has the size; :func:`pysalient.utils.resize.legacy_resized_hw`); ``"fixed"`` resizes every image to ``min_size`` x
``min_size`` without keeping the aspect ratio (S4Net). Pixels come from the native ``resize_image`` op, Pillow's uint8
bilinear resize bit for bit (the official pipelines' resize; other bilinear resizers differ by +-1 on a few percent of
the pixels, enough to flip mask pixels).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pysalient import ops
from pysalient.utils.resize import (
    fixed_hw,
    legacy_resized_hw,
    rational_resized_hw,
    resized_hw,
    symbolic_legacy_resized_hw,
    tensor_resized_hw,
)

CHANNEL_ORDERS = ("RGB", "BGR")
RESIZE_MODES = ("shortest_edge", "shortest_edge_legacy", "fixed")


@dataclass(frozen=True)
class InputSpec:
    """What a family's network takes as input.

    Attributes:
        channel_order: ``"RGB"`` or ``"BGR"``, the order the network expects (images arrive BGR, OpenCV's).
        pixel_mean: per channel in ``channel_order``, 0-255 range.
        pixel_std: per channel in ``channel_order``, 0-255 range.
        resize: ``"shortest_edge"``, ``"shortest_edge_legacy"`` or ``"fixed"``.
        min_size: shortest side after the resize (``"fixed"``: both sides).
        max_size: cap of the longest side (the shortest-edge modes only).
        size_divisibility: padded height and width are multiples of it.
        min_padded_size: the padded height and width are at least this (0: no floor; a multiple of
            ``size_divisibility``). A network whose coarsest map would otherwise shrink to one pixel on an
            elongated image (RDPNet's P7 at stride 128) sets it so that every map keeps at least 2 x 2 cells: one
            exported graph then serves every input size (no map switches between broadcasting and not), and
            eager, exported and training inputs are padded alike.
    """

    channel_order: str = "RGB"
    pixel_mean: Tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: Tuple[float, float, float] = (58.395, 57.12, 57.375)
    resize: str = "shortest_edge"
    min_size: int = 800
    max_size: int = 1333
    size_divisibility: int = 32
    min_padded_size: int = 0

    def __post_init__(self) -> None:
        problems: List[str] = []
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3 or min(self.pixel_std) <= 0:
            problems.append(
                f"pixel_mean and pixel_std need 3 positive-std values, got {self.pixel_mean}, {self.pixel_std}"
            )
        if self.resize not in RESIZE_MODES:
            problems.append(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        for name in ("min_size", "max_size", "size_divisibility"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be an int >= 1, got {value!r}")
        floor = self.min_padded_size
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 0:
            problems.append(f"min_padded_size must be an int >= 0, got {floor!r}")
        elif isinstance(self.size_divisibility, int) and self.size_divisibility >= 1 and floor % self.size_divisibility:
            problems.append(
                f"min_padded_size ({floor}) must be a multiple of size_divisibility ({self.size_divisibility})"
            )
        if problems:
            raise ValueError("invalid InputSpec: " + "; ".join(problems))

    def replace(self, **changes: Any) -> InputSpec:
        """A copy with ``changes`` applied; None values mean "keep" (e.g. ``imgsz=None``)."""
        return dataclasses.replace(self, **{key: value for key, value in changes.items() if value is not None})

    def resized_hw(self, height: int, width: int) -> Tuple[int, int]:
        """The size an image of ``height`` x ``width`` is resized to (before padding)."""
        if self.resize == "fixed":
            return fixed_hw(height, width, self.min_size)
        if self.resize == "shortest_edge_legacy":
            return legacy_resized_hw(height, width, self.min_size, self.max_size)
        return resized_hw(height, width, self.min_size, self.max_size)

    def padded_hw(self, height: int, width: int) -> Tuple[int, int]:
        """``(height, width)`` rounded up to multiples of ``size_divisibility``, at least ``min_padded_size``."""
        divisor, floor = self.size_divisibility, self.min_padded_size
        return max(-(-height // divisor) * divisor, floor), max(-(-width // divisor) * divisor, floor)


class Preprocessor(nn.Module):
    """One uint8 BGR image -> the normalised, zero-padded network input; scriptable and ``torch.export``-able.

    Steps: resize (:class:`InputSpec` rule, Pillow-identical pixels), BGR -> the network's channel order, ``(x -
    mean) / std`` in float32 (the mean cast to float32 first; maskrcnn-benchmark's ``to_bgr255`` round trip
    ``float32(u8) / 255 * 255`` gives back every integer exactly, so a plain cast equals it), zero padding at the
    bottom and right to a multiple of ``size_divisibility`` (after normalisation, as detectron2's ``ImageList``:
    padded pixels are 0, i.e. the mean colour).

    Args:
        spec: the input description.
    """

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        self.spec = spec
        self.min_size = int(spec.min_size)
        self.max_size = int(spec.max_size)
        self.size_divisibility = int(spec.size_divisibility)
        self.min_padded_size = int(spec.min_padded_size)
        self.fixed = spec.resize == "fixed"
        self.legacy = spec.resize == "shortest_edge_legacy"
        self.to_rgb = spec.channel_order == "RGB"
        # Buffers, so that moving the (scripted) module moves them too.
        self.register_buffer("pixel_mean", torch.tensor(spec.pixel_mean, dtype=torch.float32).reshape(3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(spec.pixel_std, dtype=torch.float32).reshape(3, 1, 1))

    def forward(self, image: Tensor) -> Tuple[Tensor, List[int]]:
        """Preprocesses one image.

        Args:
            image: uint8 [H, W, 3], BGR (on the module's device).

        Returns:
            float32 [3, Hp, Wp] normalised pixels padded to multiples of ``size_divisibility``, and the resized
            ``[h, w]`` inside the padding.
        """
        out_h, out_w, padded_h, padded_w = self.sizes(image.shape[0], image.shape[1])
        resized = ops.resize_image(image.contiguous(), out_h, out_w)
        pixels = self.normalize(resized)
        return F.pad(pixels, [0, padded_w - out_w, 0, padded_h - out_h]), [out_h, out_w]

    def normalize(self, image: Tensor) -> Tensor:
        """uint8 [h, w, 3] BGR (already resized) -> float32 [3, h, w] in the network's channel order, normalised."""
        if self.to_rgb:
            image = image.flip(-1)
        # float32 (x - mean) / std per channel, in this order, exactly as the official normalisers.
        return (image.permute(2, 0, 1).to(torch.float32) - self.pixel_mean) / self.pixel_std

    def sizes(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """(resized h, resized w, padded h, padded w) of an input image of size (height, width)."""
        divisor, floor = self.size_divisibility, self.min_padded_size
        if self.fixed:
            padded = max(-(-self.min_size // divisor) * divisor, floor)
            return self.min_size, self.min_size, padded, padded
        if torch.jit.is_scripting():
            # The eager rule itself, compiled into the graph: TorchScript keeps Python's float64 arithmetic.
            if self.legacy:
                out_h, out_w = legacy_resized_hw(height, width, self.min_size, self.max_size)
            else:
                out_h, out_w = resized_hw(height, width, self.min_size, self.max_size)
            return out_h, out_w, max(-(-out_h // divisor) * divisor, floor), max(-(-out_w // divisor) * divisor, floor)
        return self._sizes_outside_script(height, width)

    @torch.jit.unused
    def _sizes_outside_script(self, height: Any, width: Any) -> Tuple[int, int, int, int]:
        divisor, floor = self.size_divisibility, self.min_padded_size
        if not torch.compiler.is_compiling():
            rule = legacy_resized_hw if self.legacy else resized_hw
            out_h, out_w = rule(height, width, self.min_size, self.max_size)
            if out_h < 1 or out_w < 1:
                raise ValueError(
                    f"a {height}x{width} image is too elongated for the resize rule (shortest side {self.min_size}, "
                    f"longest at most {self.max_size}): it would become {out_h}x{out_w}; crop or pad it, or pass a "
                    "larger imgsz"
                )
            return out_h, out_w, max(-(-out_h // divisor) * divisor, floor), max(-(-out_w // divisor) * divisor, floor)
        if self.legacy:
            traced = _traced_legacy_sizes(height, width, self.min_size, self.max_size, divisor)
        else:
            traced = _traced_sizes(height, width, self.min_size, self.max_size, divisor)
        out_h, out_w, padded_h, padded_w = traced
        if floor > divisor:
            padded_h, padded_w = torch.sym_max(padded_h, floor), torch.sym_max(padded_w, floor)
        return out_h, out_w, padded_h, padded_w


def pad_and_batch(
    images: Sequence[Tensor], size_divisibility: int = 32, min_padded_size: int = 0
) -> Tuple[Tensor, List[Tuple[int, int]]]:
    """Zero-pads normalised images at the bottom and right to a common size and stacks them.

    Args:
        images: [3, h_i, w_i] tensors of one dtype and device.
        size_divisibility: the padded height and width are the largest ones rounded up to a multiple of it.
        min_padded_size: the padded height and width are at least this (:attr:`InputSpec.min_padded_size`).

    Returns:
        The [B, 3, Hp, Wp] batch and each image's (h_i, w_i).
    """
    if len(images) == 0:
        raise ValueError("pad_and_batch needs at least one image")
    sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
    divisor = max(int(size_divisibility), 1)
    padded_h = -(-max(h for h, _ in sizes) // divisor) * divisor
    padded_w = -(-max(w for _, w in sizes) // divisor) * divisor
    padded_h, padded_w = max(padded_h, int(min_padded_size)), max(padded_w, int(min_padded_size))
    batch = images[0].new_zeros((len(images), images[0].shape[0], padded_h, padded_w))
    for index, (image, (h, w)) in enumerate(zip(images, sizes)):
        batch[index, :, :h, :w].copy_(image)
    return batch, sizes


def _traced_sizes(height: Any, width: Any, min_size: int, max_size: int, divisor: int) -> Tuple[int, int, int, int]:
    # Under torch.export, H and W are symbols and branching on them would specialise the graph, so resized_hw
    # (which branches on the sizes) cannot be traced with dynamic shapes. The resized size comes from the float64
    # rule evaluated on tensors (exactly resized_hw) and is therefore a data-dependent size. The network input
    # must not be one: Inductor mis-compiles convolutions over data-dependent sizes (it assumes layouts that the
    # kernels do not produce). So the padded size is computed symbolically from the exact rational rule, which
    # equals the float rule except at exact x.5 ties, where the float rule may round down by one pixel; the
    # padding then differs only if that pixel crosses a multiple of size_divisibility (none in 800k sizes
    # tested), and stays valid because the rational size is never smaller.
    out_h, out_w = tensor_resized_hw(height, width, min_size, max_size)
    bound_h, bound_w = rational_resized_hw(height, width, min_size, max_size)
    padded_h = (bound_h + divisor - 1) // divisor * divisor
    padded_w = (bound_w + divisor - 1) // divisor * divisor
    for size, bound in ((out_h, bound_h), (out_w, bound_w)):
        torch._check(size >= 1)
        torch._check(size <= bound)
        torch._check(size >= bound - 1)
    return out_h, out_w, padded_h, padded_w


def _traced_legacy_sizes(
    height: Any, width: Any, min_size: int, max_size: int, divisor: int
) -> Tuple[int, int, int, int]:
    # The legacy rule is exact integer arithmetic, so the padded size is a symbolic expression of H and W (the
    # network input must be backed-symbolic, see _traced_sizes). The resized size itself is made data-dependent
    # (the same integers through a tensor): code after the network compares it with map and image sizes (clipping,
    # mask pasting), and a symbolic expression would let the tracer specialise those comparisons to the example
    # image (a guard that fails on elongated inputs); an unbacked size carries no such guard, only the bounds below.
    bound_h, bound_w = symbolic_legacy_resized_hw(height, width, min_size, max_size)
    padded_h = (bound_h + divisor - 1) // divisor * divisor
    padded_w = (bound_w + divisor - 1) // divisor * divisor
    sizes = torch.stack([torch.full((), bound_h, dtype=torch.int64), torch.full((), bound_w, dtype=torch.int64)])
    out_h, out_w = sizes[0].item(), sizes[1].item()
    for size, padded in ((out_h, padded_h), (out_w, padded_w)):
        torch._check(size >= 1)
        torch._check(size <= padded)
        torch._check(size > padded - divisor)
    return out_h, out_w, padded_h, padded_w
