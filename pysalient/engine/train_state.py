"""What a training checkpoint must hold for a resumed run to continue exactly: RNG states and the data order.

Resuming exactly means the resumed run draws the same random numbers and sees the same batches as the
uninterrupted run would have. The random generators (torch CPU and CUDA, NumPy, Python) are saved as tensors
and ints (so checkpoints load with ``weights_only=True``). The data order is saved as the current epoch's list
of index batches plus the number already consumed: the rest of the epoch is replayed from that list, whatever
sampler produced it (shuffled, distributed), without touching the images already seen. Dataset keys are ints
or tuples of ints (:mod:`pysalient.data` issues ``(index, seed, epoch)`` keys so that each image's augmentation
depends on its key alone, which also makes resuming exact with several loader workers).
"""

from __future__ import annotations

import random
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader

DatasetKey = Union[int, Tuple[int, ...]]


def capture_rng_state() -> Dict[str, Any]:
    """The states of every global random generator a training step may draw from."""
    numpy_state = np.random.get_state()
    python_version, python_internal, python_gauss = random.getstate()
    state: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "position": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": {
            "version": python_version,
            "internal": torch.tensor(python_internal, dtype=torch.int64),
            "gauss_next": python_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored when both runs have the same devices)."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python = state["python"]
    internal = tuple(int(value) for value in python["internal"].tolist())
    random.setstate((python["version"], internal, python["gauss_next"]))
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


def restore_data_and_rng(
    order: DataOrder, checkpoint: Mapping[str, Any], rank: int, world_size: int, dataset_size: int
) -> Tuple[int, Optional[Iterator[Any]], str]:
    """Puts this process's saved data order and random states back, in the order that makes resuming exact.

    Args:
        order: the training data order to restore.
        checkpoint: a training checkpoint (``data_orders`` and ``rng_states``, one per saving process).
        rank, world_size: this process and the number of processes now.
        dataset_size: images in the training set (checked against the saved order).

    Returns:
        ``(next_epoch, iterator, warning)``: the epoch to start when the current one ends, the iterator over the
        rest of the current epoch (None if it was finished) and a message when the run cannot resume exactly.
    """
    orders, rng_states = checkpoint["data_orders"], checkpoint["rng_states"]
    if len(orders) != world_size:
        # Another process count splits the data differently: the saved order cannot be replayed.
        next_epoch = int(orders[0]["epoch"]) + 1
        return (
            next_epoch,
            None,
            (
                f"resuming {len(orders)}-process training with {world_size} processes: the data order restarts with "
                f"epoch {next_epoch} and the random streams keep their fresh seeds"
            ),
        )
    order.load_state_dict(orders[rank], dataset_size)
    iterator = order.remaining() if order.position < len(order.batches) else None
    restore_rng_state(rng_states[rank])  # after remaining(): creating the loader iterator draws a seed
    return order.epoch + 1, iterator, ""


