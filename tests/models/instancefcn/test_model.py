"""InstanceFCN: backbones, branches, the window rule and sampling, targets, losses, the multi-scale detector."""

from __future__ import annotations

import math
from typing import Dict, List

import pytest
import torch

from pysalient import ops
from pysalient.backbones import build_backbone
from pysalient.detection.boxes import box_iou
from pysalient.engine.train_config import TrainConfig, scaled_train_sizes
from pysalient.models import get_family
from pysalient.models.instancefcn.config import (
    PAPER_SCALE_FACTORS,
    SIS_SCALE_FACTORS,
    InstanceFCNConfig,
    instancefcn_r18_light,
    instancefcn_r50,
    instancefcn_vgg16,
    instancefcn_vgg16_sis,
)
from pysalient.models.instancefcn.detector import InstanceFCNDetector, grid_tight_boxes, mask_tight_boxes, resize_batch
from pysalient.models.instancefcn.loss import InstanceFCNCriterion
from pysalient.models.instancefcn.model import InstanceFCN
from pysalient.models.instancefcn.targets import (
    label_windows,
    on_map_weights,
    sample_windows,
    window_boxes,
    window_centres,
)

RULE = (96.0, 12.0, 0.25, 24.0, 1.0)


def rectangles_target(height: int, width: int, rectangles: List[tuple]) -> Dict[str, torch.Tensor]:
    masks = torch.zeros(len(rectangles), height, width, dtype=torch.bool)
    for index, (x1, y1, x2, y2) in enumerate(rectangles):
        masks[index, y1:y2, x1:x2] = True
    boxes = torch.tensor(rectangles, dtype=torch.float32).reshape(-1, 4)
    return {"labels": torch.zeros(len(rectangles), dtype=torch.int64), "boxes": boxes, "masks": masks}


def tiny_config(**changes) -> InstanceFCNConfig:  # noqa: ANN003
    defaults = {"branch_channels": 16, "backbone_width_multiplier": 0.25, "min_size_test": 128}
    defaults.update(changes)
    return instancefcn_r18_light(**defaults)


def test_paper_parameter_counts_and_vgg_keys_are_torchvisions() -> None:
    network = InstanceFCN(instancefcn_vgg16())
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(network.backbone) == 14_714_688  # torchvision vgg16.features
    assert count(network.instance_branch) + count(network.objectness_branch) == 2_738_202
    assert count(network) == 17_452_890
    assert network.instance_branch.score_maps.weight.numel() == 115_200  # the paper's "0.1 M" last layer
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert sorted(network.backbone.state_dict()) == sorted(
        f"features.{i}.{n}" for i in convs for n in ("weight", "bias")
    )
    dilations = [network.backbone.features[i].dilation[0] for i in convs]
    assert dilations == [1] * 10 + [2] * 3
    pool4 = network.backbone.features[23]
    assert (pool4.kernel_size, pool4.stride, pool4.padding) == (3, 1, 1)


