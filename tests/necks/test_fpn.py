"""FPN and its top blocks against hand-computed values (identity-like convolutions make the sums visible)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pysalient.necks.fpn import FPN, LastLevelAvgPool, LastLevelMaxPool, LastLevelP6P7, level_strides


def _identity_(conv: nn.Conv2d) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        centre = conv.kernel_size[0] // 2
        for channel in range(min(conv.in_channels, conv.out_channels)):
            conv.weight[channel, channel, centre, centre] = 1.0
        if conv.bias is not None:
            conv.bias.zero_()


def _identity_fpn(upsample: str, top_block=None) -> FPN:  # noqa: ANN001
    fpn = FPN(["res3", "res4"], [1, 1], 1, upsample=upsample, top_block=top_block)
    for conv in [*fpn.lateral_convs, *fpn.output_convs]:
        _identity_(conv)
    return fpn


def test_nearest_top_down_sums_by_hand() -> None:
    fpn = _identity_fpn("nearest")
    coarse = torch.tensor([[1.0, 2.0]]).reshape(1, 1, 1, 2)
    fine = torch.arange(8.0).reshape(1, 1, 2, 4)
    p3, p4 = fpn({"res3": fine, "res4": coarse})
    assert torch.equal(p4, coarse)
    assert p3[0, 0].tolist() == [[1, 2, 4, 5], [5, 6, 8, 9]]  # fine + nearest x2 of [1, 2]


def test_bilinear_top_down_by_hand() -> None:
    fpn = _identity_fpn("bilinear")
    coarse = torch.tensor([[0.0, 4.0]]).reshape(1, 1, 1, 2)
    p3, _ = fpn({"res3": torch.zeros(1, 1, 1, 4), "res4": coarse})
    # align_corners=False: samples at x = -0.25, 0.25, 0.75, 1.25 of [0, 4] (clamped at the edges).
    assert p3[0, 0, 0].tolist() == [0.0, 1.0, 3.0, 4.0]


def test_top_blocks() -> None:
    p5 = torch.arange(15.0).reshape(1, 1, 3, 5)
    assert LastLevelMaxPool()(p5, p5)[0][0, 0].tolist() == [[0, 2, 4], [10, 12, 14]]
    # 2x2 means; blocks cut by the odd border average the cells they have.
    assert LastLevelAvgPool()(p5, p5)[0][0, 0].tolist() == [[3, 5, 6.5], [10.5, 12.5, 14]]
    block = LastLevelP6P7(1, 1, use_p5=True)
    for conv in (block.p6, block.p7):
        _identity_(conv)
    p6, p7 = block(p5 - 7.0, torch.zeros(1, 1, 3, 5))
    assert p6[0, 0].tolist() == [[-7, -5, -3], [3, 5, 7]]  # stride-2 centre taps of P5 (not C5)
    assert p7[0, 0].tolist() == [[0, 0]]  # ReLU(P6) before P7: the centre tap -7 becomes 0
    from_c5 = LastLevelP6P7(2, 1, use_p5=False)
    assert from_c5.p6.in_channels == 2


def test_fpn_levels_shapes_scripting_and_names() -> None:
    fpn = FPN(["res3", "res4", "res5"], [8, 16, 32], 4, top_block=LastLevelP6P7(4, 4))
    features = {
        "res3": torch.randn(1, 8, 40, 56),
        "res4": torch.randn(1, 16, 20, 28),
        "res5": torch.randn(1, 32, 10, 14),
    }
    outputs = fpn(features)
    assert fpn.num_levels == 5 and [tuple(o.shape[-2:]) for o in outputs] == [
        (40, 56),
        (20, 28),
        (10, 14),
        (5, 7),
        (3, 4),
    ]
    scripted = torch.jit.script(fpn)
    for a, b in zip(outputs, scripted(features)):
        assert torch.equal(a, b)
    assert "top_block.p6.weight" in fpn.state_dict() and "lateral_convs.2.bias" in fpn.state_dict()
    assert level_strides(8, 5) == [8, 16, 32, 64, 128]
    with pytest.raises(ValueError, match="upsample"):
        FPN(["res3"], [8], 4, upsample="cubic")


def test_without_the_last_output_conv_the_coarsest_level_is_its_lateral() -> None:
    fpn = FPN(["res3", "res4"], [1, 1], 1, upsample="bilinear", top_block=LastLevelAvgPool(), last_output_conv=False)
    assert len(fpn.output_convs) == 1 and fpn.num_levels == 3
    for conv in [*fpn.lateral_convs, *fpn.output_convs]:
        _identity_(conv)
    with torch.no_grad():
        fpn.lateral_convs[1].weight.fill_(2.0)  # P4 = 2 x C4 with no 3x3 convolution after it
    coarse = torch.tensor([[1.0, 3.0], [5.0, 7.0]]).reshape(1, 1, 2, 2)
    p3, p4, p5 = fpn({"res3": torch.zeros(1, 1, 4, 4), "res4": coarse})
    assert torch.equal(p4, 2 * coarse)
    assert p5.flatten().tolist() == [8.0]  # the 2x2 average of P4
    assert p3.shape == (1, 1, 4, 4)
    scripted = torch.jit.script(fpn)
    for eager, compiled in zip(
        fpn({"res3": torch.zeros(1, 1, 4, 4), "res4": coarse}),
        scripted({"res3": torch.zeros(1, 1, 4, 4), "res4": coarse}),
    ):
        assert torch.equal(eager, compiled)
