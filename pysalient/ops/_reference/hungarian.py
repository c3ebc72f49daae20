"""Reference of ``linear_sum_assignment``: the O(n^3) Hungarian method with potentials."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor


def linear_sum_assignment(cost: Tensor, maximize: bool) -> Tuple[Tensor, Tensor]:
    """Rectangular assignment by the O(n^3) Hungarian method with potentials (see ``pysalient.ops``).

    Args:
        cost: [N, K] floating point; +inf marks a forbidden pair (-inf when ``maximize``).
        maximize: maximise the total instead of minimising it.

    Returns:
        (rows, cols): int64 [min(N, K)] each, rows ascending.
    """
    device = cost.device
    if cost.shape[0] == 0 or cost.shape[1] == 0:
        empty = torch.empty((0,), dtype=torch.int64, device=device)
        return empty, empty.clone()
    values = cost.detach().to(device="cpu", dtype=torch.float64)
    if maximize:
        values = -values
    if bool(torch.isnan(values).any()) or bool((values == -math.inf).any()):
        raise RuntimeError(
            "pysalient::linear_sum_assignment: cost matrix contains invalid numeric entries (NaN or -inf; "
            "NaN or +inf when maximize=True)"
        )
    transpose = values.shape[0] > values.shape[1]
    matrix: List[List[float]] = (values.t() if transpose else values).tolist()
    column_of_row = _hungarian_rows_into_columns(matrix)
    if column_of_row is None:
        raise RuntimeError("pysalient::linear_sum_assignment: cost matrix is infeasible")
    pairs = [(column, row) if transpose else (row, column) for row, column in enumerate(column_of_row)]
    pairs.sort()
    rows = torch.tensor([pair[0] for pair in pairs], dtype=torch.int64, device=device)
    cols = torch.tensor([pair[1] for pair in pairs], dtype=torch.int64, device=device)
    return rows, cols


def _hungarian_rows_into_columns(cost: List[List[float]]) -> Optional[List[int]]:
    """Assigns each of the n rows to one of m >= n columns at minimum total cost; None when infeasible.

    Rows are added one at a time; each addition grows a tree of tight edges (reduced cost c - u - v = 0) from
    the new row, raising the potentials by the smallest reduced cost ``delta`` towards an unreached column until
    a free column is reached, then flips the matching along the tree path. Column 0 is a virtual column that
    holds the row being added. An infinite ``delta`` means no finite path exists: infeasible.
    """
    n, m = len(cost), len(cost[0])
    row_potential = [0.0] * (n + 1)  # 1-based rows
    column_potential = [0.0] * (m + 1)  # 1-based columns, 0 is the virtual column
    row_of_column = [0] * (m + 1)  # 0 = free
    previous_column = [0] * (m + 1)
    for new_row in range(1, n + 1):
        row_of_column[0] = new_row
        column = 0
        slack = [math.inf] * (m + 1)
        in_tree = [False] * (m + 1)
        while True:
            in_tree[column] = True
            row = row_of_column[column]
            delta, next_column = math.inf, -1
            for j in range(1, m + 1):
                if in_tree[j]:
                    continue
                reduced = cost[row - 1][j - 1] - row_potential[row] - column_potential[j]
                if reduced < slack[j]:
                    slack[j], previous_column[j] = reduced, column
                if slack[j] < delta:
                    delta, next_column = slack[j], j
            if delta == math.inf:
                return None
            for j in range(m + 1):
                if in_tree[j]:
                    row_potential[row_of_column[j]] += delta
                    column_potential[j] -= delta
                else:
                    slack[j] -= delta
            column = next_column
            if row_of_column[column] == 0:
                break
        while column != 0:
            source = previous_column[column]
            row_of_column[column] = row_of_column[source]
            column = source
    column_of_row = [0] * n
    for j in range(1, m + 1):
        if row_of_column[j] != 0:
            column_of_row[row_of_column[j] - 1] = j - 1
    return column_of_row