def test_stride_8_maps_of_a_600_x_800_input_and_dilated_resnet_keeps_its_keys() -> None:
    network = InstanceFCN(tiny_config()).eval()
    with torch.no_grad():
        outputs = network(torch.zeros(1, 3, 600, 800))
    assert outputs["score_maps"][0].shape == (1, 25, 75, 100) and outputs["objectness"][0].shape == (1, 1, 75, 100)
    dilated = build_backbone("resnet50", out_features=["res5"], replace_stride_with_dilation=(False, True, True))
    plain = build_backbone("resnet50", out_features=["res5"])
    assert dilated.out_strides == {"res5": 8} and plain.out_strides == {"res5": 32}
    assert {k: v.shape for k, v in dilated.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    # torchvision's rule: the first block of a dilated stage keeps the previous dilation
    assert [block.conv2.dilation[0] for block in dilated.res4] == [1, 2, 2, 2, 2, 2]
    assert [block.conv2.dilation[0] for block in dilated.res5] == [2, 4, 4]
    assert dilated(torch.zeros(1, 3, 64, 96))["res5"].shape[-2:] == (8, 12)
    assert InstanceFCN(instancefcn_r50()).backbone.out_strides == {"res5": 8}


def test_window_geometry_and_on_map_weights() -> None:
    ys, xs, centres = window_centres(3, 4, torch.device("cpu"))
    assert ys.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and xs.tolist() == [0, 1, 2, 3] * 3
    assert centres[5].tolist() == [12.0, 12.0]  # cell (1, 1): pixel (8x + 4, 8y + 4)
    boxes = window_boxes(torch.tensor([10]), torch.tensor([12]), 21)
    assert boxes.tolist() == [[16.0, 0.0, 184.0, 168.0]]  # top-left cell (0, 2), 168 px
    weights = on_map_weights(torch.tensor([0]), torch.tensor([0]), 21, 30, 30)
    assert weights[0, :10].sum() == 0 and weights[0, :, :10].sum() == 0 and weights[0, 10:, 10:].all()


def test_positives_negatives_and_ignored_windows_follow_the_deepmask_rule() -> None:
    # one object of maximal side 96 centred at (100, 100), one of side 40 (too small: 1.26 octaves) at (20, 20)
    gt = torch.tensor([[52.0, 60.0, 148.0, 140.0], [0.0, 0.0, 40.0, 40.0]])
    ys, xs, centres = window_centres(30, 30, torch.device("cpu"))
    labels, matched = label_windows(centres, gt, *RULE)
    offsets = (centres - torch.tensor([100.0, 100.0])).abs().amax(dim=1)
    assert torch.equal(labels == 1, offsets <= 12) and (matched[labels == 1] == 0).all()
    assert labels[labels == 1].numel() == 9  # a 3x3 block of cells at stride 8 (centres 92, 100, 108 per axis)
    assert torch.equal(labels == -1, (offsets > 12) & (offsets < 24))  # the small object never blocks negatives
    # scale tolerance: sides 80.7 (2^-1/4 x 96) and 114.2 are positive, just outside is ignored
    for side, expected in ((96 * 2**-0.25 + 1e-3, 1), (96 * 2**0.25 - 1e-3, 1), (96 * 2**0.25 + 0.5, -1), (200.0, 0)):
        box = torch.tensor([[100 - side / 2, 100 - side / 2, 100 + side / 2, 100 + side / 2]])
        label, _ = label_windows(torch.tensor([[100.0, 100.0]]), box, *RULE)
        assert label.item() == expected, side
    # two candidates: the nearer centre wins; no ground truth: all negatives
    two = torch.tensor([[52.0, 52.0, 148.0, 148.0], [60.0, 52.0, 156.0, 148.0]])
    _, matched = label_windows(torch.tensor([[107.0, 100.0]]), two, *RULE)
    assert matched.item() == 1
    empty, _ = label_windows(centres, torch.zeros(0, 4), *RULE)
    assert (empty == 0).all()


def test_sampling_draws_256_windows_at_most_half_positive_and_never_an_ignored_one() -> None:
    torch.manual_seed(0)
    labels = torch.tensor([1] * 200 + [0] * 1000 + [-1] * 500)
    positive, negative = sample_windows(labels, 256, 0.5)
    assert positive.numel() == 128 and negative.numel() == 128
    few = torch.tensor([1] * 9 + [0] * 1000 + [-1] * 50)
    positive, negative = sample_windows(few, 256, 0.5)
    assert positive.numel() == 9 and negative.numel() == 247
    assert (few[positive] == 1).all() and (few[negative] == 0).all() and len(set(negative.tolist())) == 247
    positive, negative = sample_windows(torch.tensor([0] * 10 + [-1] * 10), 256, 0.5)
    assert positive.numel() == 0 and negative.numel() == 10


def test_training_targets_losses_by_hand_and_every_parameter_learns_from_fitting_objects() -> None:
    torch.manual_seed(0)
    config = tiny_config()
    network = InstanceFCN(config).train()
    target = rectangles_target(176, 176, [(40, 40, 136, 136)])  # maximal side 96: positive at its centre
    images = torch.randn(1, 3, 176, 176)
    outputs = network(images, [target])
    logits, targets = outputs["window_logits"][0], outputs["window_targets"][0]
    # centres 76, 84, 92, 100 are within 12 px of 88 on each axis: a 4x4 block of positives, all kept
    assert logits.shape == targets.shape == (256, 1) and targets.sum() == 16
    masks, weights = outputs["mask_targets"][0], outputs["mask_weights"][0]
    assert masks.shape == (16, 21, 21)
    # the window centred on cell (11, 11) spans pixels 8..176: cells 4..15 cover the square's pixels 40..136
    centre = outputs["mask_logits"][0].new_zeros(21, 21)
    centre[4:16, 4:16] = 1
    assert any(torch.equal(mask, centre) for mask in masks)
    assert weights.min() >= 0 and (weights < 1).any()  # 22x22 map: the windows of cell 9 hang off it
    losses = InstanceFCNCriterion(config)(outputs, [target])
    expected_obj = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    per_cell = torch.nn.functional.binary_cross_entropy_with_logits(outputs["mask_logits"][0], masks, reduction="none")
    assert torch.allclose(losses["loss_objectness"], expected_obj)
    assert torch.allclose(losses["loss_mask"], (per_cell * weights).sum() / weights.sum())
    sum(losses.values()).backward()
    silent = [name for name, p in network.named_parameters() if p.requires_grad and not p.grad.abs().max() > 0]
    assert silent == []
    # the assembled training logits are assemble_instances of the score maps at the windows
    score_maps = outputs["score_maps"][0]
    windows = outputs["mask_logits"][0]
    assert windows.shape[0] == 16 and torch.isfinite(windows).all() and score_maps.shape == (1, 25, 22, 22)


def test_no_positive_window_gives_zero_mask_loss_and_a_finite_objectness_loss() -> None:
    config = tiny_config()
    network = InstanceFCN(config).train()
    target = rectangles_target(64, 64, [(10, 10, 30, 30)])  # far too small to be positive
    outputs = network(torch.randn(1, 3, 64, 64), [target])
    losses = InstanceFCNCriterion(config)(outputs, [target])
    assert losses["loss_mask"].item() == 0 and torch.isfinite(losses["loss_objectness"])
    assert outputs["window_targets"][0].sum() == 0 and outputs["window_logits"][0].shape[0] == 64  # 8x8 map
    with pytest.raises(ValueError, match="needs targets"):
        network(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="training outputs"):
        InstanceFCNCriterion(config)(network.eval()(torch.randn(1, 3, 64, 64)), [target])


def test_training_overfits_one_image() -> None:
    torch.manual_seed(0)
    config = tiny_config(branch_channels=32, backbone_width_multiplier=0.5)
    network = InstanceFCN(config).train()
    criterion = InstanceFCNCriterion(config)
    target = rectangles_target(160, 160, [(30, 40, 126, 120)])
    images = torch.randn(1, 3, 160, 160)
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        losses = criterion(network(images, [target]), [target])
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({name: value.item() for name, value in losses.items()})
    assert history[-1]["loss_objectness"] < 0.3 * history[0]["loss_objectness"]
    assert history[-1]["loss_mask"] < 0.3 * history[0]["loss_mask"]


def test_tight_boxes_on_the_grid_and_in_pixels() -> None:
    binary = torch.zeros(3, 21, 21, dtype=torch.bool)
    binary[0, 2:5, 7:10] = True
    binary[1, 20, 0] = True
    boxes, nonempty = grid_tight_boxes(binary)
    assert boxes[:2].tolist() == [[7.0, 2.0, 10.0, 5.0], [0.0, 20.0, 1.0, 21.0]] and nonempty.tolist() == [1, 1, 0]
    masks = torch.zeros(2, 10, 12, dtype=torch.uint8)
    masks[0, 3:7, 2:11] = 1
    pixel_boxes, nonempty = mask_tight_boxes(masks)
    assert pixel_boxes[0].tolist() == [2.0, 3.0, 11.0, 7.0] and nonempty.tolist() == [True, False]


def test_assembling_probabilities_leaves_off_map_cells_at_exactly_zero() -> None:
    torch.manual_seed(0)
    probabilities = torch.rand(1, 25, 30, 30).sigmoid()  # every on-map value > 0.5
    windows = torch.tensor([[0, -10, -10]])
    out = ops.assemble_instances(probabilities, windows, 21, 5)[0]
    assert (out[:10] == 0).all() and (out[:, :10] == 0).all() and (out[10:, 10:] > 0.5).all()
    # local coherence (the paper's §3.2): one cell to the right = one column further, except at bin boundaries
    shifted = ops.assemble_instances(probabilities, torch.tensor([[0, 3, 4]]), 21, 5)[0]
    base = ops.assemble_instances(probabilities, torch.tensor([[0, 3, 3]]), 21, 5)[0]
    differing = [j for j in range(20) if not torch.equal(shifted[:, j], base[:, j + 1])]
    assert differing == [4, 8, 12, 16]


def test_resize_batch_is_independent_of_the_batch_padding() -> None:
    torch.manual_seed(0)
    image = torch.randn(1, 3, 40, 48)
    padded = torch.nn.functional.pad(image, [0, 32, 0, 24])
    for factor in PAPER_SCALE_FACTORS:
        alone, in_batch = resize_batch(image, factor, 8), resize_batch(padded, factor, 8)
        assert alone.shape[-2] % 8 == 0 and alone.shape[-1] % 8 == 0 and alone.shape[-2] >= 16
        inner_h, inner_w = int(40 * factor), int(48 * factor)
        torch.testing.assert_close(alone[..., :inner_h, :inner_w], in_batch[..., :inner_h, :inner_w])
    assert torch.equal(resize_batch(image, 1.0, 8)[..., :40, :48], image)


def confident_detector(config: InstanceFCNConfig, **inference) -> InstanceFCNDetector:  # noqa: ANN003
    torch.manual_seed(0)
    network = InstanceFCN(config).eval()
    with torch.no_grad():
        network.objectness_branch.logits.weight.normal_(std=0.3)
        network.objectness_branch.logits.bias.fill_(1.0)
        network.instance_branch.score_maps.weight.normal_(std=0.2)
    return InstanceFCNDetector(network, config, config.inference_spec().replace(**inference))


def test_detector_suppresses_at_0_8_pastes_inside_windows_filters_by_conf_and_scripts() -> None:
    config = tiny_config(min_size_test=96, test_scales=(0.5, 1.0, 1.5), max_det=50)
    detector = confident_detector(config)
    images = torch.randn(2, 3, 96, 128)
    sizes, outputs_hw = [[96, 128], [80, 100]], [[192, 256], [80, 100]]
    with torch.no_grad():
        results = detector(images, sizes, outputs_hw, torch.tensor(0.0))
        scripted = torch.jit.script(detector)(images, sizes, outputs_hw, torch.tensor(0.0))
    for (boxes, scores, labels, masks), (s_boxes, s_scores, _, s_masks), hw in zip(results, scripted, outputs_hw):
        assert 0 < len(scores) <= 50 and torch.all(scores[:-1] >= scores[1:]) and (labels == 0).all()
        assert masks.shape[1:] == tuple(hw) and masks.flatten(1).any(1).all()
        assert torch.equal(boxes, mask_tight_boxes(masks)[0])  # boxes are the pasted masks' tight boxes
        assert torch.equal(s_scores, scores) and torch.equal(s_masks, masks) and torch.equal(s_boxes, boxes)
    # conf filters after NMS and the cap: the same instances above it, in the same order
    middle = float(results[0][1][len(results[0][1]) // 2])
    with torch.no_grad():
        high = detector(images, sizes, outputs_hw, torch.tensor(middle))[0]
    assert torch.equal(high[1], results[0][1][results[0][1] >= middle])


def test_nms_keeps_no_two_tight_boxes_above_0_8_and_topk_none_equals_topk_large() -> None:
    config = tiny_config(min_size_test=96, test_scales=(0.75, 1.0), max_det=1000, score_threshold=0.0)
    everything = confident_detector(config.replace(pre_nms_topk_per_scale=0))
    images = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        candidates = [everything.scale_candidates(images, [[96, 96]], f)[0] for f in everything.scales]
        tight = torch.cat([c[0] for c in candidates])
        scores = torch.cat([c[1] for c in candidates])
        keep = ops.nms(tight, scores, 0.8)
        iou = box_iou(tight[keep], tight[keep])
        assert (iou - torch.eye(len(keep))).max() <= 0.8 and len(keep) < len(scores)
        all_windows = everything(images, [[96, 96]], [[96, 96]], torch.tensor(0.0))[0]
        top_k = confident_detector(config.replace(pre_nms_topk_per_scale=144))(
            images, [[96, 96]], [[96, 96]], torch.tensor(0.0)
        )[0]
    assert all(torch.equal(a, b) for a, b in zip(all_windows, top_k))  # 144 = every window of the 12x12 map
    assert sum(c[0].shape[0] for c in candidates) <= 144 + 81


def test_several_classes_score_the_best_class_and_suppress_class_wise() -> None:
    config = tiny_config(num_classes=3, min_size_test=64, test_scales=(1.0,))
    detector = confident_detector(config)
    with torch.no_grad():
        boxes, scores, labels, masks = detector(torch.randn(1, 3, 64, 64), [[64, 64]], [[64, 64]], torch.tensor(0.0))[0]
    assert labels.max() < 3 and len(set(labels.tolist())) > 1 and torch.all(scores[:-1] >= scores[1:])
    assert detector.network.objectness_branch.logits.out_channels == 3
    assert get_family("instancefcn").num_classes_in(detector.network.state_dict()) == 3


def test_config_presets_scales_recipes_and_validation() -> None:
    paper = instancefcn_vgg16()
    assert [round(600 * s, 2) for s in paper.test_scales] == [118.52, 177.78, 266.67, 400.0, 600.0, 900.0]
    assert (paper.k, paper.m, paper.window_box_pixels(), paper.nms_threshold) == (5, 21, 168, 0.8)
    assert instancefcn_vgg16_sis().test_scales == SIS_SCALE_FACTORS and math.isclose(
        600 * SIS_SCALE_FACTORS[0], 79.01, abs_tol=0.01
    )
    family = get_family("instancefcn")
    recipe = family.recipe("paper")
    assert (recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.lr_steps) == (
        "sgd",
        1e-3,
        0.9,
        5e-4,
        (0.8,),
    )
    assert recipe.train_sizes == (119, 178, 267, 400, 600, 900) and recipe.batch == 8 and recipe.flip
    assert family.recipe("sis").train_sizes == (79, 119, 178, 267, 400, 600, 900)
    assert scaled_train_sizes(recipe, 600) == recipe.train_sizes
    schedule = TrainConfig(recipe="paper").resolved(recipe)
    assert schedule.lr == 1e-3 and schedule.lr_steps == (0.8,)  # 32k of 40k iterations at 1e-3, then 1e-4
    for bad, match in (
        ({"m": 20}, "m must be odd"),
        ({"backbone": "alexnet"}, "backbone must be one of"),
        ({"negative_center": 5.0}, "negative tolerances"),
        ({"test_scales": ()}, "test_scales"),
        ({"size_divisibility": 12}, "size_divisibility"),
        ({"pre_nms_topk_per_scale": -1}, "pre_nms_topk_per_scale"),
        ({"backbone_feature": "res4"}, "backbone_feature"),
    ):
        with pytest.raises(ValueError, match=match):
            paper.replace(**bad)


def test_shipped_weights_give_the_same_top_100_with_every_window_as_with_the_top_2000_per_scale(tmp_path) -> None:
    # The report's A14: greedy NMS visits windows by score until N survive, so a large enough per-scale top-k changes
    # nothing; at 576 px the largest scale has 5,184 windows, more than 2,000.
    import pysalient
    from pysalient.data import synthesize
    from pysalient.engine.model import SalientModel
    from pysalient.utils.image_io import read_image

    paths = synthesize(tmp_path, test=2, size=256, seed=99)
    shipped = pysalient.load("instancefcn", device="cpu")
    everything = shipped.config.replace(pre_nms_topk_per_scale=0)
    every_window = SalientModel(shipped.network, shipped.family, everything, ["salient"], "all windows")
    images = sorted((paths["test"].parent.parent / "images" / "test").glob("*.png"))
    assert len(images) == 2
    for path in images:
        image = read_image(str(path))
        (top_k,), (dense,) = shipped.predict(image, conf=0.0), every_window.predict(image, conf=0.0)
        assert len(top_k) == len(dense) > 0 and torch.equal(top_k.scores, dense.scores)
        assert torch.equal(top_k.masks, dense.masks) and torch.equal(top_k.boxes, dense.boxes)