class DataOrder:
    """Iterates a training loader epoch after epoch, remembering enough to restart inside an epoch.

    Each epoch the loader's batch sampler is asked for the epoch's index batches once (after ``set_epoch``
    for distributed samplers), then a loader with the same settings runs over the batches not yet consumed.

    Args:
        loader: the training loader (map-style dataset with a batch sampler), e.g. from
            :func:`pysalient.data.build_loader`.
    """

    def __init__(self, loader: DataLoader) -> None:
        if loader.batch_sampler is None:
            raise ValueError("the training loader must batch with a batch sampler (batch_size set)")
        self.loader = loader
        self.epoch = 0
        self.position = 0  # batches of this epoch already handed to the trainer
        self.batches: List[List[DatasetKey]] = []
        self._pending_generator_states: Optional[List[torch.Tensor]] = None

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.loader.batch_sampler)

    def start_epoch(self, epoch: int) -> None:
        """Draws the index batches of ``epoch`` from the loader's sampler."""
        self._restore_generators()
        sampler = self.loader.batch_sampler.sampler if hasattr(self.loader.batch_sampler, "sampler") else None
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        self.epoch = int(epoch)
        self.position = 0
        self.batches = [[_plain_key(key) for key in batch] for batch in self.loader.batch_sampler]
        if not self.batches:
            raise ValueError("the training loader yields no batch (dataset smaller than the batch size?)")

    def remaining(self) -> Iterator[Any]:
        """An iterator over the batches of the current epoch not consumed yet (each counted when handed out).

        The loader's iterator is created here, not at the first ``next``: creating it draws the worker base
        seed from the global torch generator, which a resumed run must do BEFORE restoring the saved states.
        """
        source = self.loader
        options: Dict[str, Any] = {
            "num_workers": source.num_workers,
            "collate_fn": source.collate_fn,
            "pin_memory": source.pin_memory,
            "worker_init_fn": source.worker_init_fn,
            "generator": source.generator,
            "timeout": source.timeout,
            "multiprocessing_context": source.multiprocessing_context,
        }
        if source.num_workers > 0:
            options["prefetch_factor"] = source.prefetch_factor
        rest = iter(DataLoader(source.dataset, batch_sampler=self.batches[self.position :], **options))
        self._restore_generators()  # after the iterator's seed draw, as in the run that saved them
        return self._counted(rest)

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for samples in batches:
            self.position += 1
            yield samples

    def state_dict(self) -> Dict[str, Any]:
        """Epoch, position and the epoch's batches: keys as an int64 [N, D] tensor (D = 0 for int keys)."""
        flat = [key for batch in self.batches for key in batch]
        width = len(flat[0]) if flat and isinstance(flat[0], tuple) else 0
        rows = [list(key) if width else [key] for key in flat]
        return {
            "epoch": self.epoch,
            "position": self.position,
            "keys": torch.tensor(rows, dtype=torch.int64).reshape(len(rows), max(width, 1)),
            "key_width": width,
            "batch_sizes": torch.tensor([len(batch) for batch in self.batches], dtype=torch.int64),
            "generators": [generator.get_state() for generator in self._generators()],
        }

    def load_state_dict(self, state: Dict[str, Any], dataset_size: Optional[int] = None) -> None:
        """Restores :meth:`state_dict`; ``dataset_size`` checks the indices still fit the dataset."""
        rows = state["keys"].tolist()
        largest = max((row[0] for row in rows), default=-1)  # the image index comes first in every key
        if dataset_size is not None and largest >= dataset_size:
            raise ValueError(
                f"the checkpoint's data order indexes image {largest} but the dataset has {dataset_size} "
                "images: resume with the dataset the run was started with"
            )
        keys = [tuple(row) if state["key_width"] else row[0] for row in rows]
        batches, start = [], 0
        for size in state["batch_sizes"].tolist():
            batches.append(keys[start : start + size])
            start += size
        self.epoch, self.position, self.batches = int(state["epoch"]), int(state["position"]), batches
        if len(state["generators"]) != len(self._generators()):
            raise ValueError("the checkpoint's data loader had another sampler: resume with the same data settings")
        self._pending_generator_states = list(state["generators"])

    def _restore_generators(self) -> None:
        """Puts back the loader generators' saved states (once, before their next draw after a restore)."""
        if self._pending_generator_states is not None:
            for generator, state in zip(self._generators(), self._pending_generator_states):
                generator.set_state(state)
            self._pending_generator_states = None

    def _generators(self) -> List[torch.Generator]:
        """The loader's own random generators (sampler shuffling, worker seeds), whose states the next epochs use."""
        sampler = getattr(self.loader.batch_sampler, "sampler", None)
        found: List[torch.Generator] = []
        for generator in (getattr(sampler, "generator", None), self.loader.generator):
            if isinstance(generator, torch.Generator) and all(generator is not other for other in found):
                found.append(generator)
        return found


def _plain_key(key: Any) -> DatasetKey:
    """A sampler's key as Python ints: an int, or a tuple of ints (e.g. ``(index, seed, epoch)``)."""
    if isinstance(key, (tuple, list)):
        return tuple(int(value) for value in key)
    return int(key)
