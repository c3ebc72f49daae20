"""Distributed training with 2 CPU processes (gloo): synchronised replicas, split data, rank-0 files, torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch
import torch.multiprocessing as mp

from pysalient.data import synthesize
from pysalient.engine.checkpoint import read_checkpoint
from pysalient.engine.train_config import TrainConfig
from pysalient.engine.trainer import Trainer, train
from tests.training import SMALL_MODEL


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _worker(rank: int, world_size: int, port: int, config: Dict[str, Any], out_dir: str) -> None:
    """One torchrun-like process: the environment torchrun would set, then a plain ``train`` call."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    consumed: List[List[int]] = []

    def record(trainer: Trainer) -> None:
        batch = trainer.order.batches[trainer.order.position - 1]
        consumed.append([int(key[0]) for key in batch])  # dataset keys are (index, seed, epoch)
        if trainer.iteration == trainer.total_iterations:
            # parameters only: DDP re-broadcasts BatchNorm running statistics from rank 0 at each forward, so
            # after the last forward each replica holds the statistics of its own batch
            parameters = {name: value.detach() for name, value in trainer.network.named_parameters()}
            torch.save(parameters, Path(out_dir) / f"rank{rank}.pth")

    run_dir = train(TrainConfig.from_dict(config), callbacks=[record])
    report = {"rank": rank, "run_dir": str(run_dir), "consumed": consumed}
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(report))


def _config(tmp_path: Path, train_json: Path, **changes: Any) -> Dict[str, Any]:
    values = dict(
        data=str(train_json),
        model_config=SMALL_MODEL,
        max_iter=4,
        batch=4,  # 2 images per process
        workers=0,
        lr=1e-3,
        train_sizes=(96,),
        log_period=2,
        project=str(tmp_path / "runs"),
        device="cpu",
    )
    values.update(changes)
    return TrainConfig(**values).to_dict()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return synthesize(tmp_path_factory.mktemp("synth"), train=8, size=96, seed=5)


def test_two_processes_train_one_synchronised_model(synth, tmp_path: Path) -> None:
    config = _config(tmp_path, synth["train"])
    mp.spawn(_worker, args=(2, _free_port(), config, str(tmp_path)), nprocs=2, join=True)
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert [len(report["consumed"]) for report in reports] == [4, 4]  # both ranks ran every iteration
    assert reports[0]["run_dir"] == reports[1]["run_dir"] == str(tmp_path / "runs" / "exp")  # rank 0 chose it
    # each epoch (8 images, 2 iterations of 2 images per rank) splits the images between the ranks
    for epoch in range(2):
        seen = [
            index for report in reports for batch in report["consumed"][2 * epoch : 2 * epoch + 2] for index in batch
        ]
        assert sorted(seen) == list(range(8))
    states = [torch.load(tmp_path / f"rank{rank}.pth", weights_only=True) for rank in range(2)]
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])  # DDP kept the replicas equal
    run_dir = tmp_path / "runs" / "exp"
    saved = read_checkpoint(run_dir / "last.pth")
    assert saved["iteration"] == 4 and len(saved["rng_states"]) == len(saved["data_orders"]) == 2
    assert all(torch.equal(saved["state_dict"][key], value) for key, value in states[0].items())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["iteration"] for record in records] == [2, 4]
    assert not (tmp_path / "runs" / "exp2").exists()  # only rank 0 creates run directories


def test_torchrun_command_line(synth, tmp_path: Path) -> None:
    config = _config(tmp_path, synth["train"], max_iter=2)
    overrides = [f"data={config['data']}", f"project={config['project']}", "max_iter=2", "batch=4", "workers=0"]
    overrides += ["train_sizes=96", "device=cpu", "lr=1e-3"]
    overrides += [f"model_config.{key}={value}" for key, value in SMALL_MODEL.items()]
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["--log-dir", str(logs), "--redirects", "3", "-m", "pysalient", "train", *overrides]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    run_dir = tmp_path / "runs" / "exp"
    assert {"last.pth", "weights.pth", "metrics.jsonl", "config.json"} <= {path.name for path in run_dir.iterdir()}
    stdout_logs = sorted(logs.rglob("stdout.log"))
    saying_where = [path for path in stdout_logs if "training run saved in" in path.read_text()]
    assert len(stdout_logs) == 2 and len(saying_where) == 1  # the run folder is printed once, by rank 0
