"""The training loop: iterations, optimizer and schedule, logs, validation, checkpoints, exact resume, Ctrl-C.

Entry points: :func:`train` (a :class:`TrainConfig`), :func:`train_model` (``SalientModel.train``),
:func:`main_train` / :func:`train_from_cli` (``pysalient train [config.yaml] key=value ...``, also under
``torchrun --nproc_per_node=K -m pysalient train ...``). A run writes ``runs/train/<name>/``: ``last.pth`` and
``best.pth`` (training checkpoints: the pysalient model-checkpoint keys, so ``pysalient.load`` reads them, plus
``train_config``, ``iteration``, ``optimizer``, ``scheduler``, ``grad_scaler``, ``rng_states``, ``data_orders``,
``best_ap``, ``elapsed``), ``weights.pth`` (the final model), ``config.json``, ``metrics.jsonl``, ``results.csv``.

Exactness: a run resumed from ``last.pth`` restores weights, optimizer, schedule, every random generator and
the position in the epoch's batch order, so on the CPU with ``workers=0`` it computes bit for bit what the
uninterrupted run computes; with ``workers > 0`` too, because pysalient datasets draw each image's augmentation
from its own key (see :mod:`pysalient.data.sample`), not from per-worker generators.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from torch.nn.parallel import DistributedDataParallel

from pysalient.data.collate import collate
from pysalient.engine import distributed as dist_utils
from pysalient.engine.checkpoint import atomic_torch_save, model_checkpoint
from pysalient.engine.distributed import DistributedContext, setup_distributed
from pysalient.engine.interrupts import InterruptRequest, TrainingInterrupted
from pysalient.engine.model import SalientModel
from pysalient.engine.progress import ProgressPrinter, format_duration
from pysalient.engine.run_files import BEST_CHECKPOINT, FINAL_WEIGHTS, LAST_CHECKPOINT, RunLogs
from pysalient.engine.solver import build_optimizer, build_scheduler, warmup_iterations
from pysalient.engine.train_config import TrainConfig, load_train_config
from pysalient.engine.train_setup import (
    build_network,
    build_train_data,
    describe_run,
    model_family_and_input,
    resolve_run,
    seed_everything,
)
from pysalient.engine.train_state import DataOrder, capture_rng_state, restore_data_and_rng

Callback = Callable[["Trainer"], None]


def train(config: TrainConfig, model: Optional[SalientModel] = None, callbacks: Sequence[Callback] = ()) -> Path:
    """Runs a training run (or resumes one) and returns its run directory; see :class:`Trainer`."""
    return Trainer(config, model, callbacks).train()


def train_model(model: SalientModel, data: Union[str, os.PathLike], val: Any = None, **overrides: Any) -> Path:
    """Trains ``model.network`` in place from its current weights (``SalientModel.train``); returns the run dir."""
    changes: Dict[str, Any] = {"model": model.name, "device": str(model.device)}
    changes.update(overrides, data=os.fspath(data), val=None if val is None else os.fspath(val))
    return train(TrainConfig().replace(**changes), model=model)


def main_train(config_path: Optional[str], overrides: List[str]) -> Path:
    """``pysalient train [config.yaml] key=value ...``: builds the config, trains, returns the run dir."""
    return train(load_train_config(config_path, overrides))


def train_from_cli(args: Union[Sequence[str], argparse.Namespace]) -> Path:
    """CLI adapter: ``["config.yaml", "lr=1e-3", ...]`` or a namespace with ``config`` and ``overrides``."""
    if isinstance(args, argparse.Namespace):
        return main_train(getattr(args, "config", None), list(getattr(args, "overrides", None) or []))
    paths = [item for item in args if "=" not in item]
    if len(paths) > 1:
        raise ValueError(f"expected at most one config file and key=value overrides, got files {paths}")
    return main_train(paths[0] if paths else None, [item for item in args if "=" in item])


class Trainer:
    """Trains a network of any registered family through the family contract: :func:`pysalient.data.collate.collate`
    with the family's input spec, ``network(images, targets)`` (target-dependent sampling happens inside the forward,
    hence inside DDP), the family's criterion, and the family's ``TrainRecipe`` for every setting left unset.

    Args:
        config: the run's settings (a resumed run continues with the saved ones, see ``merged_resume_config``).
        model: train this model's network in place (its weights are the starting point).
        callbacks: called with the trainer after every iteration (``trainer.iteration`` done); raising
            KeyboardInterrupt there stops training exactly like Ctrl-C.

    Attributes:
        iteration: optimizer steps done.
        total_iterations: length of the run.
        last_losses: the losses of the last iteration (floats).
        best_ap: best validation mask AP so far (-1 before the first validation).
        run_dir: the run directory (set when training starts).
    """

    def __init__(
        self, config: TrainConfig, model: Optional[SalientModel] = None, callbacks: Sequence[Callback] = ()
    ) -> None:
        self.requested = config
        self.model = model
        self.callbacks = list(callbacks)
        self.iteration = 0
        self.total_iterations = 0
        self.last_losses: Dict[str, float] = {}
        self.best_ap = -1.0
        self.run_dir: Optional[Path] = None
        self._interrupt = InterruptRequest()
        self._agreed_stop = False
        self._phase = "setup"
        self._iterator: Optional[Any] = None
        self._next_epoch = 0
        self._progress: Optional[ProgressPrinter] = None

    def train(self) -> Path:
        """Runs to ``total_iterations``; returns the run directory.

        Raises:
            TrainingInterrupted: after Ctrl-C, once ``last.pth`` is saved.
        """
        context = setup_distributed(self.requested.device)
        self._interrupt.announce = context.is_main
        try:
            with self._interrupt:
                self._setup(context)
                try:
                    self._loop()
                except KeyboardInterrupt as interrupt:
                    if isinstance(interrupt, TrainingInterrupted):
                        raise
                    raise TrainingInterrupted(self.run_dir, self._save_on_interrupt()) from None
                self._finish()
            assert self.run_dir is not None
            return self.run_dir
        finally:
            if self._progress is not None:
                self._progress.close()
            dist_utils.cleanup_distributed(context)

    def _setup(self, context: DistributedContext) -> None:
        self.context = context
        config, self.run_dir, checkpoint_path, checkpoint = resolve_run(self.requested, context)
        family, self.input_spec = model_family_and_input(config, self.model, checkpoint)
        config = config.resolved(family.recipe(config.recipe), self.input_spec.min_size)
        self.config = config
        seed_everything(config.seed)
        self.dataset, loader = build_train_data(config, self.input_spec, context.world_size)
        setup = build_network(config, self.model, checkpoint, tuple(self.dataset.class_names))
        self.network, self.family, self.model_config = setup.network, setup.family, setup.config
        self.name, self.class_names = setup.name, setup.class_names
        if setup.weights is not None:  # config.json says what training started from, so the run can be redone
            config = self.config = dataclasses.replace(config, weights=setup.weights)
        seed_everything(config.seed + context.rank)  # each process draws its own augmentations
        self.order = DataOrder(loader)
        self.iterations_per_epoch = len(self.order)
        self.total_iterations = config.max_iter or config.epochs * self.iterations_per_epoch
        self.network.to(context.device).train()
        self.trained_module: torch.nn.Module = self.network
        if context.distributed:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            self.trained_module = DistributedDataParallel(self.network, device_ids=device_ids)
        self.criterion = self.family.build_criterion(self.model_config).to(context.device)
        self.optimizer = build_optimizer(
            self.network,
            config.optimizer,
            config.lr,
            config.weight_decay,
            momentum=config.momentum,
            betas=config.betas,
            weight_decay_bias=config.weight_decay_bias,
            weight_decay_norm=config.weight_decay_norm,
            bias_lr_factor=config.bias_lr_factor,
        )
        self.warmup = warmup_iterations(config.warmup_iters, self.total_iterations)
        self.scheduler = build_scheduler(
            self.optimizer,
            self.total_iterations,
            self.warmup,
            config.warmup_factor,
            config.lr_steps,
            config.gamma,
            warmup_kind=config.warmup,
            schedule=config.schedule,
        )
        self.amp = bool(config.amp and context.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.logs = RunLogs(self.run_dir)
        self.elapsed_before = 0.0
        if checkpoint is not None:
            self._restore(checkpoint)
        if context.is_main:
            self.logs.write_config(config.to_dict())
            summary = describe_run(self.network, self.name, self.class_names, context, len(self.dataset), config)
            self._say(f"{summary}, {self.schedule_text}" + (f"; resuming {checkpoint_path}" if checkpoint else ""))
            self._progress = ProgressPrinter(
                self.total_iterations, self.iteration, every=config.log_period, per_epoch=self.iterations_per_epoch
            )
        self._window: Dict[str, float] = {}
        self._window_count = 0
        self._started = time.perf_counter()

    def _restore(self, checkpoint: Dict[str, Any]) -> None:
        """Loads a training checkpoint: weights, optimizer, schedule, counters, data order and RNG states."""
        self.network.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.amp and checkpoint.get("grad_scaler"):
            self.scaler.load_state_dict(checkpoint["grad_scaler"])
        self.iteration = int(checkpoint["iteration"])
        self.best_ap = float(checkpoint["best_ap"])
        self.elapsed_before = float(checkpoint["elapsed"])
        self._next_epoch, self._iterator, warning = restore_data_and_rng(
            self.order, checkpoint, self.context.rank, self.context.world_size, len(self.dataset)
        )
        if warning:
            self._say(warning)
        if self.context.is_main:
            self.logs.truncate_after(self.iteration)

    # ------------------------------------------------------------------------------------------------ loop
    def _loop(self) -> None:
        while self.iteration < self.total_iterations:
            self._phase = "boundary"
            if dist_utils.any_process(self._interrupt.requested, self.context):
                self._agreed_stop = True
                raise KeyboardInterrupt
            self._phase = "data"
            started = time.perf_counter()
            try:
                samples = self._next_batch()
            except Exception:
                if self._interrupt.requested:  # Ctrl-C also reached the loader workers, which died: stop here
                    self._phase, self._agreed_stop = "boundary", not self.context.distributed
                    raise KeyboardInterrupt from None
                raise
            loaded = time.perf_counter()
            self._phase = "step"
            lr = float(self.optimizer.param_groups[0]["lr"])
            self.last_losses = self._step(samples)
            self.iteration += 1
            self._phase = "boundary"
            self._after_iteration(lr, loaded - started, time.perf_counter() - loaded)
            for callback in self.callbacks:
                callback(self)

    def _next_batch(self) -> Any:
        while True:
            if self._iterator is None:
                if self.order.position >= len(self.order.batches):
                    self.order.start_epoch(self._next_epoch)
                    self._next_epoch += 1
                self._iterator = self.order.remaining()
            try:
                return next(self._iterator)
            except StopIteration:
                self._iterator = None

    def _step(self, samples: Any) -> Dict[str, float]:
        """One optimizer step on a batch; returns the loss values."""
        images, targets = collate(samples, self.input_spec, self.model_config.num_classes, self.context.device)
        with torch.autocast(self.context.device.type, dtype=torch.float16, enabled=self.amp):
            outputs = self.trained_module(images, targets)
        losses = self.criterion(outputs, targets)  # the criterion computes in float32 whatever the outputs' dtype
        total = sum(losses.values())
        values = dict(zip(losses, torch.stack([value.detach().float() for value in losses.values()]).tolist()))
        if not math.isfinite(sum(values.values())):
            raise FloatingPointError(f"non-finite loss at iteration {self.iteration + 1}: {values}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.config.clip_grad:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the loss-scaled ones
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {"loss": sum(values.values()), **values}

    def _after_iteration(self, lr: float, data_time: float, step_time: float) -> None:
        for key, value in {**self.last_losses, "data_time": data_time, "iter_time": data_time + step_time}.items():
            self._window[key] = self._window.get(key, 0.0) + value
        self._window_count += 1
        last = self.iteration == self.total_iterations
        if self._progress is not None:
            shown = {"loss": self._window["loss"] / self._window_count, "lr": lr}
            self._progress.update(self.iteration, shown)
        if self.iteration % self.config.log_period == 0 or last:
            self._log(lr)
        validate = self.config.val is not None and (self.iteration % self._eval_period == 0 or last)
        is_best = self._validate() if validate else False
        if self.iteration % (self.config.checkpoint_period or self.iterations_per_epoch) == 0 or last or is_best:
            self._save(last=True, best=is_best)

    @property
    def _eval_period(self) -> int:
        return self.config.eval_period or self.iterations_per_epoch

    def _log(self, lr: float) -> None:
        means = {key: value / self._window_count for key, value in self._window.items()}
        means = dist_utils.mean_over_processes(means, self.context)
        self._window, self._window_count = {}, 0
        if self.context.is_main:
            record = {"iteration": self.iteration, "epoch": round(self.iteration / self.iterations_per_epoch, 4)}
            record.update(lr=lr, **means, time=round(self._elapsed(), 3))
            self.logs.log_metrics(record)

    def _validate(self) -> bool:
        """Rank 0 evaluates ``config.val``, logs a ``results.csv`` row; returns whether the AP is the best yet."""
        is_best = False
        if self.context.is_main:
            from pysalient.engine.evaluator import evaluate_model, format_metrics

            self.network.eval()
            predictor = SalientModel(self.network, self.family, self.model_config, self.class_names, self.name)
            per_process = max(self.config.batch // self.context.world_size, 1)
            metrics = evaluate_model(predictor, self.config.val, self.config.val_image_root, batch=per_process)
            self.network.train()
            epoch = round(self.iteration / self.iterations_per_epoch, 4)
            self.logs.log_results({"iteration": self.iteration, "epoch": epoch, **metrics})
            is_best = metrics["AP"] > self.best_ap
            self.best_ap = max(self.best_ap, metrics["AP"])
            if self._progress is not None:
                self._progress.close()  # the table starts on its own line, not after the in-place progress bar
            self._say(f"validation at iteration {self.iteration}:\n{format_metrics(metrics)}")
        return bool(dist_utils.broadcast_object(is_best, self.context))

    # ----------------------------------------------------------------------------------------- checkpoints
    def _save(self, last: bool, best: bool) -> Optional[Path]:
        """Writes ``last.pth`` and/or ``best.pth`` (every process takes part: states are gathered on rank 0)."""
        rng_states = dist_utils.gather_objects(capture_rng_state(), self.context)
        orders = dist_utils.gather_objects(self.order.state_dict(), self.context)
        if not self.context.is_main:
            return None
        payload = model_checkpoint(
            self.network, self.family.name, self.name, self.model_config.to_dict(), self.class_names
        )
        payload.update(
            train_config=self.config.to_dict(),
            iteration=self.iteration,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            grad_scaler=self.scaler.state_dict(),
            rng_states=rng_states,
            data_orders=orders,
            best_ap=self.best_ap,
            elapsed=self._elapsed(),
        )
        assert self.run_dir is not None
        if best:
            atomic_torch_save(payload, self.run_dir / BEST_CHECKPOINT)
        if last:
            return atomic_torch_save(payload, self.run_dir / LAST_CHECKPOINT)
        return None

    def _save_on_interrupt(self) -> Optional[Path]:
        """Saves ``last.pth`` if the interrupt came between iterations (a consistent state), else keeps the old."""
        existing = self.run_dir / LAST_CHECKPOINT if self.run_dir is not None else None
        consistent = self._phase == "boundary" and (self._agreed_stop or not self.context.distributed)
        if not consistent:
            self._say(f"interrupted during {self._phase}: the state is not between iterations, {existing} stays")
            return existing if existing is not None and existing.is_file() else None
        path = self._save(last=True, best=False)
        self._say(f"interrupted at iteration {self.iteration}/{self.total_iterations}: saved {path}")
        return path

    def _finish(self) -> None:
        if self._progress is not None:
            self._progress.close()
        if self.context.is_main:
            assert self.run_dir is not None
            final = model_checkpoint(
                self.network, self.family.name, self.name, self.model_config.to_dict(), self.class_names
            )
            final["state_dict"] = {  # float32 whatever precision the network was handed over in
                key: value.float() if value.is_floating_point() else value for key, value in final["state_dict"].items()
            }
            atomic_torch_save(final, self.run_dir / FINAL_WEIGHTS)
            self._say(f"done: {self.iteration} iterations in {format_duration(self._elapsed())}; {self.run_dir}")
        dist_utils.barrier(self.context)
        self.network.eval()
        if self.model is not None:
            self.model.names = dict(enumerate(self.class_names))

    # ---------------------------------------------------------------------------------------------- helpers
    def _elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._started

    @property
    def schedule_text(self) -> str:
        """The iteration plan and learning-rate schedule, for the start-of-run summary."""
        config = self.config
        if config.schedule == "cosine":
            decay = "cosine decay"
        else:
            decay = f"x{config.gamma:g} at {[round(step * self.total_iterations) for step in config.lr_steps]}"
        optimizer = "SGD" if config.optimizer == "sgd" else "AdamW"
        return (
            f"{self.iterations_per_epoch} iterations/epoch, {self.total_iterations} iterations; {optimizer} lr "
            f"{config.lr:g}, {config.warmup} warm-up {self.warmup} (x{config.warmup_factor:g}), {decay}; "
            f"AMP {'on' if self.amp else 'off'}; run dir {self.run_dir}"
        )

    def _say(self, message: str) -> None:
        if getattr(self, "context", None) is None or self.context.is_main:
            print(message, file=sys.stderr, flush=True)
