"""TrainConfig: defaults (official recipe), files (JSON, YAML with or without PyYAML), overrides, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pysalient.engine import config_file
from pysalient.engine.config_file import parse_scalar, read_config_file
from pysalient.engine.train_config import RECIPE_FIELDS, TrainConfig, field_names, load_train_config
from pysalient.engine.train_setup import merged_resume_config
from pysalient.models import get_family
from pysalient.models.family import TrainRecipe


def test_unset_fields_take_the_family_recipe_and_explicit_values_win() -> None:
    recipe = get_family("sparseinst").train_recipe
    assert all(getattr(TrainConfig(), key) is None for key in RECIPE_FIELDS)
    config = TrainConfig().resolved(recipe, 640)
    assert config.is_resolved and config.optimizer == "adamw"
    assert (config.lr, config.weight_decay, config.betas) == (5e-5, 0.05, (0.9, 0.999))
    assert (config.warmup, config.warmup_iters, config.warmup_factor, config.gamma) == ("linear", 1000, 0.001, 0.1)
    assert [round(step * 270000) for step in config.lr_steps] == [210000, 250000]
    assert config.clip_grad == 0 and config.max_size == 853 and config.flip and config.weight_decay_bias == 0.05
    assert config.train_sizes == (416, 448, 480, 512, 544, 576, 608, 640)
    assert TrainConfig().resolved(recipe, 320).train_sizes == (208, 224, 240, 256, 272, 288, 304, 320)
    explicit = TrainConfig(train_sizes=(300,), lr=1e-3, optimizer="sgd", weight_decay=0.01).resolved(recipe, 640)
    assert (explicit.train_sizes, explicit.lr, explicit.optimizer) == ((300,), 1e-3, "sgd")
    assert explicit.weight_decay_bias == 0.01  # the recipe's "like the weights" follows the requested decay
    assert explicit.resolved(recipe, 320) == explicit  # resolving twice changes nothing (resumed runs)
    sgd = TrainRecipe(optimizer="sgd", lr=0.0025, warmup="constant", train_sizes=(320,), reference_test_size=320)
    assert TrainConfig().resolved(sgd, 480).train_sizes == (480,) and TrainConfig().resolved(sgd, 480).lr == 0.0025


def test_train_sizes_scale_from_the_recipe_reference_to_the_test_size() -> None:
    recipe = get_family("sparseinst").train_recipe
    without_size = TrainConfig().resolved(recipe)  # the recipe fields only; the sizes wait for the model
    assert without_size.train_sizes is None and without_size.lr == 5e-5 and not without_size.is_resolved
    assert without_size.resolved_train_sizes(320, recipe) == (208, 224, 240, 256, 272, 288, 304, 320)
    assert without_size.resolved(recipe, 320) == TrainConfig().resolved(recipe, 320)
    assert TrainConfig(train_sizes=(96, 128)).resolved_train_sizes(320, recipe) == (96, 128)  # explicit sizes win
    # 416-640 in steps of 32 at 640 -> 41.6-64 at 64: 42, 45, 48, 51, 54, 58, 61, 64 (half up)
    assert TrainConfig().resolved_train_sizes(64, recipe) == (42, 45, 48, 51, 54, 58, 61, 64)
    # at 8 several sizes round alike (5.2, 5.6, 6.0, 6.4, 6.8, 7.2, 7.6, 8.0): each is kept once, in order
    assert TrainConfig().resolved_train_sizes(8, recipe) == (5, 6, 7, 8)
    no_reference = TrainRecipe(train_sizes=(300, 400))
    assert TrainConfig().resolved_train_sizes(640, no_reference) == (300, 400)
    assert TrainConfig().resolved_train_sizes(640, TrainRecipe()) == (640,)  # a recipe without sizes: the test size


def test_recipe_values_reach_every_field_and_overrides_keep_theirs() -> None:
    sgd = TrainRecipe(
        optimizer="sgd",
        lr=0.0025,
        momentum=0.8,
        weight_decay=1e-4,
        weight_decay_bias=0.0,
        weight_decay_norm=0.001,
        bias_lr_factor=2.0,
        warmup="constant",
        warmup_iters=500,
        warmup_factor=1 / 3,
        schedule="cosine",
        lr_steps=(0.5,),
        gamma=0.2,
        max_size=480,
        batch=4,
        epochs=10,
        flip=False,
        clip_grad=5.0,
        amp=False,
    )
    resolved = TrainConfig().resolved(sgd, 320)
    assert {key: getattr(resolved, key) for key in RECIPE_FIELDS} == {key: getattr(sgd, key) for key in RECIPE_FIELDS}
    overrides = dict(optimizer="adamw", lr=1e-3, bias_lr_factor=1.0, warmup="linear", schedule="step", flip=True)
    overrides.update(batch=2, clip_grad=0.0, amp=True, weight_decay_bias=0.01, gamma=0.5)
    mine = TrainConfig(**overrides).resolved(sgd, 320)
    assert {key: getattr(mine, key) for key in overrides} == overrides
    assert mine.momentum == 0.8 and mine.warmup_iters == 500  # the fields not overridden stay the recipe's


def test_overrides_are_parsed_with_the_field_types() -> None:
    config = load_train_config(
        None,
        [
            "lr=1e-3",
            "batch=4",
            "train_sizes=256,288",
            "betas=[0.8, 0.9]",
            "clip_grad=none",
            "max_iter=10",
            "amp=false",
            "name=2024",
            "resume=true",
            "model_config.inst_dim=64",
            "model_config.backbone_width_multiplier=0.5",
            "val=null",
        ],
    )
    assert config.lr == 1e-3 and isinstance(config.lr, float)
    assert config.batch == 4 and config.train_sizes == (256, 288) and config.betas == (0.8, 0.9)
    assert config.clip_grad is None and config.max_iter == 10 and config.amp is False
    assert config.name == "2024" and config.resume is True and config.val is None
    assert config.model_config == {"inst_dim": 64, "backbone_width_multiplier": 0.5}
    assert load_train_config(None, ["resume=runs/train/exp/last.pth"]).resume == "runs/train/exp/last.pth"
    assert load_train_config(None, ["lr=1"]).lr == 1.0  # ints widen to float fields


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["lr=abc"], "lr must be a number"),
        (["batch=0"], "batch must be > 0"),
        (["batch=2.5"], "batch must be an integer"),
        (["bogus=1"], r"unknown TrainConfig keys \['bogus'\]"),
        (["lr_steps=0.9,0.5"], "lr_steps must be increasing"),
        (["betas=0.9,0.99,0.999"], "betas must have 2 values"),
        (["amp=maybe"], "amp must be true or false"),
        (["clip_grad=-1"], "clip_grad must be >= 0"),
        (["optimizer=adam"], "optimizer must be one of"),
        (["schedule=poly"], "schedule must be one of"),
        (["no equals sign"], "must look like key=value"),
        (["warmup_factor=0"], r"warmup_factor must lie in \(0, 1\]"),
    ],
)
def test_bad_overrides_name_the_problem(overrides: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_train_config(None, overrides)


def test_round_trip_through_a_checkpoint_dict() -> None:
    config = TrainConfig(data="train.json", train_sizes=(128, 160), model_config={"inst_dim": 64}, resume="x.pth")
    saved = json.loads(json.dumps(config.to_dict()))  # what a checkpoint or config.json holds
    assert TrainConfig.from_dict(saved) == config
    assert set(saved) == set(field_names())


def test_json_and_yaml_files_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"data": "a.json", "lr": 0.001, "train_sizes": [256]}))
    config = load_train_config(tmp_path / "run.json", ["lr=0.002"])
    assert (config.data, config.lr, config.train_sizes) == ("a.json", 0.002, (256,))
    yaml_text = (
        "# a training recipe\n"
        "data: 'train #1.json'   # quoted hash kept\n"
        "epochs: 3\n"
        "lr: 1e-3\n"
        "train_sizes: [256, 288]\n"
        "amp: off\n"
        "model_config:\n"
        "  inst_dim: 64\n"
        "  decoder: giam\n"
        "seed: 7\n"
    )
    (tmp_path / "run.yaml").write_text(yaml_text)
    config = load_train_config(tmp_path / "run.yaml", ["seed=8"], epochs=4)
    assert config.data == "train #1.json" and config.epochs == 4 and config.seed == 8 and config.lr == 1e-3
    assert config.train_sizes == (256, 288) and config.amp is False
    assert config.model_config == {"inst_dim": 64, "decoder": "giam"}


def test_yaml_subset_reader_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback reader gives what PyYAML gives on the subset, and refuses what it cannot read."""
    monkeypatch.setattr(config_file, "_load_yaml", config_file._load_yaml_subset)
    (tmp_path / "ok.yml").write_text("a: 1\nb: [1, 2.5, 'x', null]\nc:\n  d: true\n  e: -3e-2\nf: text here\n")
    assert read_config_file(tmp_path / "ok.yml") == {
        "a": 1,
        "b": [1, 2.5, "x", None],
        "c": {"d": True, "e": -0.03},
        "f": "text here",
    }
    (tmp_path / "deep.yml").write_text("a:\n  b:\n    c: 1\n")
    with pytest.raises(ValueError, match="second nested level"):
        read_config_file(tmp_path / "deep.yml")
    (tmp_path / "list.yml").write_text("a:\n  - 1\n  - 2\n")
    with pytest.raises(ValueError, match="beyond the YAML subset"):
        read_config_file(tmp_path / "list.yml")


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        read_config_file(tmp_path / "missing.yaml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a mapping"):
        read_config_file(tmp_path / "list.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read config file"):
        read_config_file(tmp_path / "broken.json")


