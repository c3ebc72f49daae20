"""The trainer's building blocks: optimizer groups, LR schedules, progress line, run files, data order, RNG,
and the shared training collation (``pysalient.data.collate``)."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pysalient.data.collate import collate
from pysalient.engine.progress import ProgressPrinter, format_duration
from pysalient.engine.run_files import RunLogs, latest_run_checkpoint, new_run_dir
from pysalient.engine.solver import build_optimizer, build_scheduler, lr_factor, parameter_groups, warmup_iterations
from pysalient.engine.train_state import DataOrder, capture_rng_state, restore_rng_state
from pysalient.layers import FrozenBatchNorm2d
from pysalient.models.registry import get_family
from pysalient.models.sparseinst.config import sparseinst_mbv2_tiny


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.weird_name_norm = nn.Conv2d(4, 4, 1)  # "norm" in the name but a conv: decays
        self.gn = nn.GroupNorm(2, 4)
        self.frozen = FrozenBatchNorm2d(4)
        self.head = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 2))
        self.head[1].weight.requires_grad_(False)
        self.shared = self.conv  # the same parameters reachable twice


def group_names(model: nn.Module, groups: list) -> dict:
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    return {group["name"]: [names[id(p)] for p in group["params"]] for group in groups}


def test_parameter_groups_split_weights_biases_and_norm_layers_by_type() -> None:
    model = _Tiny()
    groups = parameter_groups(model, 1e-3, 0.05)
    assert group_names(model, groups) == {
        "weights": ["conv.weight", "weird_name_norm.weight"],
        "biases": ["conv.bias", "weird_name_norm.bias", "head.1.bias"],
        "norms": ["bn.weight", "bn.bias", "gn.weight", "gn.bias", "head.0.weight", "head.0.bias"],
    }
    # detectron2's defaults: biases decay like weights, norm layers do not, one learning rate
    assert [(group["lr"], group["weight_decay"]) for group in groups] == [(1e-3, 0.05), (1e-3, 0.05), (1e-3, 0.0)]
    # RDPNet / FCOS: biases at twice the rate and without decay
    rdpnet = parameter_groups(model, 0.0025, 1e-4, weight_decay_bias=0.0, bias_lr_factor=2.0)
    assert [(group["lr"], group["weight_decay"]) for group in rdpnet] == [(0.0025, 1e-4), (0.005, 0.0), (0.0025, 0.0)]


def test_adamw_applies_decoupled_decay_to_weights_only_when_asked() -> None:
    model = _Tiny()
    optimizer = build_optimizer(model, "adamw", 1e-3, 0.05, betas=(0.8, 0.9))
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.8, 0.9)
    # the decay really is applied by the optimizer: a zero gradient step shrinks decayed weights only
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    before_conv, before_bn = model.conv.weight.detach().clone(), model.bn.weight.detach().clone()
    optimizer.step()
    assert torch.allclose(model.conv.weight, before_conv * (1 - 1e-3 * 0.05))
    assert torch.equal(model.bn.weight, before_bn)


def test_sgd_with_momentum_bias_factor_and_no_bias_decay() -> None:
    model = _Tiny()
    optimizer = build_optimizer(model, "sgd", 0.1, 0.01, momentum=0.9, weight_decay_bias=0.0, bias_lr_factor=2.0)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    for parameter in model.parameters():
        parameter.grad = torch.ones_like(parameter)
    weight, bias = model.conv.weight.detach().clone(), model.conv.bias.detach().clone()
    optimizer.step()
    # first SGD step: p -= lr * (grad + wd * p); the bias at lr x2 and no decay
    torch.testing.assert_close(model.conv.weight, weight - 0.1 * (1 + 0.01 * weight))
    torch.testing.assert_close(model.conv.bias, bias - 0.2 * 1.0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(model, "adam", 0.1, 0.0)


def test_sparseinst_norm_parameters_get_no_decay() -> None:
    network = get_family("sparseinst").build(sparseinst_mbv2_tiny())
    groups = {group["name"]: group for group in parameter_groups(network, 1e-3, 0.05)}
    batch_norms = [module for module in network.modules() if isinstance(module, nn.BatchNorm2d)]
    assert len(groups["norms"]["params"]) == 2 * len(batch_norms) > 0 and groups["norms"]["weight_decay"] == 0
    assert sum(len(group["params"]) for group in groups.values()) == len(list(network.parameters()))


def test_lr_factor_warmup_and_steps() -> None:
    # detectron2 WarmupMultiStepLR: factor = warmup_factor * (1 - a) + a with a = it / warmup, times gamma^k
    assert lr_factor(0, 1000, 100, 0.001, (0.5, 0.75), 0.1) == pytest.approx(0.001)
    assert lr_factor(50, 1000, 100, 0.001, (0.5, 0.75), 0.1) == pytest.approx(0.001 * 0.5 + 0.5)
    assert lr_factor(100, 1000, 100, 0.001, (0.5, 0.75), 0.1) == 1.0
    assert lr_factor(499, 1000, 100, 0.001, (0.5, 0.75), 0.1) == 1.0
    assert lr_factor(500, 1000, 100, 0.001, (0.5, 0.75), 0.1) == pytest.approx(0.1)  # decayed AT the milestone
    assert lr_factor(750, 1000, 100, 0.001, (0.5, 0.75), 0.1) == pytest.approx(0.01)
    assert warmup_iterations(1000, 270000) == 1000 and warmup_iterations(1000, 300) == 30


def test_constant_warmup_and_cosine_schedule() -> None:
    # maskrcnn-benchmark's constant warm-up (RDPNet: x1/3 for 500 iterations), then the steps
    for iteration in (0, 250, 499):
        assert lr_factor(iteration, 10000, 500, 1 / 3, (0.5,), 0.1, "constant") == pytest.approx(1 / 3)
    assert lr_factor(500, 10000, 500, 1 / 3, (0.5,), 0.1, "constant") == 1.0
    assert lr_factor(5000, 10000, 500, 1 / 3, (0.5,), 0.1, "constant") == pytest.approx(0.1)
    # detectron2 WarmupCosineLR: 0.5 (1 + cos(pi t / T)) over the whole run, times the warm-up factor
    assert lr_factor(0, 1000, 0, 0.001, (), 0.1, "linear", "cosine") == 1.0
    assert lr_factor(500, 1000, 0, 0.001, (), 0.1, "linear", "cosine") == pytest.approx(0.5)
    assert lr_factor(250, 1000, 0, 0.001, (), 0.1, "linear", "cosine") == pytest.approx(0.5 * (1 + 2**-0.5))
    assert lr_factor(1000, 1000, 0, 0.001, (), 0.1, "linear", "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(10, 1000, 20, 0.5, (), 0.1, "linear", "cosine") == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.01)) * 0.75
    )


def test_scheduler_steps_per_iteration_and_keeps_group_factors() -> None:
    weight, bias = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [weight], "lr": 0.1}, {"params": [bias], "lr": 0.2}], lr=0.1)
    scheduler = build_scheduler(optimizer, 10, 2, 0.5, (0.5,), 0.1)
    used = []
    for _ in range(10):
        used.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    expected = [0.05, 0.075, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.01]
    assert [lrs[0] for lrs in used] == pytest.approx(expected)
    assert [lrs[1] for lrs in used] == pytest.approx([2 * value for value in expected])
    with pytest.raises(ValueError, match="schedule must be one of"):
        build_scheduler(optimizer, 10, 2, 0.5, (0.5,), 0.1, schedule="poly")


def test_progress_printer_lines() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(total=10, every=5, stream=stream)
    for iteration in range(1, 11):
        printer.update(iteration, {"loss": 1.23456, "lr": 5e-5})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith(" 5/10  50% [##########..........] loss 1.235 lr 5.000e-05")
    assert lines[1].startswith("10/10 100% [####################]") and "ETA 0:00:00" in lines[1]
    assert format_duration(3725.4) == "1:02:05" and format_duration(90061) == "1 days, 1:01:01"


def test_progress_printer_redraws_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    printer = ProgressPrinter(total=3, stream=stream, refresh_seconds=0.0)
    printer.update(1, {"loss": 10.0})
    printer.update(2, {"loss": 2.0})
    printer.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "1/3  33% [######..............] loss 10" in text and "2/3  67%" in text


def test_run_dirs_are_numbered_and_resume_finds_the_latest(tmp_path: Path) -> None:
    assert new_run_dir(tmp_path, "exp") == tmp_path / "exp"
    assert new_run_dir(tmp_path, "exp") == tmp_path / "exp2"
    assert new_run_dir(tmp_path, "exp", exist_ok=True) == tmp_path / "exp"
    with pytest.raises(FileNotFoundError, match="no last.pth"):
        latest_run_checkpoint(tmp_path, "exp")
    (tmp_path / "exp2" / "last.pth").write_bytes(b"1")
    (tmp_path / "exp" / "last.pth").write_bytes(b"2")
    assert latest_run_checkpoint(tmp_path, "exp") == tmp_path / "exp" / "last.pth"  # most recently written
    with pytest.raises(ValueError, match="plain folder name"):
        new_run_dir(tmp_path, "a/b")


def test_run_logs_and_truncation(tmp_path: Path) -> None:
    logs = RunLogs(tmp_path)
    for iteration in (10, 20, 30):
        logs.log_metrics({"iteration": iteration, "loss": iteration / 10})
        logs.log_results({"iteration": iteration, "AP": iteration + 0.123456})
    logs.log_results({"iteration": 40, "AP": 1.0, "AP50": 2.0})  # a new column extends the header
    with open(logs.metrics_path, "a") as handle:
        handle.write('{"iteration": 4')  # torn line of a crash
    assert [record["loss"] for record in logs.read_metrics()] == [1.0, 2.0, 3.0]
    rows = logs.read_results()
    assert rows[0] == {"iteration": "10", "AP": "10.123", "AP50": ""} and rows[3]["AP50"] == "2"
    logs.truncate_after(20)
    assert [record["iteration"] for record in logs.read_metrics()] == [10, 20]
    assert [row["iteration"] for row in logs.read_results()] == ["10", "20"]
    assert json.loads(logs.write_config({"a": [1]}).read_text()) == {"a": [1]}


class _Keys(Dataset):
    """Returns the key it is asked for, plus a draw from the global generators (as an augmentation would)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, key):
        return (key, float(np.random.rand()), random.random(), float(torch.rand(())))


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_data_order_resumes_inside_an_epoch() -> None:
    """Batches and draws after a restore equal the uninterrupted ones, into the next epoch (own generator)."""

    def loader() -> DataLoader:
        generator = torch.Generator().manual_seed(3)
        return DataLoader(_Keys(), batch_size=3, shuffle=True, generator=generator, collate_fn=list)

    _seed_all(0)
    straight = DataOrder(loader())
    seen = []
    for epoch in range(2):
        straight.start_epoch(epoch)
        seen += [batch for batch in straight.remaining()]
    assert len(seen) == 8 and sorted(item[0] for batch in seen[:4] for item in batch) == list(range(10))

    _seed_all(0)
    first = DataOrder(loader())
    first.start_epoch(0)
    iterator = first.remaining()
    resumed_seen = [next(iterator), next(iterator)]
    state, rng = first.state_dict(), capture_rng_state()
    assert state["position"] == 2 and state["key_width"] == 0

    second = DataOrder(loader())
    second.load_state_dict(state, dataset_size=10)
    random.seed(99)  # the resumed process starts elsewhere: restoring the states must erase this
    rest = second.remaining()
    restore_rng_state(rng)
    resumed_seen += list(rest)
    second.start_epoch(1)
    resumed_seen += list(second.remaining())
    assert resumed_seen == seen
    with pytest.raises(ValueError, match="dataset has 5 images"):
        DataOrder(loader()).load_state_dict(state, dataset_size=5)


