"""The shared anchor head and the flattening of its outputs into anchor order."""

from __future__ import annotations

import pytest
import torch

from pysalient.detection.anchors import AnchorGenerator
from pysalient.heads.anchor_head import AnchorHead, flatten_anchor_outputs


def test_flatten_puts_the_values_of_one_anchor_in_one_row_in_generator_order() -> None:
    # 2 anchors x 3 values on a 2 x 2 map: channel a * 3 + k holds value k of anchor a.
    level = torch.zeros(1, 6, 2, 2)
    for anchor in range(2):
        for value in range(3):
            for row in range(2):
                for col in range(2):
                    level[0, anchor * 3 + value, row, col] = 1000 * row + 100 * col + 10 * anchor + value
    rows = flatten_anchor_outputs([level, level[:, :, :1, :1]], 3)
    assert rows.shape == (1, 10, 3)
    # row index = (cell row * W + cell col) * A + anchor, as AnchorGenerator lists anchors.
    assert rows[0, 3].tolist() == [110.0, 111.0, 112.0]  # cell (0, 1), anchor 1
    assert rows[0, 4].tolist() == [1000.0, 1001.0, 1002.0]  # cell (1, 0), anchor 0
    assert rows[0, 8].tolist() == [0.0, 1.0, 2.0]  # second level starts after 8 rows
    anchors = AnchorGenerator([[16], [32]], [0.5, 2.0], [4, 8], legacy=True)([level, level[:, :, :1, :1]])
    assert sum(a.shape[0] for a in anchors) == rows.shape[1]


def test_head_shares_weights_over_levels_and_initialises_normal() -> None:
    torch.manual_seed(0)
    head = AnchorHead(16, 3, 2, hidden_channels=32)
    assert head.cls_logits.out_channels == 6 and head.bbox_pred.out_channels == 12
    assert head.cls_logits.kernel_size == (3, 3)
    assert abs(float(head.conv.weight.detach().std()) - 0.01) < 0.002
    assert float(head.conv.bias.detach().abs().max()) == 0.0
    feature = torch.randn(2, 16, 5, 7)
    logits, deltas = head([feature, feature[:, :, :3, :3]])
    assert logits[0].shape == (2, 6, 5, 7) and deltas[1].shape == (2, 12, 3, 3)
    # the same weights on both levels: the interior of the cropped level equals the full level's interior
    torch.testing.assert_close(logits[1][:, :, :1, :1], logits[0][:, :, :1, :1])
    scripted = torch.jit.script(head)
    for eager, compiled in zip(logits, scripted([feature, feature[:, :, :3, :3]])[0]):
        torch.testing.assert_close(eager, compiled)


def test_bad_head_settings_raise() -> None:
    with pytest.raises(ValueError, match="predictor_kernel"):
        AnchorHead(16, 3, 2, predictor_kernel=5)
    with pytest.raises(ValueError, match="positive"):
        AnchorHead(16, 0, 2)
