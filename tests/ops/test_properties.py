"""Property-based tests (hypothesis) of the ops on arbitrary inputs: the invariants each op promises and parity
with the pure-PyTorch references, on boxes that are degenerate, inverted, off the map or on its border."""

from __future__ import annotations

import pytest
import torch

from pysalient import ops
from pysalient.detection.boxes import box_iou
from pysalient.ops import _reference

hypothesis = pytest.importorskip("hypothesis")
strategies = hypothesis.strategies
given, settings = hypothesis.given, hypothesis.settings

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
coordinate = strategies.floats(min_value=-20.0, max_value=120.0, allow_nan=False, width=32)
box = strategies.tuples(coordinate, coordinate, coordinate, coordinate)
image_size = strategies.tuples(strategies.integers(1, 40), strategies.integers(1, 40))
mask_threshold = strategies.floats(0.05, 0.95)


def boxes_of(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 4)


def well_formed(values: list) -> torch.Tensor:
    """Boxes with x1 <= x2 and y1 <= y2 (corners sorted)."""
    raw = boxes_of(values)
    x = torch.sort(raw[:, [0, 2]], dim=1).values
    y = torch.sort(raw[:, [1, 3]], dim=1).values
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


@SETTINGS
@given(
    values=strategies.lists(box, max_size=40),
    scores=strategies.lists(strategies.floats(0.0, 1.0, width=32), min_size=40, max_size=40),
    threshold=strategies.floats(0.0, 1.0),
    dtype=strategies.sampled_from([torch.float32, torch.float64]),
)
def test_nms_keeps_a_greedy_non_overlapping_set_equal_to_the_reference(values, scores, threshold, dtype) -> None:
    boxes = well_formed(values).to(dtype)
    score = torch.tensor(scores[: boxes.shape[0]], dtype=dtype)
    keep = ops.nms(boxes, score, threshold)
    assert torch.equal(keep, _reference.nms(boxes, score, threshold))
    assert bool((score[keep][:-1] >= score[keep][1:]).all())
    iou = box_iou(boxes[keep], boxes[keep])
    iou.fill_diagonal_(0.0)
    assert bool((iou <= threshold + 1e-6).all())  # no kept box suppresses another
    dropped = torch.ones(boxes.shape[0], dtype=torch.bool)
    dropped[keep] = False
    for index in torch.nonzero(dropped).flatten().tolist():  # every dropped box overlaps a kept one
        assert bool((box_iou(boxes[index : index + 1], boxes[keep]) > threshold - 1e-6).any())


@SETTINGS
@given(
    values=strategies.lists(box, max_size=12),
    batch=strategies.lists(strategies.integers(0, 1), min_size=12, max_size=12),
    output=strategies.integers(1, 5),
    sampling=strategies.integers(-1, 3),
    aligned=strategies.booleans(),
    scale=strategies.sampled_from([1.0, 0.5, 0.125]),
    dtype=strategies.sampled_from([torch.float32, torch.float64]),
)
def test_roi_align_equals_the_reference_on_any_box(values, batch, output, sampling, aligned, scale, dtype) -> None:
    features = torch.randn(2, 3, 11, 9, generator=torch.Generator().manual_seed(len(values)), dtype=dtype)
    boxes = boxes_of(values).to(dtype)
    rois = torch.cat([torch.tensor(batch[: boxes.shape[0]], dtype=dtype)[:, None], boxes], dim=1)
    ours = ops.roi_align(features, rois, output, scale, sampling, aligned)
    (reference,) = _reference.multilevel_roi_align([features], rois, [scale], [output], sampling, aligned)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@SETTINGS
