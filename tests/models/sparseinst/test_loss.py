"""SparseInst criterion: a hand-computed case, empty batches, normalisation, gradients, a full train step."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import pytest
import torch

from pysalient.losses import normalizer as normalizer_module
from pysalient.models.sparseinst import build_sparseinst
from pysalient.models.sparseinst.loss import SparseInstCriterion, SparseInstLossConfig
from tests.models.sparseinst.fixtures import preset_config

Targets = List[Dict[str, torch.Tensor]]
LOSS_NAMES = {"loss_ce", "loss_dice", "loss_mask", "loss_objectness"}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def binary_cross_entropy(logit: float, target: float) -> float:
    return -(target * math.log(sigmoid(logit)) + (1 - target) * math.log(1 - sigmoid(logit)))


def random_batch(counts: List[int], *, queries: int = 10, classes: int = 2, seed: int = 0) -> Tuple[dict, Targets]:
    generator = torch.Generator().manual_seed(seed)
    batch = len(counts)
    outputs = {
        "pred_logits": torch.randn(batch, queries, classes, generator=generator),
        "pred_masks": 2 * torch.randn(batch, queries, 8, 8, generator=generator),
        "pred_scores": torch.randn(batch, queries, 1, generator=generator),
    }
    for value in outputs.values():
        value.requires_grad_(True)
    targets = [
        {
            "labels": torch.randint(0, classes, (count,), generator=generator),
            "masks": torch.rand(count, 32, 28, generator=generator) > 0.5,
        }
        for count in counts
    ]
    return outputs, targets


def test_losses_match_a_hand_computed_case() -> None:
    # 1 image, 2 queries, 1 class, one target covering the top-left 2x2 cells of the 4x4 prediction grid.
    target = [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0] * 4, [0.0] * 4]
    bad_mask = [[-2.0, -2.0, 2.0, 2.0], [-2.0, -2.0, 2.0, 2.0], [-2.0, -2.0, 2.0, 2.0], [-2.0] * 4]
    # sigmoid(0.2) = 0.55 and sigmoid(-0.3) = 0.43 are both foreground at the official 0.4 IoU threshold.
    good_mask = [[1.5, 0.2, -0.3, -2.0], [1.5, 1.5, -2.0, -2.0], [-2.0] * 4, [-2.0] * 4]
    class_logits, objectness_logits = [1.0, -0.5], [0.3, -0.7]
    outputs = {
        "pred_logits": torch.tensor(class_logits).reshape(1, 2, 1).requires_grad_(),
        "pred_masks": torch.tensor([bad_mask, good_mask]).reshape(1, 2, 4, 4).requires_grad_(),
        "pred_scores": torch.tensor(objectness_logits).reshape(1, 2, 1).requires_grad_(),
    }
    # 4x4-pixel blocks at the 16x16 input: the bilinear /4 resize gives back exactly ``target``.
    input_mask = torch.tensor(target).repeat_interleave(4, 0).repeat_interleave(4, 1).bool()
    losses = SparseInstCriterion(num_classes=1)(outputs, [{"labels": torch.tensor([0]), "masks": input_mask[None]}])
    assert set(losses) == LOSS_NAMES

    t = [value for row in target for value in row]
    masks = [[value for row in mask for value in row] for mask in (bad_mask, good_mask)]

    def dice(logits: List[float]) -> float:
        s = [sigmoid(x) for x in logits]
        inner = sum(a * b for a, b in zip(s, t))
        return 2 * inner / (sum(a * a for a in s) + sum(b * b for b in t) + 1e-4)

    scores = [dice(masks[q]) ** 0.8 * sigmoid(class_logits[q]) ** 0.2 for q in range(2)]
    matched = max(range(2), key=lambda q: scores[q])
    assert matched == 1  # the better mask wins despite the lower class probability

    focal = 0.0
    for q, logit in enumerate(class_logits):
        positive = q == matched
        p_t = sigmoid(logit) if positive else 1 - sigmoid(logit)
        focal += (0.25 if positive else 0.75) * (1 - p_t) ** 2 * -math.log(p_t)
    num_instances = 1.0
    pixel_bce = sum(binary_cross_entropy(x, y) for x, y in zip(masks[matched], t)) / 16
    predicted = [sigmoid(x) >= 0.4 for x in masks[matched]]
    intersection = sum(1 for a, b in zip(predicted, t) if a and b > 0.5)
    union = sum(predicted) + sum(1 for b in t if b > 0.5) - intersection
    iou = intersection / (union + 1e-6)
    assert (intersection, union) == (4, 5)

    assert losses["loss_ce"].item() == pytest.approx(2.0 * focal / num_instances, abs=1e-6)
    assert losses["loss_dice"].item() == pytest.approx(2.0 * (1 - dice(masks[matched])) / num_instances, abs=1e-6)
    assert losses["loss_mask"].item() == pytest.approx(5.0 * pixel_bce, abs=1e-6)
    objectness = binary_cross_entropy(objectness_logits[matched], iou)
    assert losses["loss_objectness"].item() == pytest.approx(objectness, abs=1e-6)


def test_gradients_are_finite_and_reach_every_output() -> None:
    outputs, targets = random_batch([3, 0, 12], queries=10)
    with pytest.warns(UserWarning, match="image 2: 12 target instances but only 10 queries"):
        losses = SparseInstCriterion(num_classes=2)(outputs, targets)
    assert all(value.dim() == 0 and torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    for key, value in outputs.items():
        assert value.grad is not None and torch.isfinite(value.grad).all(), key
        assert value.grad.abs().sum() > 0, key
    # Only matched queries get mask / objectness gradients: image 1 has no instance.
    assert not outputs["pred_masks"].grad[1].any() and not outputs["pred_scores"].grad[1].any()
    assert outputs["pred_logits"].grad[1].abs().sum() > 0  # ... but its queries still learn background


def test_batch_without_instances_trains_towards_background() -> None:
    outputs, targets = random_batch([0, 0], queries=6)
    losses = SparseInstCriterion(num_classes=2)(outputs, targets)
    for key in ("loss_dice", "loss_mask", "loss_objectness"):
        assert losses[key].item() == 0 and losses[key].grad_fn is not None, key
    probability = outputs["pred_logits"].detach().sigmoid()
    background_focal = 0.75 * probability**2 * -torch.log1p(-probability)
    assert losses["loss_ce"].item() == pytest.approx(2.0 * background_focal.sum().item(), rel=1e-5)
    sum(losses.values()).backward()
    assert (outputs["pred_logits"].grad > 0).all()  # every query pushed towards background
    for key in ("pred_masks", "pred_scores"):
        assert outputs[key].grad is not None and not outputs[key].grad.any(), key


def test_normalisation_averages_instances_over_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, targets = random_batch([2, 1])
    criterion = SparseInstCriterion(num_classes=2, config=SparseInstLossConfig(class_weight=1.0))
    single = criterion(outputs, targets)
    # Simulate a second worker holding 9 instances: (3 + 9) / 2 = 6 instances per worker instead of 3.
    monkeypatch.setattr(normalizer_module.dist, "is_available", lambda: True)
    monkeypatch.setattr(normalizer_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(normalizer_module.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(normalizer_module.dist, "all_reduce", lambda tensor: tensor.add_(9.0))
    shared = criterion(outputs, targets)
    assert shared["loss_ce"].item() == pytest.approx(single["loss_ce"].item() * 3 / 6, rel=1e-6)
    assert shared["loss_dice"].item() == pytest.approx(single["loss_dice"].item() * 3 / 6, rel=1e-6)
    assert shared["loss_mask"].item() == pytest.approx(single["loss_mask"].item(), rel=1e-6)  # a pixel mean


def test_non_finite_predictions_raise_from_the_criterion() -> None:
    outputs, targets = random_batch([1, 2])
    with torch.no_grad():
        outputs["pred_masks"][1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"image 1: matching cost contains NaN \(pred_masks has non-finite"):
        SparseInstCriterion(num_classes=2)(outputs, targets)


def test_invalid_loss_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid SparseInstLossConfig"):
        SparseInstLossConfig(mask_dice_weight=-1.0)


@pytest.mark.parametrize("decoder", ["giam", "soft"])
def test_train_step_of_the_tiny_preset_reaches_every_parameter(decoder: str) -> None:
    torch.manual_seed(0)
    model = build_sparseinst(preset_config("sparseinst_mbv2_tiny", num_classes=2, decoder=decoder)).train()
    images = torch.randn(2, 3, 64, 64)
    masks0 = torch.zeros(2, 64, 48, dtype=torch.bool)  # image 0 is 64x48, top-left in the padded batch
    masks0[0, 4:30, 6:40] = True
    masks0[1, 32:60, 10:44] = True
    masks1 = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks1[0, 16:48, 16:48] = 1
    targets = [{"labels": torch.tensor([0, 1]), "masks": masks0}, {"labels": torch.tensor([1]), "masks": masks1}]
    losses = SparseInstCriterion(num_classes=2)(model(images), targets, input_hw=(64, 64))
    assert set(losses) == LOSS_NAMES and all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    trainable = {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert len(trainable) == len(list(model.parameters()))  # nothing frozen in this preset
    # Every parameter is used by the forward, so none is left without a gradient (DDP needs that).
    assert [name for name, parameter in trainable.items() if parameter.grad is None] == []
    assert [name for name, parameter in trainable.items() if not torch.isfinite(parameter.grad).all()] == []
    for head in ("cls_score", "objectness", "mask_kernel", "iam_conv"):  # each loss reaches its head
        assert trainable[f"decoder.inst_branch.{head}.weight"].grad.abs().sum() > 0, head
    if decoder == "soft":
        # A constant added to every logit of a spatial softmax cancels out: softmax_bias and the IAM conv's
        # bias get gradients that are zero up to rounding (the official model has the same dead parameters).
        scale = trainable["decoder.inst_branch.iam_conv.weight"].grad.abs().max()
        for name in ("decoder.inst_branch.softmax_bias", "decoder.inst_branch.iam_conv.bias"):
            assert trainable[name].grad.abs().max() < 1e-5 * scale, name
