"""SPRNet: the gated FPN, the SPR mask branch (point-sampled fusion, decoder), targets, losses and the detector."""

from __future__ import annotations

import math
from typing import Dict, List

import pytest
import torch
import torch.nn.functional as F

from pysalient.detection.anchors import AnchorGenerator
from pysalient.detection.boxes import box_iou
from pysalient.engine.train_config import TrainConfig
from pysalient.models import get_family
from pysalient.models.sprnet.config import SPRNetConfig, sprnet_r18_light, sprnet_r50
from pysalient.models.sprnet.detector import SPRNetDetector
from pysalient.models.sprnet.loss import SPRNetCriterion, on_class_mask_loss
from pysalient.models.sprnet.mask_branch import SPRMaskBranch, anchor_cells, fusion_taps
from pysalient.models.sprnet.model import SPRNet
from pysalient.models.sprnet.targets import mask_sample_anchors, mask_sample_targets
from pysalient.necks.fpn import FPN, LastLevelP6P7, SeparableGate


def rectangles_target(height: int, width: int, rectangles: List[tuple]) -> Dict[str, torch.Tensor]:
    masks = torch.zeros(len(rectangles), height, width, dtype=torch.bool)
    for index, (x1, y1, x2, y2) in enumerate(rectangles):
        masks[index, y1:y2, x1:x2] = True
    boxes = torch.tensor(rectangles, dtype=torch.float32).reshape(-1, 4)
    return {"labels": torch.zeros(len(rectangles), dtype=torch.int64), "boxes": boxes, "masks": masks}


def tiny_config(**changes) -> SPRNetConfig:  # noqa: ANN003
    defaults = {"fpn_channels": 16, "fusion_channels": (8, 4), "decoder_channels": 8, "min_size_test": 128}
    defaults.update(changes)
    return sprnet_r18_light(**defaults)


def fpn_pair(channels: List[int], width: int) -> tuple:
    torch.manual_seed(0)
    gated = FPN(["a", "b", "c"], channels, width, gated=True)
    plain = FPN(["a", "b", "c"], channels, width)
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("gates.")})
    return gated, plain


def pyramid_inputs(channels: List[int]) -> Dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {name: torch.randn(2, c, 16 // 2**i, 12 // 2**i) for i, (name, c) in enumerate(zip("abc", channels))}


def test_gates_fixed_at_one_reproduce_the_plain_fpn_exactly_and_at_half_average() -> None:
    channels = [8, 16, 32]
    gated, plain = fpn_pair(channels, 8)
    features = pyramid_inputs(channels)
    assert len(gated.gates) == 2 and isinstance(gated.gates[0], SeparableGate)
    with torch.no_grad():
        for gate in gated.gates:
            gate.depthwise.weight.zero_()
            gate.depthwise.bias.zero_()
            gate.pointwise.weight.zero_()
            gate.pointwise.bias.fill_(100.0)  # sigmoid(100) is exactly 1 in float32
    for ours, reference in zip(gated(features), plain(features)):
        assert torch.equal(ours, reference)
    with torch.no_grad():
        for gate in gated.gates:
            gate.pointwise.bias.zero_()  # every gate 0.5: each merge is 0.5 (U + L)
    lateral = gated.lateral_convs[1](features["b"])
    top = F.interpolate(gated.lateral_convs[2](features["c"]), size=list(lateral.shape[-2:]), mode="nearest")
    torch.testing.assert_close(gated.merge(1, lateral, top), 0.5 * (lateral + top))
    assert not torch.equal(gated(features)[0], plain(features)[0])


def test_gate_values_are_strictly_inside_0_1_with_the_feature_shape_and_count_68352_parameters() -> None:
    gate = SeparableGate(256, 256)
    assert sum(p.numel() for p in gate.parameters()) == 68352
    values = gate(torch.randn(1, 256, 5, 7) * 10)
    assert values.shape == (1, 256, 5, 7) and bool((values > 0).all()) and bool((values < 1).all())
    assert SeparableGate(16, 1)(torch.randn(2, 16, 3, 3)).shape == (2, 1, 3, 3)
    with pytest.raises(ValueError, match="gate_channels"):
        SeparableGate(16, 4)


def test_levels_anchors_and_p3_anchor_sides_of_the_paper_config() -> None:
    config = sprnet_r50()
    network = SPRNet(config).eval()
    assert isinstance(network.fpn.top_block, LastLevelP6P7) and not network.fpn.top_block.use_p5
    with torch.no_grad():
        levels = network.features(torch.zeros(1, 3, 512, 512))
    assert [tuple(level.shape[-2:]) for level in levels] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    shapes = [(100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]  # an 800 x 1344 input
    anchors = network.anchors([torch.zeros(1, 1, h, w) for h, w in shapes])
    assert sum(a.shape[0] for a in anchors) == 201600 and network.anchors.num_anchors == 9
    square = anchors[0][[1, 4, 7]]  # ratio 1 of each scale of the first cell (size-major, then ratio)
    torch.testing.assert_close(square[:, 2] - square[:, 0], torch.tensor([32.0, 40.3175, 50.7968]), atol=1e-3, rtol=0)


def test_spr_branch_widths_sizes_shortcut_and_parameter_counts() -> None:
    branch = SPRMaskBranch(256, 80)
    fusion = sum(p.numel() for m in [branch.reduce, *branch.dilated] for p in m.parameters())
    assert branch.out_channels == 640 and fusion == 950912
    assert sum(p.numel() for p in branch.parameters()) - fusion == 2381136
    sizes: List[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1])) for m in branch.deconvs]
    hooks += [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1])) for m in branch.upsample_convs]
    assert branch.decode(torch.randn(3, 640)).shape == (3, 80, 32, 32)
    assert sizes == [2, 4, 8, 16, 32]
    for hook in hooks:
        hook.remove()
    assert branch.decode(torch.zeros(0, 640)).shape == (0, 80, 32, 32)
    small = SPRMaskBranch(8, 2, (4, 4), (2, 4, 6), 6)
    with torch.no_grad():
        for conv in small.upsample_convs:  # the up-sampling path gives 0: only the x4 nearest shortcut is left
            conv.weight.zero_()
            conv.bias.fill_(-1.0)
        vectors = torch.randn(2, small.out_channels)
        eight = vectors[:, :, None, None]
        for deconv in small.deconvs:
            eight = deconv(eight)
        expected = small.predictor(F.interpolate(eight, scale_factor=4.0, mode="nearest"))
        torch.testing.assert_close(small.decode(vectors), expected)


