"""Training runs end to end on a tiny SynthSIS set: files, checkpoints, exact resume, Ctrl-C, ``model.train``."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

import pysalient
from pysalient.data import synthesize
from pysalient.engine.checkpoint import read_checkpoint
from pysalient.engine.model import SalientModel
from pysalient.engine.train_config import TrainConfig
from pysalient.engine.trainer import Trainer, TrainingInterrupted, main_train, train, train_from_cli
from pysalient.models.registry import get_family
from pysalient.models.sparseinst.config import sparseinst_mbv2_tiny
from tests.training import SMALL_MODEL, small_train_config


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the CI machine's 2 cores are shared, and more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return synthesize(tmp_path_factory.mktemp("synth"), train=4, val=2, size=128, seed=3)


def _config(synth: Dict[str, Path], project: Path, **changes) -> TrainConfig:
    # multi-scale and flips (train_sizes 96/128): the augmentation draws are part of what must replay
    return small_train_config(changes.pop("data", synth["train"]), project, **changes)


class _Recorder:
    """Callback recording each iteration's losses, optionally interrupting after iteration ``stop_at``."""

    def __init__(self, stop_at: int = 0, use_signal: bool = False) -> None:
        self.losses: List[Dict[str, float]] = []
        self.stop_at, self.use_signal = stop_at, use_signal

    def __call__(self, trainer: Trainer) -> None:
        self.losses.append(dict(trainer.last_losses))
        if trainer.iteration == self.stop_at:
            if self.use_signal:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
            else:
                raise KeyboardInterrupt


def _state(path: Path) -> Dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


@pytest.mark.parametrize("workers, stop_at", [(0, 3), (1, 2)])  # inside an epoch / at its end (2 per epoch)
def test_interrupted_and_resumed_run_equals_the_straight_run(synth, tmp_path: Path, workers: int, stop_at: int) -> None:
    straight = _Recorder()
    straight_dir = train(_config(synth, tmp_path, name="straight", workers=workers), callbacks=[straight])
    assert len(straight.losses) == 6

    first = _Recorder(stop_at=stop_at)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(_config(synth, tmp_path, name="split", workers=workers), callbacks=[first])
    checkpoint = stopped.value.checkpoint
    assert checkpoint == tmp_path / "split" / "last.pth" and read_checkpoint(checkpoint)["iteration"] == stop_at
    assert not (tmp_path / "split" / "weights.pth").exists()

    second = _Recorder()
    resumed_dir = train(TrainConfig(resume=str(checkpoint), workers=workers), callbacks=[second])
    assert resumed_dir == tmp_path / "split"
    assert first.losses + second.losses == straight.losses  # bit-equal floats, iteration by iteration
    straight_state, resumed_state = _state(straight_dir / "weights.pth"), _state(resumed_dir / "weights.pth")
    assert all(torch.equal(straight_state[key], resumed_state[key]) for key in straight_state)
    records = [json.loads(line) for line in (resumed_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["iteration"] for record in records] == [1, 2, 3, 4, 5, 6]
    assert [record["loss"] for record in records] == [losses["loss"] for losses in straight.losses]


def test_ctrl_c_saves_a_checkpoint_that_loads_and_resumes(synth, tmp_path: Path) -> None:
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(_config(synth, tmp_path, name="run", max_iter=4), callbacks=[_Recorder(stop_at=2, use_signal=True)])
    assert signal.getsignal(signal.SIGINT) is handler_before
    saved = read_checkpoint(stopped.value.checkpoint)
    assert saved["iteration"] == 2 and saved["train_config"]["max_iter"] == 4
    # a training checkpoint is also a model checkpoint
    model = pysalient.load(stopped.value.checkpoint, device="cpu")
    assert model.name == "sparseinst_mbv2_tiny" and model.names == {0: "salient"}
    assert model.config.inst_dim == 64 and len(model.predict(np.zeros((64, 64, 3), np.uint8))) == 1
    run_dir = main_train(None, [f"project={tmp_path}", "name=run", "resume=true"])  # the latest run*/last.pth
    assert run_dir == tmp_path / "run" and read_checkpoint(run_dir / "last.pth")["iteration"] == 4


def test_run_directory_contents_and_validation(synth, tmp_path: Path) -> None:
    config = _config(synth, tmp_path, val=str(synth["val"]), max_iter=4, eval_period=2, log_period=2, name="v")
    run_dir = train(config)
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "best.pth",
        "config.json",
        "last.pth",
        "metrics.jsonl",
        "results.csv",
        "weights.pth",
    ]
    # the run saves the resolved config: the requested values, the rest from the family's recipe
    recipe = get_family("sparseinst").train_recipe
    saved = json.loads((run_dir / "config.json").read_text())
    test_size = sparseinst_mbv2_tiny(**SMALL_MODEL).input_spec().min_size
    # weights: what training started from ("none": random initialisation, mbv2_tiny ships no weights)
    expected = {**config.resolved(recipe, test_size).to_dict(), "weights": "none"}
    assert saved == expected and saved["warmup_iters"] == recipe.warmup_iters
    rows = (run_dir / "results.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,epoch,AP,AP50,AP70,AP75,") and [row[:2] for row in rows[1:]] == ["2,", "4,"]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["iteration"] for record in records] == [2, 4]
    assert {"lr", "loss", "loss_ce", "loss_dice", "loss_mask", "loss_objectness", "time"} <= set(records[0])
    last = read_checkpoint(run_dir / "last.pth")  # weights_only=True
    for key in ("optimizer", "scheduler", "rng_states", "data_orders", "train_config", "state_dict", "class_names"):
        assert key in last
    assert last["iteration"] == 4 and last["format"] == "pysalient" and last["family"] == "sparseinst"
    assert last["train_config"] == saved and last["best_ap"] >= 0
    weights = read_checkpoint(run_dir / "weights.pth")
    assert "optimizer" not in weights and all(value.dtype != torch.float16 for value in weights["state_dict"].values())
    assert all(torch.equal(weights["state_dict"][key], value) for key, value in last["state_dict"].items())
    assert pysalient.load(run_dir / "best.pth", device="cpu").config.num_queries == 10
    second = train(config)
    assert second == tmp_path / "v2"  # run directories are numbered, never overwritten


