"""S4Net: targets, losses, the segmentation branch, the detector, and training on the family's light entry."""

from __future__ import annotations

from typing import Dict, List

import pytest
import torch

from pysalient import ops
from pysalient.detection.anchor_postprocess import AnchorPostProcessor
from pysalient.detection.box_coder import DeltaBoxCoder
from pysalient.models import get_family
from pysalient.models.s4net.config import S4NetConfig, s4net_r18_light, s4net_r50
from pysalient.models.s4net.detector import exclusive_boxes
from pysalient.models.s4net.loss import S4NetCriterion
from pysalient.models.s4net.model import S4Net
from pysalient.models.s4net.targets import (
    anchor_targets,
    box_cell_weights,
    inclusive_boxes,
    segmentation_targets,
)


def rectangles_target(height: int, width: int, rectangles: List[tuple]) -> Dict[str, torch.Tensor]:
    masks = torch.zeros(len(rectangles), height, width, dtype=torch.bool)
    for index, (x1, y1, x2, y2) in enumerate(rectangles):
        masks[index, y1:y2, x1:x2] = True
    boxes = torch.tensor(rectangles, dtype=torch.float32).reshape(-1, 4)
    return {"labels": torch.zeros(len(rectangles), dtype=torch.int64), "boxes": boxes, "masks": masks}


def tiny_config(**changes) -> S4NetConfig:  # noqa: ANN003
    defaults = {"fpn_channels": 16, "head_channels": 16, "seg_channels": (8, 8), "input_size": 128}
    defaults.update(changes)
    return s4net_r18_light(**defaults)


def test_inclusive_boxes_drop_the_exclusive_edge() -> None:
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [5.0, 5.0, 5.5, 5.0]])
    assert inclusive_boxes(boxes).tolist() == [[10.0, 20.0, 29.0, 39.0], [5.0, 5.0, 5.0, 5.0]]


def test_anchor_targets_positive_from_iou_0_4_and_legacy_deltas() -> None:
    anchors = torch.tensor(
        [[0.0, 0.0, 15.0, 15.0], [0.0, 0.0, 15.0, 7.0], [0.0, 0.0, 15.0, 5.0], [40.0, 40.0, 50.0, 50.0]]
    )
    gt = torch.tensor([[0.0, 0.0, 15.0, 15.0]])
    # +1 IoU with the 16 x 16 box: 16 x 8 / 256 = 0.5 (positive), 16 x 6 / 256 = 0.375 (negative), 0.
    classes, positive, deltas = anchor_targets(anchors, gt, torch.tensor([2]), 0.4, DeltaBoxCoder(legacy=True))
    assert positive.tolist() == [True, True, False, False]
    assert classes.tolist() == [3, 3, 0, 0]
    torch.testing.assert_close(deltas[0], torch.zeros(4))
    # anchor height 8 against 16: dy = (8 - 4) / 8 = 0.5, dh = log(2)
    torch.testing.assert_close(deltas[1], torch.tensor([0.0, 0.5, 0.0, 0.6931472]))
    assert deltas[2:].abs().sum() == 0
    classes, positive, deltas = anchor_targets(
        anchors, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 0.4, DeltaBoxCoder(legacy=True)
    )
    assert classes.sum() == 0 and not positive.any() and deltas.shape == (4, 4)


