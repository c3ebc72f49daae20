"""Hand-checked values of the SparseInst building blocks and of its pre- and post-processing."""

from __future__ import annotations

import pytest
import torch

from pysalient import ops
from pysalient.models.sparseinst import pad_and_batch, postprocess, postprocess_single, resized_hw
from pysalient.models.sparseinst.decoder import (
    GroupInstanceBranch,
    GroupInstanceSoftBranch,
    InstanceBranch,
    coordinate_features,
    group_query_features,
)


def test_coordinate_channels_are_x_then_y_with_the_arange_formula() -> None:
    coordinates = coordinate_features(torch.zeros(2, 7, 3, 5, dtype=torch.float64))
    assert coordinates.shape == (2, 2, 3, 5) and coordinates.dtype == torch.float64
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    y = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.equal(coordinates[1, 0], x.expand(3, 5))
    assert torch.equal(coordinates[0, 1], y[:, None].expand(3, 5))
    # -1 + 2*i/(n-1) (official) rather than linspace: they round differently for some n.
    n = 56
    expected = -1.0 + 2.0 * torch.arange(n) / (n - 1)
    assert torch.equal(coordinate_features(torch.zeros(1, 1, 1, n))[0, 0, 0], expected)
    # A size-1 axis gets -1 instead of the official 0/0.
    assert torch.equal(coordinate_features(torch.zeros(1, 1, 1, 1)), torch.tensor([[[[-1.0]], [[-1.0]]]]))


def test_group_features_are_query_major_group_minor() -> None:
    groups, queries, channels = 2, 3, 2
    # Row g*N + q holds the features of group g of query q, here encoded as 100*g + 10*q + c.
    pooled = torch.tensor(
        [[[100.0 * g + 10 * q + c for c in range(channels)] for g in range(groups) for q in range(queries)]]
    )
    combined = group_query_features(pooled, groups)
    expected = torch.tensor([[[0.0, 1, 100, 101], [10, 11, 110, 111], [20, 21, 120, 121]]])
    assert torch.equal(combined, expected)


def test_activation_maps_pool_a_weighted_mean() -> None:
    torch.manual_seed(0)
    features = torch.randn(1, 8, 4, 5)
    # Constant activation maps pool the spatial mean with either normalisation.
    iam = torch.full((1, 3, 4, 5), -2.0)
    mean = features.mean((2, 3))[:, None, :].expand(1, 3, 8)
    kwargs = dict(num_queries=3, num_classes=2, kernel_dim=4, num_convs=1, dim=8)
    torch.testing.assert_close(InstanceBranch(8, **kwargs).pool(iam, features), mean)
    soft = GroupInstanceSoftBranch(8, groups=2, **kwargs)
    torch.testing.assert_close(soft.pool(iam, features), mean)
    # The softmax bias shifts every logit equally: it changes nothing (kept for checkpoint compatibility).
    iam = torch.randn(1, 3, 4, 5)
    before = soft.pool(iam, features)
    with torch.no_grad():
        soft.softmax_bias.fill_(5.0)
    torch.testing.assert_close(soft.pool(iam, features), before)
    # One-hot maps pick the feature vector under them; sigmoid weights are normalised by their sum.
    iam = torch.full((1, 1, 4, 5), -30.0)
    iam[0, 0, 2, 3] = 30.0
    branch = InstanceBranch(8, **{**kwargs, "num_queries": 1})
    torch.testing.assert_close(branch.pool(iam, features)[0, 0], features[0, :, 2, 3], atol=1e-6, rtol=0)


def test_group_branch_shapes() -> None:
    branch = GroupInstanceBranch(10, num_queries=5, num_classes=3, kernel_dim=6, num_convs=2, dim=8, groups=4)
    assert branch.iam_conv.weight.shape == (20, 2, 3, 3)
    logits, kernels, objectness, iam = branch(torch.randn(2, 10, 6, 7))
    assert logits.shape == (2, 5, 3) and kernels.shape == (2, 5, 6) and objectness.shape == (2, 5, 1)
    assert iam.shape == (2, 20, 6, 7)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((300, 400), (320, 427)),
        ((400, 300), (427, 320)),
        ((100, 1000), (85, 853)),
        ((320, 320), (320, 320)),
        ((640, 480), (427, 320)),
        ((1, 1), (320, 320)),
    ],
)
def test_resize_rule(size: tuple, expected: tuple) -> None:
    assert resized_hw(*size, 320, 853) == expected


