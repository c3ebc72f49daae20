"""The test-time resize rule shared by the models, the data transforms and the exports: detectron2's
``ResizeShortestEdge`` output size (shortest side to ``min_size``, longest capped at ``max_size``)."""

from __future__ import annotations

from typing import Tuple


def resized_hw(height: int, width: int, min_size: int, max_size: int) -> Tuple[int, int]:
    """Output size of the test-time resize (detectron2 ``ResizeShortestEdge.get_output_shape``).

    The arithmetic order is detectron2's, so sizes that land on x.5 round the same way. This is the only
    implementation of the rule on numbers, used by the models' test-time preprocessing, the training transforms'
    test resize and, compiled into TorchScript graphs, the export contract
    (:class:`pysalient.export.contract.ExportContract`): eager predict and the exported model resize to the same
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
