"""pysalient.ops.linear_sum_assignment: scipy's optimum, forbidden pairs, reference parity, script and export."""

from __future__ import annotations

import math
from typing import Callable, Tuple

import pytest
import scipy.optimize
import torch

from pysalient.ops import LinearSumAssignment, _reference, linear_sum_assignment
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip

Solver = Callable[[torch.Tensor, bool], Tuple[torch.Tensor, torch.Tensor]]
SHAPES = [(1, 1), (1, 7), (7, 1), (5, 5), (10, 3), (3, 10), (30, 30), (50, 100), (100, 50), (100, 300), (300, 100)]


def random_cost(n: int, k: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, k, generator=generator, dtype=torch.float64) * 10).to(dtype)


def tied_cost(n: int, k: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (n, k), generator=generator).to(torch.float64)


def assert_valid_assignment(rows: torch.Tensor, cols: torch.Tensor, n: int, k: int) -> None:
    assert rows.dtype == torch.int64 and cols.dtype == torch.int64
    assert rows.shape == cols.shape == (min(n, k),)
    assert torch.all(rows[1:] > rows[:-1]), "rows must be strictly ascending"
    assert len(set(cols.tolist())) == cols.numel(), "columns must be distinct"
    if rows.numel():
        assert 0 <= int(rows.min()) and int(rows.max()) < n and 0 <= int(cols.min()) and int(cols.max()) < k


def total(cost: torch.Tensor, assignment: Tuple[torch.Tensor, torch.Tensor]) -> float:
    return float(cost.double()[assignment[0], assignment[1]].sum())


def scipy_total(cost: torch.Tensor, maximize: bool) -> float:
    values = cost.double().numpy()
    rows, cols = scipy.optimize.linear_sum_assignment(values, maximize=maximize)
    return float(values[rows, cols].sum())


def assert_same_total(actual: float, expected: float) -> None:
    assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9), (actual, expected)


def solve_on(device: str, cost: torch.Tensor, maximize: bool = False, solver: Solver = linear_sum_assignment):
    """Solves with ``cost`` moved to ``device``; the indices come back on that device and are returned on the CPU."""
    rows, cols = solver(cost.to(device), maximize)
    assert rows.device.type == device and cols.device.type == device
    return rows.cpu(), cols.cpu()


@pytest.mark.parametrize(
    ("n", "k", "maximize"), [(4, 6, False), (6, 4, True), (5, 5, False), (1, 3, True), (0, 5, False), (5, 0, True)]
)
def test_opcheck(n: int, k: int, maximize: bool) -> None:
    assert_opcheck(torch.ops.pysalient.linear_sum_assignment.default, (random_cost(n, k, n + k), maximize))


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize(("n", "k"), SHAPES)
def test_same_optimum_as_scipy(n: int, k: int, maximize: bool, device: str) -> None:
    for seed in range(3):
        cost = random_cost(n, k, seed)
        rows, cols = solve_on(device, cost, maximize)
        assert_valid_assignment(rows, cols, n, k)
        assert_same_total(total(cost, (rows, cols)), scipy_total(cost, maximize))
        # Continuous random costs have a unique optimum almost surely: the pairs themselves must agree.
        expected_rows, expected_cols = scipy.optimize.linear_sum_assignment(cost.numpy(), maximize=maximize)
        assert rows.tolist() == expected_rows.tolist() and cols.tolist() == expected_cols.tolist()


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize(("n", "k"), [(6, 6), (8, 20), (20, 8), (1, 9), (9, 1), (60, 40)])
def test_integer_costs_with_many_ties(n: int, k: int, maximize: bool, device: str) -> None:
    for seed in range(5):
        cost = tied_cost(n, k, seed)
        rows, cols = solve_on(device, cost, maximize)
        assert_valid_assignment(rows, cols, n, k)
        assert total(cost, (rows, cols)) == scipy_total(cost, maximize)
    constant = torch.full((n, k), 2.0, dtype=torch.float64)
    rows, cols = solve_on(device, constant, maximize)
    assert_valid_assignment(rows, cols, n, k)