def test_data_order_keeps_tuple_keys() -> None:
    order = DataOrder(DataLoader(_Keys(), batch_size=2, collate_fn=list))
    order.batches = [[(1, 0, 0), (2, 0, 0)], [(3, 0, 0)]]
    restored = DataOrder(DataLoader(_Keys(), batch_size=2, collate_fn=list))
    restored.load_state_dict(order.state_dict())
    assert restored.batches == order.batches


def test_rng_state_round_trip_and_weights_only(tmp_path: Path) -> None:
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    torch.save(state, tmp_path / "rng.pth")
    restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2:] == again[2:]


def _sample(height: int, width: int, boxes, labels, name: str = "a.png") -> dict:
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0], image[..., 2] = 10, 200  # B = 10, R = 200
    masks = np.zeros((len(boxes), height, width), bool)
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        masks[index, y0:y1, x0:x1] = True
    return {"image": image, "masks": masks, "labels": np.asarray(labels, np.int64), "file_name": name}


def test_collate_normalises_pads_and_places_masks_and_boxes() -> None:
    config = sparseinst_mbv2_tiny(num_classes=2)
    spec = config.input_spec()
    images, targets = collate([_sample(40, 50, [(1, 2, 5, 6)], [1]), _sample(70, 33, [], [])], spec, 2, "cpu")
    assert images.shape == (2, 3, 96, 64) and images.dtype == torch.float32
    # RGB order for the official config: channel 0 is R = 200
    assert images[0, 0, 0, 0] == pytest.approx((200 - config.pixel_mean[0]) / config.pixel_std[0])
    assert images[0, 2, 0, 0] == pytest.approx((10 - config.pixel_mean[2]) / config.pixel_std[2])
    assert torch.all(images[0, :, 40:, :] == 0) and torch.all(images[1, :, :, 33:] == 0)
    assert targets[0]["masks"].shape == (1, 96, 64) and targets[0]["masks"].dtype == torch.bool
    assert targets[0]["masks"].sum() == 16 and targets[0]["masks"][0, 2:6, 1:5].all()
    assert targets[0]["labels"].tolist() == [1] and targets[1]["masks"].shape == (0, 96, 64)
    # boxes from the masks when the sample has none: (x1, y1, x2, y2), right/bottom exclusive
    assert targets[0]["boxes"].tolist() == [[1.0, 2.0, 5.0, 6.0]] and targets[1]["boxes"].shape == (0, 4)
    given = dict(_sample(40, 50, [(1, 2, 5, 6)], [1]), boxes=np.array([[0.5, 1.5, 5.0, 6.0]], np.float32))
    assert collate([given], spec, 2, "cpu")[1][0]["boxes"].tolist() == [[0.5, 1.5, 5.0, 6.0]]
    bgr_images, _ = collate([_sample(40, 50, [], [])], spec.replace(channel_order="BGR"), 2, "cpu")
    assert bgr_images[0, 0, 0, 0] == pytest.approx((10 - config.pixel_mean[0]) / config.pixel_std[0])


