"""The trainer's building blocks: the training data (resize from the input spec and the recipe), the network setup,
progress line, run files, data order and RNG. The solver has tests/engine/test_solver.py, the collation
tests/data/test_collate.py."""

from __future__ import annotations

import dataclasses
import io
import json
import random
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from pysalient.data import synthesize
from pysalient.data.transforms import RandomFlip, ResizeFixed, ResizeShortestEdge
from pysalient.engine.model import SalientModel
from pysalient.engine.progress import ProgressPrinter, format_duration
from pysalient.engine.run_files import RunLogs, latest_run_checkpoint, new_run_dir
from pysalient.engine.train_config import TrainConfig
from pysalient.engine.train_setup import (
    NO_WEIGHTS,
    build_network,
    build_train_data,
    model_family_and_input,
    starting_weights,
)
from pysalient.engine.train_state import DataOrder, capture_rng_state, restore_rng_state
from pysalient.inputs import InputSpec
from pysalient.models.registry import get_family
from pysalient.models.sparseinst.config import sparseinst_mbv2_tiny
from tests.training import SMALL_MODEL


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return synthesize(tmp_path_factory.mktemp("synth"), train=3, size=(60, 90), seed=4)


def test_shortest_edge_families_train_multi_scale_on_the_resolved_sizes(synth) -> None:
    recipe = get_family("sparseinst").train_recipe
    config = TrainConfig(data=str(synth["train"]), workers=0, batch=2).resolved(recipe, 320)
    dataset, loader = build_train_data(config, InputSpec(min_size=320, max_size=533), world_size=1)
    resize, flip = dataset.transforms.transforms
    # the recipe's 416-640 for a test size of 640, scaled to 320; the recipe's longest side
    assert isinstance(resize, ResizeShortestEdge) and resize.short_edges == (208, 224, 240, 256, 272, 288, 304, 320)
    assert resize.max_size == 853 and isinstance(flip, RandomFlip)
    heights = {dataset[(index, 0, epoch)]["image"].shape[0] for index in range(3) for epoch in range(4)}
    assert heights <= set(resize.short_edges) and len(heights) > 1  # 60 x 90 images: the short side is drawn
    assert loader.batch_size == 2


def test_fixed_size_families_train_at_their_input_size_without_flips_when_asked(synth) -> None:
    config = TrainConfig(data=str(synth["train"]), workers=0, batch=2, flip=False, train_sizes=(100,))
    config = config.resolved(get_family("sparseinst").train_recipe, 48)
    dataset, _ = build_train_data(config, InputSpec(resize="fixed", min_size=48), world_size=1)
    (resize,) = dataset.transforms.transforms
    assert isinstance(resize, ResizeFixed) and resize.size == 48  # train_sizes do not apply to a fixed size
    sample = dataset[(0, 0, 0)]
    assert sample["image"].shape == (48, 48, 3) and sample["masks"].shape[1:] == (48, 48)


def test_train_data_needs_a_resolved_config_and_a_divisible_batch(synth) -> None:
    with pytest.raises(ValueError, match="needs a resolved TrainConfig"):
        build_train_data(TrainConfig(data=str(synth["train"]), batch=2), InputSpec(), world_size=1)
    with pytest.raises(ValueError, match=r"batch=3 must be divisible by the number of processes \(2\)"):
        build_train_data(TrainConfig(data=str(synth["train"]), batch=3), InputSpec(), world_size=2)


