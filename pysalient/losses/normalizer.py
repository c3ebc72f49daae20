"""The loss normaliser of dense detectors and SparseInst: a positive count averaged over distributed workers."""

from __future__ import annotations

import torch
import torch.distributed as dist


def mean_over_workers(count: float, device: torch.device, minimum: float = 1.0) -> float:
    """``max(mean of count over the distributed workers, minimum)``; ``max(count, minimum)`` without DDP.

    The official SparseInst / FCOS / detectron2 code all-reduces the number of positives (or instances) and divides
    by the world size, so that every worker normalises its loss by the same number.

    Args:
        count: this worker's number of positives.
        device: where the all-reduce runs (the NCCL device under CUDA DDP).
        minimum: lower bound of the result (1: a batch without positives does not divide by zero).
    """
    if dist.is_available() and dist.is_initialized():
        total = torch.tensor([float(count)], device=device)
        dist.all_reduce(total)
        return max(total.item() / dist.get_world_size(), minimum)
    return max(float(count), minimum)