@pytest.mark.parametrize(
    "sample, message",
    [
        ({"image": np.zeros((4, 4, 3), np.float32), "masks": np.zeros((0, 4, 4), bool), "labels": []}, "uint8"),
        ({"image": np.zeros((4, 4, 3), np.uint8), "masks": np.zeros((1, 5, 4), bool), "labels": [0]}, "masks must"),
        ({"image": np.zeros((4, 4, 3), np.uint8), "masks": np.zeros((1, 4, 4), bool), "labels": [0, 0]}, "labels mu"),
        ({"image": np.zeros((4, 4, 3), np.uint8), "masks": np.zeros((1, 4, 4), bool), "labels": [3]}, r"\[0, 2\)"),
        ({"image": np.zeros((4, 4, 3), np.uint8), "labels": []}, "missing keys"),
        (
            {"image": np.zeros((4, 4, 3), np.uint8), "masks": np.zeros((1, 4, 4), bool), "labels": [0], "boxes": [1]},
            "boxes must be",
        ),
    ],
)
def test_collate_rejects_inconsistent_samples(sample: dict, message: str) -> None:
    spec = sparseinst_mbv2_tiny(num_classes=2).input_spec()
    with pytest.raises(ValueError, match=f"sample 0 \\(x.png\\): .*{message}"):
        collate([dict(sample, file_name="x.png")], spec, 2, "cpu")
    with pytest.raises(ValueError, match="empty batch"):
        collate([], spec, 2, "cpu")