def test_parse_scalar() -> None:
    assert parse_scalar("12") == 12 and parse_scalar("1.5e-3") == 0.0015 and parse_scalar("'12'") == "12"
    assert parse_scalar("(1, [2, 3])") == [1, [2, 3]] and parse_scalar("yes") is True and parse_scalar("~") is None
    assert parse_scalar("runs/train") == "runs/train"


def test_resume_keeps_the_saved_settings() -> None:
    saved = TrainConfig(data="train.json", lr=1e-3, max_iter=100, workers=0).to_dict()
    same = merged_resume_config(saved, TrainConfig(data="train.json", resume=True, workers=3, max_iter=200))
    assert (same.lr, same.workers, same.max_iter, same.data) == (1e-3, 3, 200, "train.json")
    with pytest.raises(ValueError, match=r"lr=0\.01 \(the run has 0\.001\)"):
        merged_resume_config(saved, TrainConfig(data="train.json", lr=1e-2, resume=True))
    by_epochs = merged_resume_config(saved, TrainConfig(resume=True, epochs=50))
    assert by_epochs.max_iter is None and by_epochs.epochs == 50


def test_resuming_removes_what_a_killed_save_left_behind(tmp_path, capsys) -> None:
    import torch

    from pysalient.engine.checkpoint import atomic_torch_save
    from pysalient.engine.distributed import DistributedContext
    from pysalient.engine.train_setup import resolve_run

    run_dir = tmp_path / "runs" / "exp"
    saved = TrainConfig(data="train.json", project=str(tmp_path / "runs"), max_iter=10, workers=0)
    atomic_torch_save({"train_config": saved.to_dict(), "iteration": 5}, run_dir / "last.pth")
    stale = [run_dir / ".last.pth.k2j4x9.tmp", run_dir / ".best.pth.a1b2c3.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    (run_dir / "notes.tmp").write_text("not ours")  # only hidden .<file>.<random>.tmp names are removed
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), owns_group=False)
    requested = TrainConfig(data="train.json", project=str(tmp_path / "runs"), resume=True, workers=0)
    config, resolved_dir, checkpoint_path, checkpoint = resolve_run(requested, context)
    assert resolved_dir == run_dir and checkpoint_path == run_dir / "last.pth" and checkpoint["iteration"] == 5
    assert config.max_iter == 10
    assert sorted(path.name for path in run_dir.iterdir()) == ["last.pth", "notes.tmp"]
    out = capsys.readouterr().out
    assert all(f"removed {path.name}, left by an interrupted save" in out for path in stale)