def test_hand_computed_unique_optimum(device: str) -> None:
    # The six permutations cost 12, 17, 6, 12, 15, 16 (columns 012, 021, 102, 120, 201, 210): unique min and max.
    cost = torch.tensor([[4.0, 2.0, 8.0], [1.0, 5.0, 7.0], [3.0, 6.0, 3.0]])
    rows, cols = solve_on(device, cost)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]
    rows, cols = solve_on(device, cost, maximize=True)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [0, 2, 1]


def test_tall_matrix_rows_are_ascending(device: str) -> None:
    # 4 rows, 2 columns: rows 3 and 1 win; the result lists them in ascending row order (scipy's convention).
    cost = torch.tensor([[9.0, 9.0], [1.0, 9.0], [9.0, 9.0], [9.0, 0.5]])
    rows, cols = solve_on(device, cost)
    assert rows.tolist() == [1, 3] and cols.tolist() == [0, 1]


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize(("n", "k"), [(8, 8), (6, 12), (12, 6), (40, 25)])
def test_forbidden_pairs_feasible(n: int, k: int, maximize: bool, device: str) -> None:
    forbidden = -math.inf if maximize else math.inf
    for seed in range(4):
        cost = random_cost(n, k, seed)
        generator = torch.Generator().manual_seed(seed + 50)
        mask = torch.rand(n, k, generator=generator) < 0.5
        diagonal = torch.arange(min(n, k))
        mask[diagonal, diagonal] = False  # keeps a finite complete assignment available
        cost[mask] = forbidden
        rows, cols = solve_on(device, cost, maximize)
        assert_valid_assignment(rows, cols, n, k)
        assert math.isfinite(total(cost, (rows, cols)))
        assert_same_total(total(cost, (rows, cols)), scipy_total(cost, maximize))
        reference = _reference.linear_sum_assignment(cost, maximize)
        assert_same_total(total(cost, reference), scipy_total(cost, maximize))


@pytest.mark.parametrize("solver", [linear_sum_assignment, _reference.linear_sum_assignment])
def test_infeasible_raises(solver: Solver, device: str) -> None:
    inf = math.inf
    # Rows 0 and 1 can only use column 0.
    cost = torch.tensor([[1.0, inf, inf], [2.0, inf, inf], [1.0, 2.0, 3.0]], device=device)
    with pytest.raises(RuntimeError, match="cost matrix is infeasible"):
        solver(cost, False)
    with pytest.raises(RuntimeError, match="cost matrix is infeasible"):
        solver(-cost, True)
    with pytest.raises(RuntimeError, match="cost matrix is infeasible"):
        solver(torch.full((2, 3), inf, device=device), False)
    # Forbidden off-diagonal pairs leave exactly one finite assignment.
    rows, cols = solve_on(device, torch.tensor([[1.0, inf], [inf, 2.0]]), False, solver)
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]


@pytest.mark.parametrize("solver", [linear_sum_assignment, _reference.linear_sum_assignment])
@pytest.mark.parametrize(
    ("bad_value", "maximize"), [(math.nan, False), (math.nan, True), (-math.inf, False), (math.inf, True)]
)
def test_invalid_entries_raise(solver: Solver, bad_value: float, maximize: bool, device: str) -> None:
    cost = random_cost(4, 5, 3)
    cost[2, 1] = bad_value
    cost = cost.to(device)
    with pytest.raises(RuntimeError, match=r"contains invalid numeric entries \(NaN or -inf"):
        solver(cost, maximize)
    with pytest.raises(RuntimeError, match="invalid numeric entries"):
        solver(cost.t(), maximize)


@pytest.mark.parametrize("shape", [(0, 0), (0, 4), (4, 0)])
def test_empty(shape: Tuple[int, int], device: str) -> None:
    for solver in (linear_sum_assignment, _reference.linear_sum_assignment):
        rows, cols = solve_on(device, torch.zeros(shape), False, solver)
        assert rows.shape == cols.shape == (0,) and rows.dtype == cols.dtype == torch.int64


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize(("n", "k"), [(1, 1), (3, 9), (9, 3), (15, 15), (25, 40), (40, 25)])
def test_matches_reference(n: int, k: int, maximize: bool, device: str) -> None:
    for seed in range(3):
        cost = random_cost(n, k, seed + 10)
        native = solve_on(device, cost, maximize)
        reference = _reference.linear_sum_assignment(cost, maximize)
        assert_valid_assignment(*reference, n, k)
        assert native[0].tolist() == reference[0].tolist() and native[1].tolist() == reference[1].tolist()
        tied = tied_cost(n, k, seed)
        assert total(tied, solve_on(device, tied, maximize)) == total(
            tied, _reference.linear_sum_assignment(tied, maximize)
        )


