"""Distributed training through PyTorch's own engine: ``torchrun`` sets the environment, we read it.

``torchrun --nproc_per_node=K -m pysalient train ...`` starts K processes with ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`setup_distributed` joins the process group
(NCCL on CUDA, gloo on CPU) and picks the device. A single process without those variables is the
``world_size == 1`` case and never touches ``torch.distributed``.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist

from pysalient.utils.device import select_device

# Rank 0 validates and saves while the others wait in a barrier: allow long validations before timing out.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 logs, validates and saves).
        world_size: number of processes.
        local_rank: rank on this machine (its CUDA device index).
        device: the device this process trains on.
        owns_group: whether :func:`setup_distributed` created the process group (and must destroy it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether several processes take part."""
        return self.world_size > 1


def setup_distributed(device: Optional[str] = None) -> DistributedContext:
    """Reads the torchrun environment and joins the process group when ``WORLD_SIZE`` > 1.

    Args:
        device: requested device type/index; in a multi-process CUDA run each process takes
            ``cuda:LOCAL_RANK`` whatever index is given.

    Raises:
        ValueError: malformed torchrun variables, or more CUDA processes on a machine than devices.
    """
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as error:
        raise ValueError(f"malformed torchrun environment (LOCAL_RANK/WORLD_SIZE): {error}") from error
    resolved = select_device(device)
    if world_size <= 1:
        return DistributedContext(0, 1, 0, resolved, owns_group=False)
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are visible")
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        options: Dict[str, Any] = {"device_id": resolved} if resolved.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT, **options)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, resolved, owns_group)


def cleanup_distributed(context: DistributedContext) -> None:
    """Leaves the process group if this run created it."""
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    """Waits for every process (no-op for a single process)."""
    if context.distributed:
        if context.device.type == "cuda":
            dist.barrier(device_ids=[context.device.index])
        else:
            dist.barrier()


def broadcast_object(value: Any, context: DistributedContext) -> Any:
    """Rank 0's ``value`` on every process (picklable values, e.g. the run directory chosen by rank 0)."""
    if not context.distributed:
        return value
    box = [value if context.is_main else None]
    dist.broadcast_object_list(box, src=0, device=context.device if context.device.type == "cuda" else None)
    return box[0]


def gather_objects(value: Any, context: DistributedContext) -> List[Any]:
    """Every process's ``value`` (picklable), indexed by rank, on every process."""
    if not context.distributed:
        return [value]
    gathered: List[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def mean_over_processes(values: Dict[str, float], context: DistributedContext) -> Dict[str, float]:
    """Averages scalars over all processes (every process must call it with the same keys in the same order)."""
    if not context.distributed or not values:
        return dict(values)
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=context.device)
    dist.all_reduce(stacked)
    return {key: float(value) / context.world_size for key, value in zip(values, stacked.tolist())}


def any_process(flag: bool, context: DistributedContext) -> bool:
    """True on every process when ``flag`` is True on at least one (e.g. a Ctrl-C received by one rank)."""
    if not context.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)
