"""Hand-checked values of the SparseInst building blocks and of its pre- and post-processing."""

from __future__ import annotations

import pytest
import torch

from pysalient import ops
from pysalient.inputs import pad_and_batch
from pysalient.models.family import InferenceSpec
from pysalient.models.sparseinst import SparseInstConfig, SparseInstDetector, postprocess_single
from pysalient.models.sparseinst.decoder import (
    GroupInstanceBranch,
    GroupInstanceSoftBranch,
    InstanceBranch,
    coordinate_features,
    group_query_features,
)
from pysalient.utils.resize import resized_hw


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


def run_postprocess(outputs: dict, image_hw=(16, 16), output_hw=(32, 32), conf=0.0, **options) -> dict:  # noqa: ANN001
    """postprocess_single on image 0 of ``outputs`` as a dict of its four outputs."""
    boxes, scores, labels, masks = postprocess_single(
        outputs["pred_logits"][0],
        outputs["pred_masks"][0],
        outputs["pred_scores"][0],
        [16, 16],
        list(image_hw),
        list(output_hw),
        torch.tensor(conf),
        **options,
    )
    return {"boxes": boxes, "scores": scores, "labels": labels, "masks": masks}


def expected_final_scores(outputs: dict) -> tuple:
    """Final scores (class x objectness, geometric mean, times maskness) and labels of the first three queries."""
    probabilities = torch.sqrt(outputs["pred_logits"].sigmoid() * outputs["pred_scores"].sigmoid())[0]
    base_scores, labels = probabilities.max(-1)
    maskness = torch.tensor([6.0, 0.5, 6.0]).sigmoid()
    return base_scores[:3] * maskness, labels[:3]


def test_postprocess_scores_sorts_and_caps() -> None:
    outputs = synthetic_outputs()
    result = run_postprocess(outputs, candidate_threshold=0.05)
    assert result["masks"].shape == (3, 32, 32) and result["masks"].dtype == torch.uint8
    expected, labels = expected_final_scores(outputs)
    order = torch.sort(expected, descending=True).indices
    torch.testing.assert_close(result["scores"], expected[order])
    assert torch.equal(result["labels"], labels[order])
    # Query 0 covers the top-left quarter; bilinear interpolation softens its edge by a few pixels.
    first = result["masks"][order.tolist().index(0)].bool()
    assert first[:12, :12].all() and not first[20:].any() and not first[:, 20:].any()
    capped = run_postprocess(outputs, candidate_threshold=0.05, max_det=1)
    assert torch.equal(capped["scores"], result["scores"][:1])
    unsorted = run_postprocess(outputs, candidate_threshold=0.05, sort=False, max_det=-1)
    torch.testing.assert_close(unsorted["scores"], expected)


def test_conf_is_the_minimum_final_score_after_rescoring() -> None:
    outputs = synthetic_outputs()
    expected, _ = expected_final_scores(outputs)
    # Query 1's score before rescoring is ~0.96; maskness 0.62 brings it to ~0.59. conf 0.7 must drop it although
    # its class score passes (the old meaning of conf), and conf equal to a score keeps that instance.
    probabilities = torch.sqrt(outputs["pred_logits"].sigmoid() * outputs["pred_scores"].sigmoid())[0]
    assert probabilities.max(-1).values[1] > 0.7 > expected[1]
    kept = run_postprocess(outputs, conf=0.7, candidate_threshold=0.05)
    torch.testing.assert_close(kept["scores"], torch.sort(expected[expected >= 0.7], descending=True).values)
    every = run_postprocess(outputs, candidate_threshold=0.05)["scores"]
    at_score = run_postprocess(outputs, conf=float(every[1]), candidate_threshold=0.05)["scores"]
    assert torch.equal(at_score, every[:2])  # an instance scoring exactly conf is kept
    assert len(run_postprocess(outputs, conf=1.0, candidate_threshold=0.05)["scores"]) == 0


def test_detector_runs_the_batch_with_one_conf_per_call() -> None:
    torch.manual_seed(0)
    config = SparseInstConfig(
        backbone="resnet18",
        backbone_norm="BN",
        backbone_width_multiplier=0.25,
        encoder_channels=32,
        num_queries=8,
        kernel_dim=16,
        inst_convs=1,
        inst_dim=32,
        mask_convs=1,
        mask_dim=32,
        groups=4,
    )
    from pysalient.models.sparseinst import build_sparseinst

    network = build_sparseinst(config).eval()
    detector = SparseInstDetector(network, config, InferenceSpec(score_threshold=0.0, mask_threshold=0.45, max_det=5))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        both = detector(images, [[64, 64], [40, 64]], [[30, 30], [20, 32]], torch.tensor(0.0))
        alone = detector(images[1:], [[40, 64]], [[20, 32]], torch.tensor(0.0))
    assert len(both) == 2 and both[1][3].shape[1:] == (20, 32) and len(both[0][1]) <= 5
    for ours, reference in zip(both[1], alone[0]):
        torch.testing.assert_close(ours.float(), reference.float(), atol=1e-5, rtol=0)


def test_postprocess_drops_confident_queries_whose_mask_is_empty() -> None:
    outputs = synthetic_outputs()
    outputs["pred_masks"][0, 1] = -6.0  # query 1 passes the class threshold but has no mask pixel
    result = run_postprocess(outputs, candidate_threshold=0.05, mask_threshold=0.45)
    assert result["scores"].shape == (2,) and result["masks"].flatten(1).any(dim=1).all()
    assert torch.all(result["boxes"][:, 2] > result["boxes"][:, 0])


def test_postprocess_with_no_detection_keeps_every_field() -> None:
    outputs = synthetic_outputs()
    result = run_postprocess(outputs, (16, 12), (20, 15), candidate_threshold=0.99)
    assert result["masks"].shape == (0, 20, 15) and result["masks"].dtype == torch.uint8
    assert result["boxes"].shape == (0, 4) and result["boxes"].dtype == torch.float32
    assert result["scores"].shape == (0,) and result["labels"].shape == (0,) and result["labels"].dtype == torch.int64


@pytest.mark.skipif(not ops.has_native(), reason="scripted code calls the native upsample_masks op")
def test_postprocess_single_is_scriptable() -> None:
    outputs = synthetic_outputs()
    args = (
        outputs["pred_logits"][0],
        outputs["pred_masks"][0],
        outputs["pred_scores"][0],
        [16, 16],
        [16, 12],
        [20, 15],
        torch.tensor(0.1),
    )
    scripted = torch.jit.script(postprocess_single)
    eager = postprocess_single(*args, 0.05)
    result = scripted(*args, 0.05, 0.45, 100, True)
    assert len(eager[1]) > 0 and all(torch.equal(ours, reference) for ours, reference in zip(result, eager))
