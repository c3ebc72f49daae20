"""pysalient.ops.assemble_instances: InstanceFCN assembling values, reference parity, gradients, script, export."""

from __future__ import annotations

from typing import List

import pytest
import torch

from pysalient.ops import InstanceAssembler, _reference, assemble_instances
from tests.ops.helpers import assert_opcheck, exported_module, scripted_round_trip


def random_maps(shape: List[int], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def random_windows(num: int, batch: int, height: int, width: int, m: int, seed: int) -> torch.Tensor:
    """Windows in mixed image order, overlapping, some hanging off or fully off the map."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, batch, (num,), generator=generator)
    y0 = torch.randint(-m - 1, height + 2, (num,), generator=generator)
    x0 = torch.randint(-m - 1, width + 2, (num,), generator=generator)
    return torch.stack([index, y0, x0], dim=1)


def coded_maps(batch: int, k: int, height: int, width: int) -> torch.Tensor:
    """Map value 10000 * b + 1000 * channel + 10 * y + x: every output cell says where it was copied from."""
    b, c, y, x = torch.meshgrid(
        torch.arange(batch), torch.arange(k * k), torch.arange(height), torch.arange(width), indexing="ij"
    )
    return (10000 * b + 1000 * c + 10 * y + x).to(torch.float64)


def test_hand_computed_k2_m4(device: str) -> None:
    maps = torch.tensor([10.0, 20.0, 30.0, 40.0]).reshape(1, 4, 1, 1).expand(1, 4, 6, 6).contiguous()
    out = assemble_instances(maps.to(device), torch.tensor([[0, 1, 1]], device=device), 4, 2)
    expected = torch.tensor([[10, 10, 20, 20], [10, 10, 20, 20], [30, 30, 40, 40], [30, 30, 40, 40]])
    assert out.device == maps.to(device).device
    assert torch.equal(out[0].cpu(), expected.float())


def test_every_cell_reads_its_channel_at_its_own_position(device: str) -> None:
    maps = coded_maps(2, 2, 6, 6).to(device)
    out = assemble_instances(maps, torch.tensor([[1, 2, 1]], device=device), 4, 2)[0].cpu()
    for i in range(4):
        for j in range(4):
            channel = (i // 2) * 2 + j // 2
            assert out[i, j] == 10000 + 1000 * channel + 10 * (2 + i) + (1 + j)


def test_window_hanging_off_the_map_is_zero_there(device: str) -> None:
    maps = coded_maps(1, 2, 6, 6).to(device) + 1.0  # no genuine zeros
    out = assemble_instances(maps, torch.tensor([[0, -1, 4]], device=device), 4, 2)[0].cpu()
    expected = torch.zeros(4, 4, dtype=torch.float64)
    for i in range(1, 4):  # rows y = 0..2
        for j in range(2):  # columns x = 4, 5
            expected[i, j] = 1000 * ((i // 2) * 2 + j // 2) + 10 * (i - 1) + (4 + j) + 1
    assert torch.equal(out, expected)
    far = torch.tensor([[0, 6, 0], [0, 0, -4], [0, -(2**62), 2**62], [0, 2**62, -(2**62)]], device=device)
    assert torch.count_nonzero(assemble_instances(maps, far, 4, 2)) == 0


def test_m_not_divisible_by_k_and_m_smaller_than_k(device: str) -> None:
    # m = 5, k = 2: floor(i * 2 / 5) splits the window into 3 + 2 cells.
    maps = coded_maps(1, 2, 5, 5).to(device)
    channels = (assemble_instances(maps, torch.tensor([[0, 0, 0]], device=device), 5, 2)[0] // 1000).long().cpu()
    rows = torch.tensor([0, 0, 0, 1, 1])
    assert torch.equal(channels, rows[:, None] * 2 + rows[None, :])
    # m = 2, k = 3: cells use sub-windows 0 and 1; the third row and column of maps are never read.
    maps = coded_maps(1, 3, 4, 4).to(device).requires_grad_(True)
    out = assemble_instances(maps, torch.tensor([[0, 1, 1]], device=device), 2, 3)
    assert (out[0] // 1000).long().tolist() == [[0, 1], [3, 4]]
    (grad,) = torch.autograd.grad(out.sum(), maps)
    assert grad.sum(dim=(0, 2, 3)).tolist() == [1, 1, 0, 1, 1, 0, 0, 0, 0]


def test_k1_copies_the_map(device: str) -> None:
    maps = random_maps([1, 1, 5, 7], 0).to(device)
    windows = torch.tensor([[0, 1, 2]], device=device)
    assert torch.equal(assemble_instances(maps, windows, 3, 1)[0], maps[0, 0, 1:4, 2:5])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("m", "k"), [(4, 2), (7, 3), (21, 5), (2, 3)])
def test_matches_reference_forward_and_backward(dtype: torch.dtype, m: int, k: int, device: str) -> None:
    maps = random_maps([3, k * k, 12, 10], m + k, dtype)
    windows = random_windows(30, 3, 12, 10, m, m * k)
    weight = random_maps([30, m, m], m - k, dtype)
    native_in, reference_in = maps.to(device).requires_grad_(True), maps.clone().requires_grad_(True)
    out = assemble_instances(native_in, windows.to(device), m, k)
    expected = _reference.assemble_instances(reference_in, windows, m, k)
    torch.testing.assert_close(out.cpu(), expected, rtol=0, atol=0)
    (grad,) = torch.autograd.grad((out * weight.to(device)).sum(), native_in)
    (expected_grad,) = torch.autograd.grad((expected * weight).sum(), reference_in)
    torch.testing.assert_close(grad.cpu(), expected_grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype: torch.dtype, device: str) -> None:
    maps = random_maps([2, 9, 8, 8], 1, dtype)
    windows = random_windows(12, 2, 8, 8, 6, 1)
    native_in = maps.to(device).requires_grad_(True)
    out = assemble_instances(native_in, windows.to(device), 6, 3)
    assert out.dtype == dtype
    torch.testing.assert_close(out.cpu(), _reference.assemble_instances(maps, windows, 6, 3), rtol=0, atol=0)
    weight = random_maps([12, 6, 6], 2, dtype)
    (grad,) = torch.autograd.grad((out * weight.to(device)).sum(), native_in)
    reference_in = maps.float().requires_grad_(True)
    expected = _reference.assemble_instances(reference_in, windows, 6, 3)
    (expected_grad,) = torch.autograd.grad((expected * weight.float()).sum(), reference_in)
    torch.testing.assert_close(grad.float().cpu(), expected_grad, rtol=1e-2, atol=1e-2)


def test_overlapping_windows_accumulate_deterministically(device: str) -> None:
    maps = random_maps([2, 4, 6, 6], 3).to(device).requires_grad_(True)
    windows = torch.tensor([[0, 1, 1]] * 50 + [[1, 0, 0], [0, 2, 2]] * 25, device=device)
    weight = random_maps([100, 4, 4], 4).to(device)
    grads = [torch.autograd.grad((assemble_instances(maps, windows, 4, 2) * weight).sum(), maps)[0] for _ in range(3)]
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])
    ones = torch.autograd.grad(assemble_instances(maps, windows[:50], 4, 2).sum(), maps)[0]
    assert ones[0, 0, 1, 1] == 50 and ones[0, 3, 4, 4] == 50 and ones[0, 1, 1, 1] == 0 and ones[1].sum() == 0


def test_non_contiguous_inputs(device: str) -> None:
    maps = random_maps([2, 9, 8, 7], 5).to(device).transpose(2, 3)
    windows = torch.cat([random_windows(10, 2, 7, 8, 5, 5), torch.zeros(10, 1, dtype=torch.int64)], dim=1)
    windows = windows.to(device)[:, :3]
    assert not maps.is_contiguous() and not windows.is_contiguous()
    torch.testing.assert_close(
        assemble_instances(maps, windows, 5, 3), assemble_instances(maps.contiguous(), windows.contiguous(), 5, 3)
    )


def test_empty_windows(device: str) -> None:
    maps = random_maps([2, 4, 5, 5], 6).to(device).requires_grad_(True)
    out = assemble_instances(maps, torch.zeros(0, 3, dtype=torch.int64, device=device), 3, 2)
    assert out.shape == (0, 3, 3)
    (grad,) = torch.autograd.grad(out.sum(), maps)
    assert torch.equal(grad, torch.zeros_like(maps))


def test_zero_size_map_gives_zero_windows(device: str) -> None:
    maps = torch.zeros(2, 4, 0, 5, requires_grad=True, device=device)
    out = assemble_instances(maps, torch.tensor([[1, 0, 0]], device=device), 3, 2)
    assert torch.equal(out.cpu(), torch.zeros(1, 3, 3))
    assert torch.autograd.grad(out.sum(), maps)[0].shape == (2, 4, 0, 5)


@pytest.mark.parametrize(("m", "k"), [(4, 2), (5, 2), (2, 3)])
def test_gradcheck(m: int, k: int) -> None:
    maps = random_maps([2, k * k, 5, 6], 7, torch.float64).requires_grad_(True)
    windows = torch.tensor([[1, 0, 0], [0, -2, 3], [1, 1, 1], [0, 3, -1], [1, 1, 2], [0, 9, 0]])
    assert torch.autograd.gradcheck(lambda s: assemble_instances(s, windows, m, k), (maps,))
    assert torch.autograd.gradgradcheck(lambda s: assemble_instances(s, windows, m, k), (maps,))


@pytest.mark.parametrize("num_windows", [0, 1, 13])
def test_opcheck(num_windows: int) -> None:
    maps = random_maps([2, 9, 7, 6], num_windows).requires_grad_(True)
    windows = random_windows(num_windows, 2, 7, 6, 4, num_windows)
    assert_opcheck(torch.ops.pysalient.assemble_instances.default, (maps, windows, 4, 3))
    grad_output = random_maps([num_windows, 4, 4], num_windows + 1).requires_grad_(True)
    assert_opcheck(torch.ops.pysalient._assemble_instances_backward.default, (grad_output, windows, 4, 3, 2, 7, 6))


@pytest.mark.parametrize(
    ("maps", "windows", "m", "k", "message"),
    [
        (torch.zeros(4, 5, 5), torch.zeros(1, 3, dtype=torch.int64), 2, 2, "score_maps must be a 4-D tensor"),
        (torch.zeros(1, 4, 5, 5), torch.zeros(1, 3, dtype=torch.int64), 2, 3, r"k\*k = 9 channels for k = 3, got 4"),
        (torch.zeros(1, 4, 5, 5, dtype=torch.int64), torch.zeros(1, 3, dtype=torch.int64), 2, 2, "floating-point"),
        (torch.zeros(1, 4, 5, 5), torch.zeros(1, 3, dtype=torch.int32), 2, 2, "windows must be an int64"),
        (torch.zeros(1, 4, 5, 5), torch.zeros(1, 2, dtype=torch.int64), 2, 2, r"windows must have shape \[R, 3\]"),
        (torch.zeros(1, 4, 5, 5), torch.tensor([[1, 0, 0]]), 2, 2, r"batch indices in \[1, 1\] but the batch has 1"),
        (torch.zeros(1, 4, 5, 5), torch.tensor([[-1, 0, 0]]), 2, 2, r"batch indices in \[-1, -1\]"),
        (torch.zeros(1, 4, 5, 5), torch.zeros(1, 3, dtype=torch.int64), 0, 2, "window size m must be >= 1"),
        (torch.zeros(1, 1, 5, 5), torch.zeros(1, 3, dtype=torch.int64), 2, 0, "sub-windows per side k must be >= 1"),
    ],
)
def test_bad_inputs_raise(maps: torch.Tensor, windows: torch.Tensor, m: int, k: int, message: str, device: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        assemble_instances(maps.to(device), windows.to(device), m, k)


def test_bad_backward_inputs_and_module_arguments_raise(device: str) -> None:
    windows = torch.zeros(2, 3, dtype=torch.int64, device=device)
    with pytest.raises(RuntimeError, match="grad_output has 3 windows but windows has 2"):
        torch.ops.pysalient._assemble_instances_backward(torch.zeros(3, 4, 4, device=device), windows, 4, 2, 1, 5, 5)
    with pytest.raises(RuntimeError, match=r"grad_output must have shape \[R, 4, 4\]"):
        torch.ops.pysalient._assemble_instances_backward(torch.zeros(2, 3, 3, device=device), windows, 4, 2, 1, 5, 5)
    with pytest.raises(ValueError, match="m and k must be >= 1"):
        InstanceAssembler(0, 2)


def test_torchscript_round_trip() -> None:
    maps, windows = random_maps([2, 25, 12, 12], 8), random_windows(9, 2, 12, 12, 7, 8)
    module = InstanceAssembler(7, 5)
    loaded = scripted_round_trip(module)
    torch.testing.assert_close(loaded(maps, windows), module(maps, windows), rtol=0, atol=0)


def test_torch_export_with_dynamic_window_count_and_map_size() -> None:
    maps, windows = random_maps([2, 9, 12, 11], 9), random_windows(9, 2, 12, 11, 6, 9)
    num_windows, height, width = torch.export.Dim("num_windows"), torch.export.Dim("height"), torch.export.Dim("width")
    module = InstanceAssembler(6, 3)
    program = exported_module(module, (maps, windows), dynamic_shapes=({2: height, 3: width}, {0: num_windows}))
    other_maps, other_windows = random_maps([2, 9, 8, 15], 10), random_windows(4, 2, 8, 15, 6, 10)
    torch.testing.assert_close(program(other_maps, other_windows), module(other_maps, other_windows), rtol=0, atol=0)
