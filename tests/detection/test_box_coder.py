"""Box coders against hand-computed cases (detectron2's box-transform test style), round trips and scripting."""

from __future__ import annotations

import math

import pytest
import torch

from pysalient.detection.box_coder import DEFAULT_SCALE_CLAMP, DeltaBoxCoder, decode_distances, encode_distances


def test_delta_encoding_by_hand() -> None:
    # reference: w 10, h 20, centre (5, 10); target: w 20, h 40, centre (12, 24)
    reference = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    target = torch.tensor([[2.0, 4.0, 22.0, 44.0]])
    deltas = DeltaBoxCoder().encode(reference, target)
    torch.testing.assert_close(deltas, torch.tensor([[0.7, 0.7, math.log(2), math.log(2)]]))
    weighted = DeltaBoxCoder(weights=(10.0, 10.0, 5.0, 5.0)).encode(reference, target)
    torch.testing.assert_close(weighted, torch.tensor([[7.0, 7.0, 5 * math.log(2), 5 * math.log(2)]]))
    torch.testing.assert_close(DeltaBoxCoder().decode(deltas, reference), target)


def test_legacy_convention_counts_both_end_pixels() -> None:
    # the same boxes in the +1 convention: x2 = x1 + w - 1
    reference = torch.tensor([[0.0, 0.0, 9.0, 19.0]])
    target = torch.tensor([[2.0, 4.0, 21.0, 43.0]])
    coder = DeltaBoxCoder(legacy=True)
    deltas = coder.encode(reference, target)
    torch.testing.assert_close(deltas, torch.tensor([[0.7, 0.7, math.log(2), math.log(2)]]))
    torch.testing.assert_close(coder.decode(deltas, reference), target)
    # without the convention the same corners are other boxes
    assert not torch.allclose(DeltaBoxCoder().encode(reference, target), deltas)


def test_identity_and_class_specific_decoding() -> None:
    reference = torch.tensor([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 1.0, 1.0]])
    zeros = torch.zeros(2, 8)  # two classes per reference, zero deltas: the reference itself
    torch.testing.assert_close(DeltaBoxCoder().decode(zeros, reference), reference.repeat(1, 2))
    shift = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, -0.5, 0.0, 0.0]] * 2)
    decoded = DeltaBoxCoder().decode(shift, reference)
    # second class of the first reference: centre moves by 1 width (20) right and half a height (40) up
    torch.testing.assert_close(decoded[0, 4:], torch.tensor([30.0, 0.0, 50.0, 40.0]))


def test_scale_clamp_bounds_the_decoded_size() -> None:
    reference = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    huge = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    decoded = DeltaBoxCoder().decode(huge, reference)
    size = 16 * math.exp(DEFAULT_SCALE_CLAMP)  # 1000 px
    torch.testing.assert_close(decoded, torch.tensor([[8 - size / 2, 8 - size / 2, 8 + size / 2, 8 + size / 2]]))
    assert torch.isfinite(decoded).all()


def test_round_trip_on_random_boxes_float64() -> None:
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(200, 2, generator=generator, dtype=torch.float64) * 100
    sizes = torch.rand(200, 2, generator=generator, dtype=torch.float64) * 50 + 1
    reference = torch.cat([corners, corners + sizes], dim=1)
    target = reference + torch.randn(200, 4, generator=generator, dtype=torch.float64)
    target[:, 2:] = torch.maximum(target[:, 2:], target[:, :2] + 0.5)
    for legacy in (False, True):
        coder = DeltaBoxCoder(weights=(10.0, 10.0, 5.0, 5.0), legacy=legacy)
        torch.testing.assert_close(coder.decode(coder.encode(reference, target), reference), target)


@pytest.mark.parametrize("weights, clamp", [((1.0, 1.0, 1.0), 1.0), ((1.0, 0.0, 1.0, 1.0), 1.0), ((1.0,) * 4, 0.0)])
def test_bad_coder_settings_are_rejected(weights, clamp) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="DeltaBoxCoder"):
        DeltaBoxCoder(weights=weights, scale_clamp=clamp)
    with pytest.raises(ValueError, match="multiple of 4"):
        DeltaBoxCoder().decode(torch.zeros(2, 6), torch.zeros(2, 4))


def test_distances_by_hand_and_broadcast() -> None:
    points = torch.tensor([[5.0, 5.0], [12.0, 1.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0], [4.0, 2.0, 8.0, 6.0]])
    distances = encode_distances(points[:, None], boxes[None])  # [2 points, 2 boxes, 4]
    expected = torch.tensor(
        [[[5.0, 5.0, 5.0, 15.0], [1.0, 3.0, 3.0, 1.0]], [[12.0, 1.0, -2.0, 19.0], [8.0, -1.0, -4.0, 5.0]]]
    )
    torch.testing.assert_close(distances, expected)
    # positive exactly inside; decoding gives the boxes back
    assert (distances.min(dim=-1).values > 0).tolist() == [[True, True], [False, False]]
    torch.testing.assert_close(decode_distances(points[:, None], distances), boxes[None].expand(2, 2, 4))


def test_coders_script() -> None:
    scripted_decode = torch.jit.script(decode_distances)
    scripted_encode = torch.jit.script(encode_distances)
    points, boxes = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 1.0, 6.0, 9.0]])
    torch.testing.assert_close(scripted_decode(points, scripted_encode(points, boxes)), boxes)

    @torch.jit.script
    def round_trip(reference: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        coder = DeltaBoxCoder((10.0, 10.0, 5.0, 5.0), 4.135166556742356, True)
        return coder.decode(coder.encode(reference, target), reference)

    assert 4.135166556742356 == DEFAULT_SCALE_CLAMP
    reference, target = torch.tensor([[0.0, 0.0, 9.0, 19.0]]), torch.tensor([[2.0, 4.0, 21.0, 43.0]])
    torch.testing.assert_close(round_trip(reference, target), target)


def test_decoding_no_rows_gives_no_boxes() -> None:
    for k in (1, 3):
        assert DeltaBoxCoder().decode(torch.zeros(0, 4 * k), torch.zeros(0, 4)).shape == (0, 4 * k)
