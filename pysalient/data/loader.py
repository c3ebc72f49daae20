"""Data loading: seeded, epoch-based, identical for any number of workers, DDP-aware.

Iteration is **epoch-based**. :class:`EpochSampler` wraps PyTorch's ``DistributedSampler`` (with one replica
when not distributed): the order of epoch ``e`` is ``randperm(n)`` from a generator seeded with
``seed + e`` (shuffle) or ``0..n-1``, padded and split across ranks exactly as ``DistributedSampler`` does.
It yields keys ``(index, seed, epoch)`` that pysalient datasets turn into per-item transform generators, so
a batch depends only on (seed, epoch, position): not on the number of workers, the worker that loaded it,
or whether the run was resumed.

Contract for trainers:
- call ``loader.sampler.set_epoch(e)`` before iterating epoch ``e`` (distributed or not); without it each new
  iteration of the loader advances the epoch by one on its own;
- to resume in the middle of epoch ``e`` after ``k`` batches, call ``loader.sampler.set_epoch(e, skip=k *
  batch_size)``: the remaining batches equal those of the uninterrupted run, and skipped images are never
  loaded; :func:`iterate_batches` does this bookkeeping for iteration-based training.
"""

from __future__ import annotations

import random
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from pysalient.data.sample import InstanceDataset, Sample

Key = Union[int, Tuple[int, int, int]]


class EpochSampler(Sampler):
    """Per-epoch order of dataset keys for one rank (see the module docstring).

    Args:
        dataset: the dataset (only its length is used).
        shuffle: random order per epoch, else sequential.
        seed: run seed; epoch ``e`` uses ``seed + e`` for the order and ``(seed, e, index)`` for augmentation.
        num_replicas: number of ranks.
        rank: this rank.
        keyed: yield ``(index, seed, epoch)`` keys (pysalient datasets) rather than plain indices.
    """

    def __init__(
        self, dataset: Dataset, shuffle: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0, keyed: bool = True
    ) -> None:
        self.index_sampler = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.seed = int(seed)
        self.keyed = bool(keyed)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Selects the epoch of the next iteration, and how many of its leading items to leave out."""
        if epoch < 0 or skip < 0:
            raise ValueError(f"epoch and skip must be non-negative, got {epoch} and {skip}")
        self.epoch = int(epoch)
        self.skip = int(skip)

    @property
    def samples_per_epoch(self) -> int:
        """Items this rank sees in a full epoch."""
        return len(self.index_sampler)

    def __len__(self) -> int:
        """Items of the next iteration (a full epoch unless ``skip`` was set)."""
        return max(len(self.index_sampler) - self.skip, 0)

    def __iter__(self) -> Iterator[Key]:
        epoch, skip = self.epoch, self.skip
        # Advance now, so a loader iterated again without set_epoch sees a new order.
        self.epoch, self.skip = epoch + 1, 0
        self.index_sampler.set_epoch(epoch)
        for position, index in enumerate(self.index_sampler):
            if position >= skip:
                yield (index, self.seed, epoch) if self.keyed else index


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    distributed: bool = False,
    seed: int = 0,
    drop_last: bool = True,
    num_replicas: Optional[int] = None,
    rank: Optional[int] = None,
) -> DataLoader:
    """A DataLoader yielding **lists** of samples (collated into tensors by :func:`pysalient.data.collate.collate`).

    Args:
        dataset: a pysalient dataset (receives seeded keys) or any map-style dataset (plain indices).
        batch_size: samples per batch (per rank when distributed).
        shuffle: new random order every epoch.
        workers: loader processes (0 = load in the calling process); batches do not depend on it.
        distributed: split every epoch across the ranks of the initialised default process group.
        seed: run seed (order, augmentation and worker seeding).
        drop_last: drop the last incomplete batch of an epoch.
        num_replicas, rank: override the process group's world size and rank (tests, custom launchers).

    Returns:
        The DataLoader; ``loader.sampler`` is its :class:`EpochSampler`.
    """
    if batch_size < 1 or workers < 0 or seed < 0:
        raise ValueError(f"need batch_size >= 1, workers >= 0 and seed >= 0, got {batch_size}, {workers}, {seed}")
    if distributed and (num_replicas is None or rank is None):
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "distributed=True needs an initialised torch.distributed process group (or num_replicas and rank)"
            )
        num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
        rank = dist.get_rank() if rank is None else rank
    elif not distributed:
        num_replicas, rank = 1, 0
    sampler = EpochSampler(dataset, shuffle, seed, num_replicas, rank, keyed=isinstance(dataset, InstanceDataset))
    if drop_last and sampler.samples_per_epoch < batch_size:
        raise ValueError(
            f"the dataset gives {sampler.samples_per_epoch} image(s) per epoch and rank, fewer than batch_size="
            f"{batch_size}: no full batch (lower batch_size or use drop_last=False)"
        )
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_samples,
        drop_last=drop_last,
        worker_init_fn=seed_worker if workers > 0 else None,
        generator=generator,
        persistent_workers=workers > 0,
    )


def iterate_batches(loader: DataLoader, start_iteration: int = 0) -> Iterator[Tuple[int, int, List[Sample]]]:
    """Endless ``(iteration, epoch, batch)`` stream over epochs, for iteration-based training.

    Starting at ``start_iteration`` gives exactly the batches an uninterrupted stream gives from there on.

    Args:
        loader: from :func:`build_loader`.
        start_iteration: global index of the first batch to produce.
    """
    sampler = loader.sampler
    if not isinstance(sampler, EpochSampler):
        raise TypeError("iterate_batches needs a loader made by build_loader")
    batch_size = loader.batch_size
    full, rest = divmod(sampler.samples_per_epoch, batch_size)
    per_epoch = full + (1 if rest and not loader.drop_last else 0)
    if per_epoch == 0:
        raise ValueError("the loader yields no batch per epoch")
    epoch, done = divmod(int(start_iteration), per_epoch)
    iteration = int(start_iteration)
    while True:
        sampler.set_epoch(epoch, skip=done * batch_size)
        for batch in loader:
            yield iteration, epoch, batch
            iteration += 1
        epoch, done = epoch + 1, 0


def collate_samples(batch: List[Sample]) -> List[Sample]:
    """Keeps a batch as the list of its samples."""
    return list(batch)


def seed_worker(worker_id: int) -> None:
    """Seeds numpy's and Python's global generators in a loader worker from torch's per-worker seed.

    pysalient transforms never use global generators (they get per-item ones); this protects user code that
    does from every worker drawing the same numbers.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
