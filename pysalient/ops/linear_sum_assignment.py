"""Optimal bipartite matching of predictions to targets (the Hungarian matching of SparseInst)."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from pysalient.ops import _reference
from pysalient.ops._library import has_native


def linear_sum_assignment(cost: Tensor, maximize: bool = False) -> Tuple[Tensor, Tensor]:
    """Exact rectangular linear sum assignment, same optimum as ``scipy.optimize.linear_sum_assignment``.

    Pairs ``min(N, K)`` rows with distinct columns so that the total cost is minimal (maximal when
    ``maximize``). Solved by shortest augmenting paths with dual potentials (Crouse, IEEE TAES 2016) in
    double precision on the CPU. When several assignments are optimal, the one returned may differ from
    scipy's; the total never does. Not differentiable (the indices carry no gradient).

    A CUDA ``cost`` is copied to the host once, solved there, and the indices are moved back to its device;
    gather the costs of a whole batch into one tensor first to pay a single device synchronisation.

    Args:
        cost: [N, K] cost of assigning row i to column j, floating point. ``+inf`` marks a forbidden pair
            (``-inf`` when ``maximize``); NaN, and ``-inf`` (``+inf`` when ``maximize``), are rejected.
        maximize: maximise the total instead of minimising it.

    Returns:
        (rows, cols): int64 [min(N, K)] each; ``rows`` ascending and ``cols[i]`` the column of ``rows[i]``.

    Raises:
        RuntimeError: when ``cost`` holds invalid entries, or when every assignment uses a forbidden pair.
    """
    if not torch.jit.is_scripting():
        if not has_native():
            return _reference.linear_sum_assignment(cost, maximize)
    if cost.device.type == "cpu":
        return torch.ops.pysalient.linear_sum_assignment(cost, maximize)
    rows, cols = torch.ops.pysalient.linear_sum_assignment(cost.detach().cpu(), maximize)
    return rows.to(cost.device), cols.to(cost.device)


class LinearSumAssignment(nn.Module):
    """Module form of :func:`linear_sum_assignment` with a fixed optimisation direction.

    Args:
        maximize: maximise the total (e.g. of a dice score) instead of minimising it (e.g. of a cost).
    """

    def __init__(self, maximize: bool = False) -> None:
        super().__init__()
        self.maximize = bool(maximize)

    def forward(self, cost: Tensor) -> Tuple[Tensor, Tensor]:
        """Returns (rows, cols), int64 [min(N, K)] each, of the optimal assignment of ``cost`` [N, K]."""
        return linear_sum_assignment(cost, self.maximize)

    def extra_repr(self) -> str:
        return f"maximize={self.maximize}"