def test_segmentation_targets_and_box_cells() -> None:
    masks = torch.zeros(1, 16, 16, dtype=torch.bool)
    masks[0, 0:8, 0:12] = True
    targets = segmentation_targets(masks, (2, 2))
    # The right cell samples x = 11.5, half-way between a mask pixel and an empty one: 0.5 rounds to 0.
    assert targets[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    weights = box_cell_weights(torch.tensor([[0.0, 3.0, 9.0, 12.0, 20.0]]), (4, 4), 1.0 / 8)
    # x: floor(3/8)=0 .. floor(12/8)+1=2; y: floor(9/8)=1 .. floor(20/8)+1=3
    expected = torch.zeros(4, 4)
    expected[1:3, 0:2] = 1
    assert torch.equal(weights[0], expected)


def test_criterion_by_hand_on_one_positive_anchor() -> None:
    config = tiny_config(anchor_sizes=(16.0, 32.0, 64.0, 128.0, 256.0), anchor_ratios=(1.0,), ohem_negatives=2)
    criterion = S4NetCriterion(config)
    # Level shapes of a 16 x 16 input: P2 4x4 ... P6 1x1 (one anchor per cell).
    shapes = [(4, 4), (2, 2), (1, 1), (1, 1), (1, 1)]
    logits = [torch.zeros(1, 2, h, w) for h, w in shapes]
    deltas = [torch.zeros(1, 4, h, w) for h, w in shapes]
    # P2 anchor of cell (0, 0): (0, 0, 15, 15). A ground truth on it makes it the only P2 positive; its
    # cross-entropy with zero logits is log 2, like every negative.
    target = rectangles_target(16, 16, [(0, 0, 16, 16)])
    outputs = {
        "cls_logits": logits,
        "bbox_deltas": deltas,
        "seg_logits": [torch.zeros(1, 2, 2, 2)],
        "seg_targets": [torch.ones(1, 2, 2)],
        "seg_rois": [torch.tensor([[0.0, 0.0, 0.0, 15.0, 15.0]])],
    }
    losses = criterion(outputs, [target])
    anchors = criterion.anchors(logits)
    iou_positive = []
    from pysalient.detection.boxes import box_iou

    for level in anchors:
        iou_positive.append(int((box_iou(torch.tensor([[0.0, 0.0, 15.0, 15.0]]), level, legacy=True)[0] >= 0.4).sum()))
    log2 = torch.log(torch.tensor(2.0)).item()
    expected_cls = 0.0
    for level, count in zip(anchors, iou_positive):
        negatives = level.shape[0] - count
        positive_term = log2 if count else 0.0
        expected_cls += 0.3 * (positive_term + log2 * min(negatives, 2) / 2)
    assert losses["loss_cls"].item() == pytest.approx(expected_cls, rel=1e-5)
    assert losses["loss_seg"].item() == pytest.approx(log2, rel=1e-5)  # 4 supervised cells, each log 2
    assert losses["loss_box"].item() > 0  # the positives' deltas are not 0 except the exact anchor


def test_segmentation_branch_keeps_the_full_map_and_masking_modes_differ() -> None:
    torch.manual_seed(0)
    network = S4Net(tiny_config()).eval()
    features = torch.randn(1, 8, 16, 16).relu()
    rois = torch.tensor([[0.0, 40.0, 40.0, 79.0, 79.0]])
    logits = network.segmentation(features, rois)
    assert logits.shape == (1, 2, 16, 16)
    outputs = {}
    for mode in ("binary", "expanded_binary", "ternary"):
        branch = S4Net(tiny_config(masking_mode=mode)).segmentation
        branch.load_state_dict(network.segmentation.state_dict())
        outputs[mode] = branch.masking(features, rois)
    assert torch.equal(
        outputs["binary"].abs(), outputs["ternary"].abs() * (outputs["ternary"] > 0).float() + 0 * outputs["binary"]
    )
    assert (outputs["ternary"] < 0).any() and not (outputs["binary"] < 0).any()
    assert torch.equal(outputs["expanded_binary"].abs(), outputs["ternary"].abs())


def test_one_training_step_gives_finite_losses_and_gradients_everywhere() -> None:
    torch.manual_seed(0)
    config = tiny_config()
    network = S4Net(config).train()
    criterion = get_family("s4net").build_criterion(config)
    images = torch.randn(2, 3, 128, 128)
    targets = [rectangles_target(128, 128, [(10, 10, 60, 70), (70, 80, 120, 126)]), rectangles_target(128, 128, [])]
    outputs = network(images, targets)
    assert outputs["seg_logits"][0].shape == (2, 2, 16, 16)
    losses = criterion(outputs, targets)
    assert set(losses) == {"loss_cls", "loss_box", "loss_seg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    for name, parameter in network.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    with pytest.raises(ValueError, match="needs targets"):
        network(images)


def test_training_overfits_one_image() -> None:
    torch.manual_seed(0)
    config = tiny_config(input_size=64)
    network = S4Net(config).train()
    criterion = S4NetCriterion(config)
    images = torch.randn(1, 3, 64, 64)
    targets = [rectangles_target(64, 64, [(8, 8, 40, 48)])]
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        losses = criterion(network(images, targets), targets)
        total = sum(losses.values())
        first = float(total.detach()) if first is None else first
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert float(total.detach()) < 0.5 * first


def test_post_processor_keeps_top_boxes_after_nms_without_threshold() -> None:
    processor = AnchorPostProcessor(2, pre_nms_top_n=3, nms_threshold=0.4, max_det=2)
    # one level, 1 x 2 cells, 2 anchors each: 4 anchors; scores from the logits (background, object).
    logits = torch.tensor([[0.0, 3.0, 0.0, 2.0], [0.0, 1.0, 0.0, -5.0]]).t().reshape(1, 4, 1, 2)
    logits = torch.zeros(1, 4, 1, 2)
    logits[0, 1, 0, 0], logits[0, 3, 0, 0], logits[0, 1, 0, 1], logits[0, 3, 0, 1] = 3.0, 2.9, 1.0, -5.0
    deltas = torch.zeros(1, 8, 1, 2)
    anchors = [
        torch.tensor([[0.0, 0.0, 9.0, 9.0], [1.0, 1.0, 9.0, 9.0], [20.0, 0.0, 29.0, 9.0], [40.0, 0.0, 45.0, 5.0]])
    ]
    ((boxes, scores, labels),) = processor([logits], [deltas], anchors, [[30, 40]])
    # top 3 by score: anchor 0 (3.0), 1 (2.9, suppressed: IoU 81/100 >= 0.4), 2 (1.0); anchor 3 (-5) is cut.
    expected_scores = torch.sigmoid(torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(scores, expected_scores)
    assert boxes.tolist() == [[0.0, 0.0, 9.0, 9.0], [20.0, 0.0, 29.0, 9.0]] and labels.tolist() == [0, 0]
    scripted = torch.jit.script(processor)
    for eager, compiled in zip((boxes, scores, labels), scripted([logits], [deltas], anchors, [[30, 40]])[0]):
        assert torch.equal(eager, compiled)


def test_exclusive_boxes_and_detector_masks_stay_inside_boxes() -> None:
    assert exclusive_boxes(torch.tensor([[0.0, 0.0, 9.0, 99.5]]), [50, 20]).tolist() == [[0.0, 0.0, 10.0, 50.0]]
    torch.manual_seed(0)
    config = tiny_config()
    family = get_family("s4net")
    network = family.build(config).eval()
    with torch.no_grad():
        network.segmentation.predictor.bias.copy_(torch.tensor([0.0, 5.0]))  # foreground everywhere
    detector = family.build_detector(network, config, config.inference_spec())
    with torch.no_grad():
        ((boxes, scores, labels, masks),) = detector(
            torch.randn(1, 3, 128, 128), [[128, 128]], [[90, 70]], torch.tensor(0.0)
        )
    assert masks.shape == (20, 90, 70) and masks.dtype == torch.uint8 and boxes.shape == (20, 4)
    assert torch.all(scores[:-1] >= scores[1:])
    for box, mask in zip(boxes, masks):
        x1, y1, x2, y2 = [int(v) for v in box.floor().tolist()]
        inside = torch.zeros_like(mask)
        inside[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)] = 1
        assert not (mask.bool() & ~inside.bool()).any()


def test_config_presets_and_validation() -> None:
    paper = s4net_r50()
    assert paper.input_spec().resize == "fixed" and paper.input_spec().min_size == 320
    assert paper.inference_spec().nms_threshold == 0.4 and paper.inference_spec().max_det == 20
    assert paper.backbone_norm == "FrozenBN" and paper.backbone_freeze_at == 0 and paper.seg_logits_relu
    with pytest.raises(ValueError, match="masking_mode"):
        s4net_r50(masking_mode="crop")
    with pytest.raises(ValueError, match="anchor_sizes"):
        s4net_r50(anchor_sizes=(16.0, 32.0))
    with pytest.raises(ValueError, match="size_divisibility"):
        s4net_r50(size_divisibility=32)
    assert ops.roi_masking is not None
