"""The test-time resize rules shared by the input pipeline, the data transforms and the exports: detectron2's
``ResizeShortestEdge`` output size (shortest side to ``min_size``, longest capped at ``max_size``) on numbers
(:func:`resized_hw`, scriptable), on symbolic sizes (:func:`tensor_resized_hw`, :func:`rational_resized_hw`, for
``torch.export``), the fixed-size rule (:func:`fixed_hw`), and maskrcnn-benchmark's shortest-edge rule
(:func:`legacy_resized_hw` on numbers and TorchScript, :func:`symbolic_legacy_resized_hw` for ``torch.export``)."""

from __future__ import annotations

from typing import Any, Tuple

import torch


def resized_hw(height: int, width: int, min_size: int, max_size: int) -> Tuple[int, int]:
    """Output size of the test-time resize (detectron2 ``ResizeShortestEdge.get_output_shape``).

    The arithmetic order is detectron2's, so sizes that land on x.5 round the same way. This is the only
    implementation of the rule on numbers, used by the models' test-time preprocessing, the training transforms'
    test resize and, compiled into TorchScript graphs, the export contract
    (:class:`pysalient.inputs.Preprocessor`): eager predict and the exported model resize to the same
    size by construction. Keep it scriptable (``torch.jit.script(resized_hw)``
    is tested).

    Args:
        height, width: input size.
        min_size: target of the shortest side.
        max_size: cap of the longest side.

    Returns:
        (new_height, new_width).

    Raises:
        ValueError: ``height`` or ``width`` is below 1.
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize an empty {height}x{width} image")
    scale = min_size * 1.0 / min(height, width)
    if height < width:
        new_height, new_width = float(min_size), scale * width
    else:
        new_height, new_width = scale * height, float(min_size)
    if max(new_height, new_width) > max_size:
        scale = max_size * 1.0 / max(new_height, new_width)
        new_height, new_width = new_height * scale, new_width * scale
    return int(new_height + 0.5), int(new_width + 0.5)


def fixed_hw(height: int, width: int, size: int) -> Tuple[int, int]:
    """Output size of the fixed resize (S4Net: every image to ``size`` x ``size``, aspect ratio not kept).

    Raises:
        ValueError: ``height`` or ``width`` is below 1.
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize an empty {height}x{width} image")
    return size, size


def rational_resized_hw(height: Any, width: Any, min_size: int, max_size: int) -> Tuple[Any, Any]:
    """The resize rule in exact integer arithmetic, as symbolic expressions of ``height`` and ``width``.

    ``scale = min(min_size / short, max_size / long)`` and each side is ``floor(side * scale + 1/2)``; because
    floor is monotonic that is the minimum of the two roundings, computed with floor divisions only. It equals
    ``resized_hw`` except at exact x.5 ties, where the float rule can give one pixel less.
    """
    short, long = torch.sym_min(height, width), torch.sym_max(height, width)

    def side(length: Any) -> Any:
        by_short = (2 * length * min_size + short) // (2 * short)
        by_long = (2 * length * max_size + long) // (2 * long)
        return torch.sym_min(by_short, by_long)

    return side(height), side(width)


def tensor_resized_hw(height: Any, width: Any, min_size: int, max_size: int) -> Tuple[Any, Any]:
    """The resize rule without branches, on float64 tensors: exportable with symbolic ``height`` and ``width``.

    Every step is one correctly rounded IEEE float64 operation, the same as in ``resized_hw`` (Python floats),
    so sizes landing near x.5 round the same way (e.g. 147x294 -> 426x853 at 640/853, where exact arithmetic
    would give 427).

    Args:
        height, width: input size (ints or SymInts).
        min_size: target of the shortest side.
        max_size: cap of the longest side.

    Returns:
        (new_height, new_width): ints in eager mode, SymInts under tracing.
    """
    h = torch.full((), height, dtype=torch.float64)
    w = torch.full((), width, dtype=torch.float64)
    target = torch.full((), float(min_size), dtype=torch.float64)
    scale = target / torch.minimum(h, w)
    height_is_short = h < w
    new_h = torch.where(height_is_short, target, scale * h)
    new_w = torch.where(height_is_short, scale * w, target)
    longest = torch.maximum(new_h, new_w)
    capped = longest > max_size
    cap = torch.full((), float(max_size), dtype=torch.float64) / longest
    new_h = torch.where(capped, new_h * cap, new_h)
    new_w = torch.where(capped, new_w * cap, new_w)
    # int(x + 0.5) truncates, which is floor for these positive sizes.
    sizes = torch.floor(torch.stack([new_h, new_w]) + 0.5).to(torch.int64)
    return sizes[0].item(), sizes[1].item()


def _round_half_even(numerator: int, denominator: int) -> int:
    """``round(numerator / denominator)`` with Python 3's ties-to-even, for positive integers, exactly."""
    quotient = numerator // denominator
    twice_remainder = 2 * (numerator - quotient * denominator)
    if twice_remainder > denominator or (twice_remainder == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def legacy_resized_hw(height: int, width: int, min_size: int, max_size: int) -> Tuple[int, int]:
    """Output size of maskrcnn-benchmark's test-time ``Resize.get_size`` (RDPNet, FCOS): not detectron2's rule.

    The official rule, on Python floats: ``size = min_size``; if ``long / short * size > max_size`` then
    ``size = int(round(max_size * short / long))`` (ties to even); if the short side already equals ``size`` the
    image is not resized; otherwise the short side becomes ``size`` and the long side ``int(size * long / short)``
    (**truncated**, not rounded: 300x400 at 320/480 gives 320x426, detectron2's rule 320x427). Here it is computed
    in exact integer arithmetic, which equals the float rule for every image size that float64 represents
    exactly in these products (the float quotients are never within rounding error of an integer or of a .5 they
    do not equal). Scriptable.

    Args:
        height, width: input size.
        min_size: target of the shortest side.
        max_size: cap of the longest side.

    Returns:
        (new_height, new_width).

    Raises:
        ValueError: ``height`` or ``width`` is below 1.
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize an empty {height}x{width} image")
    short, long = min(height, width), max(height, width)
    size = min_size
    if long * min_size > max_size * short:
        size = _round_half_even(max_size * short, long)
    if short == size:
        return height, width
    # The short side becomes size (short * size // short); the long side is truncated.
    return height * size // short, width * size // short


def symbolic_legacy_resized_hw(height: Any, width: Any, min_size: int, max_size: int) -> Tuple[Any, Any]:
    """:func:`legacy_resized_hw` without branches, in integer arithmetic on (Sym)Ints: exact under ``torch.export``
    with dynamic ``height`` and ``width``, so the resized and padded sizes are symbolic expressions of the input size
    (never data-dependent).

    The capped size ``round(max_size * short / long)`` with ties to even is ``floor((2 max_size short + long) /
    (2 long))`` (ties up) minus one at a tie whose rounded-up value is odd; ``min(min_size, capped)`` is the
    official branch (the capped size is below ``min_size`` exactly when the cap applies, and equal at the
    boundary); ``side * size // short`` gives the short side ``size``, the truncated long side, and the unchanged
    size when the short side already equals ``size``.
    """
    short, long = torch.sym_min(height, width), torch.sym_max(height, width)
    numerator = 2 * max_size * short + long
    denominator = 2 * long
    half_up = numerator // denominator
    tie = 1 - torch.sym_min(numerator % denominator, 1)
    size = torch.sym_min(min_size, half_up - tie * (half_up % 2))
    return height * size // short, width * size // short