def test_salient_model_train_trains_in_place(synth, tmp_path: Path) -> None:
    arch = sparseinst_mbv2_tiny(**SMALL_MODEL)
    network = get_family("sparseinst").build(arch)
    model = SalientModel(network, get_family("sparseinst"), arch, ["thing"], "sparseinst_mbv2_tiny")
    before = {key: value.clone() for key, value in network.state_dict().items()}
    run_dir = model.train(synth["train"], max_iter=2, batch=2, workers=0, project=str(tmp_path), train_sizes=(96,))
    assert run_dir == tmp_path / "exp" and model.network is network and not network.training
    assert model.names == {0: "salient"}  # the training set's class names
    changed = [key for key, value in network.state_dict().items() if not torch.equal(value, before[key])]
    assert "decoder.inst_branch.cls_score.weight" in changed
    saved = _state(run_dir / "weights.pth")
    assert all(torch.equal(saved[key], value) for key, value in network.state_dict().items())


def test_cli_adapter_and_errors(synth, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(_config(synth, tmp_path, max_iter=1).to_dict()))
    assert train_from_cli([str(recipe), "name=cli"]) == tmp_path / "cli"
    with pytest.raises(ValueError, match="at most one config file"):
        train_from_cli(["a.yaml", "b.yaml"])
    with pytest.raises(ValueError, match="no training data"):
        train(_config(synth, tmp_path, data=""))
    with pytest.raises(ValueError, match="num_classes comes from the training set"):
        train(_config(synth, tmp_path, model_config=dict(SMALL_MODEL, num_classes=2)))
    arch = sparseinst_mbv2_tiny(num_classes=2, **SMALL_MODEL)
    two_classes = SalientModel(get_family("sparseinst").build(arch), get_family("sparseinst"), arch, "ab", "x")
    with pytest.raises(ValueError, match="predicts 2 classes but the training set has 1"):
        two_classes.train(synth["train"], project=str(tmp_path), batch=2)
    with pytest.raises(ValueError, match="model checkpoint, not a training checkpoint"):
        train(TrainConfig(resume=str(tmp_path / "cli" / "weights.pth")))
    with pytest.raises(ValueError, match=r"lr=0\.5 \(the run has 0\.001\)"):
        train(TrainConfig(resume=str(tmp_path / "cli" / "last.pth"), lr=0.5))
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        train(TrainConfig(resume=str(tmp_path / "nothing.pth")))


def test_the_network_receives_the_targets_inside_its_forward(synth, tmp_path: Path) -> None:
    # Families sample RoIs, windows or pixels from the targets inside network(images, targets), i.e. inside the DDP
    # forward; the trainer must hand them over, in the padded frame of the collated batch.
    arch = sparseinst_mbv2_tiny(**SMALL_MODEL)
    network = get_family("sparseinst").build(arch)
    seen: List[Dict[str, torch.Tensor]] = []

    def record(module, args, kwargs):  # noqa: ANN001, ANN202
        images, targets = args if len(args) == 2 else (args[0], kwargs.get("targets"))
        assert targets is not None and len(targets) == images.shape[0]
        for target in targets:
            assert target["masks"].shape[-2:] == images.shape[-2:] and target["boxes"].shape[1:] == (4,)
            assert target["labels"].dtype == torch.int64 and len(target["labels"]) == len(target["masks"])
        seen.append(targets[0])

    network.register_forward_pre_hook(record, with_kwargs=True)
    model = SalientModel(network, get_family("sparseinst"), arch, ["thing"], "sparseinst_mbv2_tiny")
    model.train(synth["train"], max_iter=2, batch=2, workers=0, project=str(tmp_path), train_sizes=(96,))
    assert len(seen) == 2 and any(len(target["labels"]) > 0 for target in seen)


def test_a_recipe_with_sgd_constant_warmup_and_cosine_decay_trains(synth, tmp_path: Path) -> None:
    config = _config(synth, tmp_path, max_iter=4, optimizer="sgd", lr=1e-4, warmup="constant", warmup_iters=10)
    config = config.replace(warmup_factor=0.5, schedule="cosine", weight_decay_bias=0.0, bias_lr_factor=2.0)
    trainer = Trainer(config)
    run_dir = trainer.train()
    assert isinstance(trainer.optimizer, torch.optim.SGD) and (run_dir / "weights.pth").is_file()
    groups = {group["name"]: group for group in trainer.optimizer.param_groups}
    assert groups["biases"]["weight_decay"] == 0.0 and groups["biases"]["initial_lr"] == 2e-4
    assert "SGD lr 0.0001, constant warm-up" in trainer.schedule_text and "cosine decay" in trainer.schedule_text