@given(values=strategies.lists(box, max_size=8), size=image_size, threshold=mask_threshold)
def test_paste_masks_equals_the_reference_and_stays_near_its_box(values, size, threshold) -> None:
    boxes = boxes_of(values)
    masks = torch.rand(boxes.shape[0], 6, 6, generator=torch.Generator().manual_seed(len(values)))
    pasted = ops.paste_masks(masks, boxes, size[0], size[1], threshold)
    assert pasted.dtype == torch.uint8 and pasted.shape == (boxes.shape[0], *size)
    reference = _reference.paste_masks(masks, boxes, size[0], size[1], threshold)
    assert int((pasted != reference).sum()) <= max(1, pasted.numel() // 1000)  # float rounding at the threshold
    ys = torch.arange(size[0], dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(size[1], dtype=torch.float32)[None, :] + 0.5
    for (x1, y1, x2, y2), mask in zip(boxes.tolist(), pasted):
        cell_w, cell_h = abs(x2 - x1) / 6, abs(y2 - y1) / 6
        inside = (xs >= min(x1, x2) - cell_w) & (xs <= max(x1, x2) + cell_w)
        inside = inside & (ys >= min(y1, y2) - cell_h) & (ys <= max(y1, y2) + cell_h)
        assert not bool(mask.bool()[~inside].any())


@SETTINGS
@given(
    height=strategies.integers(1, 24),
    width=strategies.integers(1, 24),
    out_h=strategies.integers(1, 40),
    out_w=strategies.integers(1, 40),
)
def test_resize_image_equals_the_pillow_reference_and_keeps_constant_images(height, width, out_h, out_w) -> None:
    generator = torch.Generator().manual_seed(height * 100 + width)
    image = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    resized = ops.resize_image(image, out_h, out_w)
    assert resized.shape == (out_h, out_w, 3) and resized.dtype == torch.uint8
    assert torch.equal(resized, _reference.resize_image(image, out_h, out_w))
    constant = torch.full((height, width, 3), 77, dtype=torch.uint8)
    assert bool((ops.resize_image(constant, out_h, out_w) == 77).all())


special = strategies.sampled_from([0.0, float("inf"), -float("inf"), float("nan"), 1e30, -1e30])
logit = strategies.one_of(strategies.floats(-30.0, 30.0, width=32), special)


@SETTINGS
@given(
    n=strategies.integers(0, 5),
    k=strategies.integers(0, 4),
    p=strategies.integers(0, 30),
    dtype=strategies.sampled_from([torch.float32, torch.float64, torch.float16]),
    data=strategies.data(),
)
def test_dice_cost_equals_the_reference_for_any_logits_nan_and_inf_included(n, k, p, dtype, data) -> None:
    logits = torch.tensor(data.draw(strategies.lists(logit, min_size=n * p, max_size=n * p)), dtype=dtype)
    targets = torch.tensor(data.draw(strategies.lists(strategies.booleans(), min_size=k * p, max_size=k * p)))
    logits, targets = logits.reshape(n, p), targets.reshape(k, p)
    torch.testing.assert_close(
        ops.dice_cost(logits, targets), _reference.dice_cost(logits, targets), atol=1e-5, rtol=1e-5, equal_nan=True
    )


@SETTINGS
@given(n=strategies.integers(0, 6), k=strategies.integers(0, 6), maximize=strategies.booleans(), data=strategies.data())
def test_linear_sum_assignment_is_optimal_or_rejects_invalid_costs(n, k, maximize, data) -> None:
    value = strategies.one_of(strategies.floats(-100.0, 100.0, width=32), special)
    cost = torch.tensor(data.draw(strategies.lists(value, min_size=n * k, max_size=n * k)), dtype=torch.float32)
    cost = cost.reshape(n, k)
    try:
        rows, cols = ops.linear_sum_assignment(cost, maximize)
    except RuntimeError as error:
        assert str(error)  # the op's own message: NaN, the wrong infinity, or no finite assignment
        with pytest.raises(RuntimeError):
            _reference.linear_sum_assignment(cost, maximize)
        return
    reference_rows, reference_cols = _reference.linear_sum_assignment(cost, maximize)
    assert rows.shape == (min(n, k),) and bool((rows[:-1] < rows[1:]).all())
    assert len(set(cols.tolist())) == cols.numel()
    torch.testing.assert_close(cost[rows, cols].double().sum(), cost[reference_rows, reference_cols].double().sum())


@SETTINGS
@given(
    values=strategies.lists(box, max_size=6),
    expand=strategies.floats(0.0, 1.0),
    mode=strategies.sampled_from(["binary", "expanded_binary", "ternary"]),
    scale=strategies.sampled_from([1.0, 0.25]),
)
def test_roi_masking_equals_the_reference_on_any_box(values, expand, mode, scale) -> None:
    features = torch.randn(2, 3, 10, 12, generator=torch.Generator().manual_seed(len(values)))
    boxes = boxes_of(values)
    rois = torch.cat([(torch.arange(boxes.shape[0]) % 2).float()[:, None], boxes], dim=1)
    ours = ops.roi_masking(features, rois, scale, expand, mode)
    index = ["binary", "expanded_binary", "ternary"].index(mode)
    torch.testing.assert_close(ours, _reference.roi_masking(features, rois, scale, expand, index))


@SETTINGS
@given(
    windows=strategies.lists(
        strategies.tuples(strategies.integers(0, 1), strategies.integers(-12, 20), strategies.integers(-12, 20)),
        max_size=6,
    ),
    m=strategies.integers(1, 9),
    k=strategies.integers(1, 3),
)
def test_assemble_instances_equals_the_reference_for_windows_off_the_map(windows, m, k) -> None:
    score_maps = torch.randn(2, k * k, 9, 11, generator=torch.Generator().manual_seed(m * 10 + k))
    window_tensor = torch.tensor(windows, dtype=torch.int64).reshape(-1, 3)
    ours = ops.assemble_instances(score_maps, window_tensor, m, k)
    torch.testing.assert_close(ours, _reference.assemble_instances(score_maps, window_tensor, m, k))


@SETTINGS
@given(
    map_hw=strategies.tuples(strategies.integers(1, 8), strategies.integers(1, 8)),
    stride=strategies.sampled_from([4, 8]),
    crop=strategies.tuples(strategies.floats(0.3, 1.0), strategies.floats(0.3, 1.0)),
    output_hw=strategies.tuples(strategies.integers(1, 50), strategies.integers(1, 50)),
    threshold=strategies.floats(0.0, 0.99),
    count=strategies.integers(0, 3),
)
def test_upsample_masks_equals_the_reference(map_hw, stride, crop, output_hw, threshold, count) -> None:
    padded = [map_hw[0] * stride, map_hw[1] * stride]
    image = [max(1, int(padded[0] * crop[0])), max(1, int(padded[1] * crop[1]))]
    logits = torch.randn(count, *map_hw, generator=torch.Generator().manual_seed(sum(output_hw))) * 4
    ours = ops.upsample_masks(logits, padded, image, list(output_hw), threshold)
    reference = _reference.upsample_masks(logits, padded, image, list(output_hw), threshold)
    for mine, theirs in zip(ours, reference):
        if mine.dtype.is_floating_point:
            torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
        else:
            assert (mine != theirs).sum() <= max(1, mine.numel() // 500)  # rounding at the threshold


@SETTINGS
@given(values=strategies.lists(box, max_size=5), output_hw=image_size, threshold=mask_threshold)
def test_resize_masks_in_boxes_equals_the_reference_on_any_box(values, output_hw, threshold) -> None:
    boxes = boxes_of(values)
    probabilities = torch.rand(boxes.shape[0], 5, 6, generator=torch.Generator().manual_seed(len(values)))
    ours = ops.resize_masks_in_boxes(probabilities, boxes, [40, 48], [37, 48], list(output_hw), threshold)
    reference = _reference.resize_masks_in_boxes(probabilities, boxes, [40, 48], [37, 48], list(output_hw), threshold)
    assert ours.dtype == torch.uint8 and int((ours != reference).sum()) <= max(1, ours.numel() // 500)