def test_point_sampled_fusion_equals_the_dense_fusion_at_the_pixels_borders_included() -> None:
    torch.manual_seed(0)
    branch = SPRMaskBranch(16, 3, (8, 4), (2, 4, 6), 8)
    levels = [torch.randn(2, 16, 13, 9), torch.randn(2, 16, 7, 5), torch.randn(2, 16, 1, 2)]
    points = [(0, 0, 0, 0), (1, 0, 12, 8), (0, 0, 6, 4), (1, 1, 0, 4), (0, 1, 6, 0), (1, 2, 0, 1), (0, 2, 0, 0)]
    batch, level, ys, xs = (torch.tensor(column) for column in zip(*points))
    point = branch.point_fusion(levels, batch, level, ys, xs)
    dense = [branch.dense_fusion(levels[lv])[b, :, y, x] for b, lv, y, x in points]
    torch.testing.assert_close(point, torch.stack(dense), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(branch.indexed_dense_fusion(levels, batch, level, ys, xs), torch.stack(dense))
    assert fusion_taps((2, 4, 6)).shape == (28, 2)
    empty = torch.zeros(0, dtype=torch.int64)
    assert branch(levels, empty, empty, empty, empty).shape == (0, 3, 32, 32)


def test_fusion_receptive_field_is_the_13_x_13_window() -> None:
    torch.manual_seed(0)
    branch = SPRMaskBranch(4, 1, (4, 4), (2, 4, 6), 4)
    with torch.no_grad():  # every ReLU active, so that each tap has a gradient
        for conv in [branch.reduce, *branch.dilated]:
            conv.bias.fill_(100.0)
    level = torch.randn(1, 4, 20, 20, requires_grad=True)
    index = torch.tensor([0])
    branch.point_fusion([level], index, index, torch.tensor([9]), torch.tensor([11])).sum().backward()
    touched = level.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(touched, as_tuple=True)
    assert rows.min() == 3 and rows.max() == 15 and cols.min() == 5 and cols.max() == 17
    assert int(touched.sum()) == 25  # the centre and 3 x 8 dilated taps, distinct


def test_anchor_cells_invert_the_anchor_order() -> None:
    shapes = [[4, 6], [2, 3]]
    generator = AnchorGenerator([[32.0, 40.0], [64.0, 80.0]], [0.5, 1.0, 2.0], [8, 16])
    anchors = generator([torch.zeros(1, 1, h, w) for h, w in shapes])
    rows = torch.arange(sum(a.shape[0] for a in anchors))
    level, ys, xs = anchor_cells(rows, shapes, generator.num_anchors)
    strides = torch.tensor([8.0, 16.0])[level]
    centres = torch.cat(anchors)
    torch.testing.assert_close((centres[:, 0] + centres[:, 2]) / 2, xs.float() * strides)
    torch.testing.assert_close((centres[:, 1] + centres[:, 3]) / 2, ys.float() * strides)
    assert level.tolist() == [0] * 144 + [1] * 36


def test_mask_samples_are_the_top_iou_anchors_above_0_7_with_shared_targets() -> None:
    anchors = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 9], [1, 1, 10, 10], [0, 0, 10, 6], [20, 20, 30, 30.0]])
    gt = torch.tensor([[0, 0, 10, 10], [20, 20, 29, 30.0]])
    rows, gts = mask_sample_anchors(anchors, gt, 0.7, 3)
    # IoUs with their best ground truth: 1.0, 0.9, 0.81, 0.6 (out), 0.9: the top 3 by decreasing IoU, ties stable.
    assert rows.tolist() == [0, 1, 4] and gts.tolist() == [0, 0, 1]
    best = box_iou(gt, anchors).max(dim=0).values[rows]
    assert bool((best > 0.7).all()) and bool((best[:-1] >= best[1:]).all())
    masks = torch.zeros(2, 40, 40, dtype=torch.bool)
    masks[0, 0:5, 0:10] = True  # upper half of its box
    masks[1, 20:30, 20:29] = True
    targets = mask_sample_targets(masks, gt, gts, 32)
    assert targets.shape == (3, 32, 32) and torch.equal(targets[0], targets[1])
    assert targets[0, :15].all() and targets[0, 15, :31].all() and not targets[0, 16:].any()
    # a mask that fills its box: RoIAlign's corner samples reach outside (0.64 x 0.64 < 0.5), every other cell is 1
    assert torch.nonzero(targets[2] == 0).tolist() == [[0, 0], [0, 31], [31, 0], [31, 31]]
    none_rows, none_gts = mask_sample_anchors(anchors, torch.zeros(0, 4), 0.7, 300)
    assert none_rows.numel() == 0 and none_gts.numel() == 0