@pytest.mark.parametrize("maximize", [False, True])
def test_float32_costs(maximize: bool, device: str) -> None:
    cost = random_cost(30, 45, 21, torch.float32)
    rows, cols = solve_on(device, cost, maximize)
    assert_valid_assignment(rows, cols, 30, 45)
    # Solved in double on the float32 values: the optimum of the widened matrix.
    assert_same_total(total(cost, (rows, cols)), scipy_total(cost, maximize))


def test_non_contiguous_input(device: str) -> None:
    base = random_cost(40, 25, 22)
    view = base.to(device).t()  # [25, 40] transposed view
    assert not view.is_contiguous()
    for maximize in (False, True):
        rows, cols = linear_sum_assignment(view, maximize)
        expected = linear_sum_assignment(view.contiguous(), maximize)
        assert rows.tolist() == expected[0].tolist() and cols.tolist() == expected[1].tolist()
        assert_same_total(total(base.t(), (rows.cpu(), cols.cpu())), scipy_total(base.t().contiguous(), maximize))
    strided = random_cost(20, 60, 23)[::2, ::3]  # [10, 20]
    device_strided = random_cost(20, 60, 23).to(device)[::2, ::3]
    assert not device_strided.is_contiguous()
    pairs = tuple(indices.cpu() for indices in linear_sum_assignment(device_strided))
    assert_same_total(total(strided, pairs), scipy_total(strided.contiguous(), False))


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        (torch.zeros(5), r"cost must be a 2-D tensor \[N, K\]"),
        (torch.zeros(2, 3, 4), r"cost must be a 2-D tensor \[N, K\]"),
        (torch.zeros(3, 3, dtype=torch.int64), "cost must be a floating-point tensor"),
    ],
)
def test_bad_inputs_raise(cost: torch.Tensor, message: str, device: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        linear_sum_assignment(cost.to(device))


def test_torchscript_round_trip() -> None:
    cost = random_cost(12, 7, 30, torch.float32)
    for maximize in (False, True):
        loaded = scripted_round_trip(LinearSumAssignment(maximize=maximize))
        rows, cols = loaded(cost)
        expected = linear_sum_assignment(cost, maximize)
        assert torch.equal(rows, expected[0]) and torch.equal(cols, expected[1])


def test_torch_export_with_dynamic_sizes() -> None:
    num_rows, num_columns = torch.export.Dim("num_rows"), torch.export.Dim("num_columns")
    program = exported_module(
        LinearSumAssignment(maximize=True),
        (random_cost(10, 6, 31, torch.float32),),
        dynamic_shapes=({0: num_rows, 1: num_columns},),
    )
    # Traced on a tall matrix, run on a wide one and on a square one.
    for n, k in [(4, 9), (7, 7), (13, 2)]:
        cost = random_cost(n, k, 32 + n, torch.float32)
        rows, cols = program(cost)
        expected = linear_sum_assignment(cost, True)
        assert torch.equal(rows, expected[0]) and torch.equal(cols, expected[1])


def test_fake_output_size_is_min_of_input_sizes() -> None:
    # The fake kernel returns a backed size Min(N, K), not an unbacked SymInt: export records that expression.
    num_rows, num_columns = torch.export.Dim("num_rows"), torch.export.Dim("num_columns")
    program = torch.export.export(
        LinearSumAssignment(), (random_cost(10, 6, 33),), dynamic_shapes=({0: num_rows, 1: num_columns},)
    )
    outputs = [node for node in program.graph.nodes if node.op == "output"][0].args[0]
    sizes = [str(node.meta["val"].shape[0]) for node in outputs]
    assert all(size.startswith("Min(") for size in sizes), sizes