def test_pad_and_batch_pads_with_zeros_after_normalisation() -> None:
    images = [torch.full((3, 10, 33), 2.0), torch.full((3, 40, 5), -1.0)]
    batch, sizes = pad_and_batch(images, 32)
    assert batch.shape == (2, 3, 64, 64) and sizes == [(10, 33), (40, 5)]
    assert (batch[0, :, :10, :33] == 2).all() and batch[0].sum() == 2 * 3 * 10 * 33
    assert (batch[1, :, :40, :5] == -1).all() and batch[1].sum() == -3 * 40 * 5
    with pytest.raises(ValueError, match="at least one image"):
        pad_and_batch([])


def synthetic_outputs() -> dict:
    """Four queries on a 16x16 padded input (4x4 masks): two confident, one weak, one below threshold."""
    logits = torch.tensor([[[2.0, -1.0], [-3.0, 4.0], [-2.0, -2.5], [-12.0, -12.0]]])
    objectness = torch.tensor([[[3.0], [3.0], [0.0], [-12.0]]])
    masks = torch.full((1, 4, 4, 4), -6.0)
    masks[0, 0, :2, :2] = 6.0  # top-left quarter, fully confident
    masks[0, 1, 2:, 1:] = 0.5  # bottom-right, probability 0.62
    masks[0, 2, 1:3, 1:3] = 6.0
    masks[0, 3] = 6.0
    return {"pred_logits": logits, "pred_masks": masks, "pred_scores": objectness}


def test_postprocess_scores_sorts_and_caps() -> None:
    outputs = synthetic_outputs()
    (result,) = postprocess(outputs, [(16, 16)], (16, 16), [(32, 32)], conf=0.05, mask_threshold=0.45, max_det=100)
    assert result["masks"].shape == (3, 32, 32) and result["masks"].dtype == torch.bool
    probabilities = torch.sqrt(outputs["pred_logits"].sigmoid() * outputs["pred_scores"].sigmoid())[0]
    base_scores, labels = probabilities.max(-1)
    maskness = torch.tensor([6.0, 0.5, 6.0]).sigmoid()
    expected = base_scores[:3] * maskness
    order = torch.sort(expected, descending=True).indices
    torch.testing.assert_close(result["scores"], expected[order])
    assert torch.equal(result["labels"], labels[:3][order])
    # Query 0 covers the top-left quarter; bilinear interpolation softens its edge by a few pixels.
    first = result["masks"][order.tolist().index(0)]
    assert first[:12, :12].all() and not first[20:].any() and not first[:, 20:].any()
    capped = postprocess_single(
        outputs["pred_logits"][0],
        outputs["pred_masks"][0],
        outputs["pred_scores"][0],
        (16, 16),
        (16, 16),
        (32, 32),
        conf=0.05,
        max_det=1,
    )
    assert torch.equal(capped["scores"], result["scores"][:1])
    unsorted = postprocess_single(
        outputs["pred_logits"][0],
        outputs["pred_masks"][0],
        outputs["pred_scores"][0],
        (16, 16),
        (16, 16),
        (32, 32),
        conf=0.05,
        sort=False,
        max_det=-1,
    )
    torch.testing.assert_close(unsorted["scores"], expected)


def test_postprocess_drops_confident_queries_whose_mask_is_empty() -> None:
    outputs = synthetic_outputs()
    outputs["pred_masks"][0, 1] = -6.0  # query 1 passes the class threshold but has no mask pixel
    (result,) = postprocess(outputs, [(16, 16)], (16, 16), [(32, 32)], conf=0.05, mask_threshold=0.45)
    assert result["scores"].shape == (2,) and result["masks"].flatten(1).any(dim=1).all()
    assert torch.all(result["boxes"][:, 2] > result["boxes"][:, 0])


def test_postprocess_with_no_detection_keeps_every_field() -> None:
    outputs = synthetic_outputs()
    (result,) = postprocess(outputs, [(16, 12)], (16, 16), [(20, 15)], conf=0.99)
    assert result["masks"].shape == (0, 20, 15) and result["masks"].dtype == torch.bool
    assert result["boxes"].shape == (0, 4)
    assert result["scores"].shape == (0,) and result["labels"].shape == (0,) and result["labels"].dtype == torch.int64
    with pytest.raises(ValueError, match="image sizes"):
        postprocess(outputs, [(16, 16), (16, 16)], (16, 16), [(32, 32)])


@pytest.mark.skipif(not ops.has_native(), reason="scripted code calls the native upsample_masks op")
def test_postprocess_single_is_scriptable() -> None:
    outputs = synthetic_outputs()
    args = (
        outputs["pred_logits"][0],
        outputs["pred_masks"][0],
        outputs["pred_scores"][0],
        (16, 16),
        (16, 12),
        (20, 15),
    )
    scripted = torch.jit.script(postprocess_single)
    eager = postprocess_single(*args, conf=0.05)
    result = scripted(*args, 0.05, 0.45, 100, True)
    assert result.keys() == eager.keys() and all(torch.equal(result[key], eager[key]) for key in eager)