def test_criterion_normalises_by_positives_and_gives_zero_box_and_mask_losses_without_instances() -> None:
    torch.manual_seed(0)
    config = tiny_config()
    network = SPRNet(config).train()
    criterion = SPRNetCriterion(config)
    images = torch.randn(2, 3, 128, 128)
    empty = rectangles_target(128, 128, [])
    losses = criterion(network(images, [empty, empty]), [empty, empty])
    assert losses["loss_box"] == 0 and losses["loss_mask"] == 0 and torch.isfinite(losses["loss_cls"])
    outputs = network(images, [empty, empty])
    logits = torch.cat([level.permute(0, 2, 3, 1).reshape(2, -1) for level in outputs["cls_logits"]], dim=1)
    p = logits.sigmoid()
    by_hand = (-(1 - 0.25) * p**2 * torch.log1p(-p)).sum()  # every anchor a negative, normaliser max(1, 0) = 1
    torch.testing.assert_close(losses["loss_cls"], by_hand, rtol=1e-4, atol=1e-4)
    target = rectangles_target(128, 128, [(16, 16, 80, 80)])
    outputs = network(images[:1], [target])
    assert outputs["mask_logits"][0].shape[0] > 0 and outputs["mask_logits"][0].shape[1:] == (1, 32, 32)
    assert torch.equal(outputs["mask_targets"][0][0], torch.ones(32, 32))
    losses = criterion(outputs, [target])
    assert all(torch.isfinite(value) and value > 0 for value in losses.values())