def test_family_and_input_spec_come_from_the_model_config(tmp_path: Path) -> None:
    family = get_family("sparseinst")
    config = TrainConfig(model="sparseinst_mbv2_tiny", model_config={"min_size_test": 224})
    found, spec = model_family_and_input(config, None, None)
    assert found is family and spec == sparseinst_mbv2_tiny(min_size_test=224).input_spec() and spec.min_size == 224
    arch = sparseinst_mbv2_tiny(**SMALL_MODEL, min_size_test=256)
    model = SalientModel(family.build(arch), family, arch, ["salient"], "sparseinst_mbv2_tiny")
    assert model_family_and_input(TrainConfig(), model, None)[1].min_size == 256
    checkpoint = {"family": "sparseinst", "config": arch.to_dict(), "name": "x", "class_names": ["salient"]}
    assert model_family_and_input(TrainConfig(), None, checkpoint)[1].min_size == 256  # through config_from_dict
    path = tmp_path / "model.pth"
    model.save(path)
    assert model_family_and_input(TrainConfig(model=str(path)), None, None)[1].min_size == 256
    setup = build_network(TrainConfig(), model, None, ("salient",))
    assert setup.config is arch and setup.network is model.network and setup.family is family


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


def test_progress_printer_shows_the_epoch() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(total=10, every=1, stream=stream, per_epoch=4)  # 3 epochs, the last one short
    for iteration in range(1, 11):
        printer.update(iteration, {"loss": 1.0})
    epochs = [line.split()[1] for line in stream.getvalue().splitlines()]
    assert epochs == ["1/3"] * 4 + ["2/3"] * 4 + ["3/3"] * 2


def test_run_summary_says_class_or_classes() -> None:
    from pysalient.engine.distributed import DistributedContext
    from pysalient.engine.train_setup import describe_run

    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), owns_group=False)
    network = torch.nn.Linear(2, 2)
    one = describe_run(network, "m", ["salient"], context, 3, TrainConfig(batch=2))
    two = describe_run(network, "m", ["a", "b"], context, 3, TrainConfig(batch=2))
    assert "1 class)" in one and "2 classes)" in two


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


def test_registry_entries_with_packaged_weights_start_from_them(capsys) -> None:
    from pysalient.engine.checkpoint import read_checkpoint
    from pysalient.engine.train_config import settings_help
    from pysalient.models import get_model_entry

    packaged = get_model_entry("sparseinst_r18_light").weights
    start = starting_weights(None, packaged)
    assert start is not None and start.endswith(packaged.url) and Path(start).is_file()
    assert starting_weights("none", packaged) is None and starting_weights(None, None) is None
    assert starting_weights("my.pth", packaged) == "my.pth"
    saved = read_checkpoint(start)["state_dict"]
    # one class, as the packaged weights: every tensor comes from them
    setup = build_network(TrainConfig(model="sparseinst_r18_light"), None, None, ("salient",))
    assert setup.weights == start
    saved = {key: value for key, value in saved.items() if not key.endswith("num_batches_tracked")}  # not loaded
    for key, value in setup.network.state_dict().items():
        assert key not in saved or torch.equal(value, saved[key].to(value.dtype)), key
    # three classes: the class layer keeps its initialisation (and is named), the rest is loaded
    capsys.readouterr()
    setup = build_network(TrainConfig(model="sparseinst_r18_light"), None, None, ("a", "b", "c"))
    printed = capsys.readouterr().out
    state = setup.network.state_dict()
    reinitialised = [key for key in saved if key in state and saved[key].shape != state[key].shape]
    assert reinitialised and all(key in printed for key in reinitialised)
    assert all(torch.equal(state[key], saved[key].to(state[key].dtype)) for key in saved if key not in reinitialised)
    # weights=none: random initialisation, recorded as such
    setup = build_network(TrainConfig(model="sparseinst_r18_light", weights="none"), None, None, ("salient",))
    assert setup.weights == NO_WEIGHTS
    assert not all(torch.equal(v, saved[k].to(v.dtype)) for k, v in setup.network.state_dict().items() if k in saved)
    # train --help lists every setting with its default, as plain text
    text = settings_help()
    for item in dataclasses.fields(TrainConfig):
        assert f"  {item.name}=" in text, item.name
    assert "lr=recipe" in text and "workers=2" in text and "``" not in text