def test_on_class_mask_loss_reads_only_the_ground_truth_channel() -> None:
    logits = torch.zeros(2, 3, 4, 4)
    logits[0, 2] = 5.0
    logits[1, 0] = -5.0
    logits[0, 0] = -100.0  # other channels never count
    targets = torch.stack([torch.ones(4, 4), torch.zeros(4, 4)])
    expected = F.binary_cross_entropy_with_logits(torch.tensor([5.0, -5.0]), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(on_class_mask_loss(logits, targets, torch.tensor([2, 0])), expected)
    assert on_class_mask_loss(torch.zeros(0, 3, 4, 4), torch.zeros(0, 4, 4), torch.zeros(0, dtype=torch.int64)) == 0


def test_training_overfits_one_image() -> None:
    torch.manual_seed(0)
    config = tiny_config()
    network = SPRNet(config).train()
    criterion = SPRNetCriterion(config)
    images = torch.randn(1, 3, 128, 128)
    targets = [rectangles_target(128, 128, [(16, 24, 80, 88)])]
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        losses = criterion(network(images, targets), targets)
        total = sum(losses.values())
        first = float(total.detach()) if first is None else first
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert float(total.detach()) < 0.5 * first


def test_detector_caps_detections_pastes_masks_inside_boxes_and_scripts() -> None:
    torch.manual_seed(0)
    config = tiny_config(num_classes=2, max_det=7)
    network = SPRNet(config).eval()
    with torch.no_grad():
        network.head.cls_score.bias.fill_(2.0)
        network.mask_branch.predictor.bias.fill_(3.0)
    detector = SPRNetDetector(network, config, config.inference_spec()).eval()
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        results = detector(images, [[128, 128], [100, 128]], [[64, 64], [200, 256]], torch.tensor(0.0))
        scripted = torch.jit.script(detector)(
            images, [[128, 128], [100, 128]], [[64, 64], [200, 256]], torch.tensor(0.0)
        )
    for (boxes, scores, labels, masks), output_hw in zip(results, [[64, 64], [200, 256]]):
        assert 0 < boxes.shape[0] <= 7 and masks.dtype == torch.uint8 and masks.shape[1:] == tuple(output_hw)
        assert bool((scores[:-1] >= scores[1:]).all()) and set(labels.tolist()) <= {0, 1}
        ys, xs = torch.meshgrid(torch.arange(output_hw[0]) + 0.5, torch.arange(output_hw[1]) + 0.5, indexing="ij")
        for box, mask in zip(boxes, masks):
            cell_w, cell_h = (box[2] - box[0]) / 32, (box[3] - box[1]) / 32
            outside = (xs < box[0] - cell_w) | (xs > box[2] + cell_w) | (ys < box[1] - cell_h) | (ys > box[3] + cell_h)
            assert not mask.bool()[outside].any()
    for eager, compiled in zip(results, scripted):
        for a, b in zip(eager, compiled):
            assert torch.equal(a, b)
    with torch.no_grad():
        nothing = detector(images[:1], [[128, 128]], [[64, 64]], torch.tensor(1.0))[0]
    assert nothing[0].shape == (0, 4) and nothing[3].shape == (0, 64, 64)


def test_mask_logits_of_detections_are_those_of_their_anchor_pixels() -> None:
    torch.manual_seed(0)
    config = tiny_config(dense_fusion=True)
    network = SPRNet(config).eval()
    images = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        features = network.features(images)
        rows = torch.tensor([0, 5, 2000, 2400])
        dense = network.mask_logits(features, torch.zeros(4, dtype=torch.int64), rows)
        network.dense_fusion = False
        point = network.mask_logits(features, torch.zeros(4, dtype=torch.int64), rows)
    torch.testing.assert_close(point, dense, atol=1e-4, rtol=1e-4)


def test_config_presets_validation_and_named_recipes() -> None:
    light, paper = sprnet_r18_light(), sprnet_r50()
    assert paper.gated and paper.backbone == "resnet50" and paper.fusion_channels == (256, 128)
    assert not get_family("sprnet").config_type(gated=False).gated
    assert light.input_spec().min_size == 256 and light.anchor_sizes == paper.anchor_sizes
    assert math.isclose(paper.level_anchor_sizes()[0][2], 32 * 2 ** (2 / 3))
    with pytest.raises(ValueError, match="gate_channels"):
        sprnet_r18_light(gate_channels=7)
    with pytest.raises(ValueError, match="mask_iou"):
        sprnet_r18_light(mask_iou=1.5)
    family = get_family("sprnet")
    assert family.recipe() is family.train_recipe and family.train_recipe.optimizer == "sgd"
    resolved = TrainConfig(data="x.json", recipe="paper").resolved(family.recipe("paper"), 500)
    assert (resolved.optimizer, resolved.lr, resolved.weight_decay, resolved.clip_grad) == ("adamw", 1e-5, 0.0, 1e-3)
    assert resolved.batch == 1 and resolved.flip is False
    with pytest.raises(ValueError, match="no training recipe 'fast'.*detectron2_1x"):
        family.recipe("fast")
