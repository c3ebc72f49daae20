"""Autocast kernels of every op (AMP training): mixed dtypes under torch.autocast run, with the documented output
dtypes and values close to float32; roi_align is a torch.fx leaf."""

from __future__ import annotations

from typing import Any, Callable, Tuple

import pytest
import torch
from torch import Tensor, nn

from pysalient import ops
from pysalient.ops._autocast import AUTOCAST_OPS

BF16 = torch.bfloat16


def rois(count: int, seed: int, size: float = 30.0, batch: int = 2) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, generator=generator) * size * 0.6
    extents = torch.rand(count, 2, generator=generator) * size * 0.4 + 1.0
    index = torch.randint(0, batch, (count, 1), generator=generator).float()
    return torch.cat([index, corners, corners + extents], dim=1)


def features(*shape: int, seed: int = 0) -> Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(AUTOCAST_OPS))
@pytest.mark.parametrize("key", ["AutocastCPU", "AutocastCUDA"])
def test_every_op_has_autocast_kernels(name: str, key: str) -> None:
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"pysalient::{name}", key)


def test_every_schema_is_covered() -> None:
    schemas = {op.split("::")[1] for op in torch._C._dispatch_get_all_op_names() if op.startswith("pysalient::")}
    assert schemas == set(AUTOCAST_OPS)


# Each case: (function of the inputs, inputs with mixed dtypes, dtype of the floating outputs under autocast).
def cases() -> dict:
    rois_fp32 = rois(6, 1)
    windows = torch.tensor([[0, 0, 0], [1, 2, 3], [0, -2, 5]], dtype=torch.int64)
    boxes = rois(20, 2)[:, 1:]
    return {
        "roi_align": (
            lambda f, r: ops.roi_align(f, r, 7, 0.5, 2, True),
            (features(2, 3, 16, 16).to(BF16), rois_fp32),
            BF16,
        ),
        "multilevel_roi_align": (
            lambda f0, f1, r: ops.multilevel_roi_align([f0, f1], r, [0.5, 0.25], [4, 2]),
            (features(2, 3, 16, 16).to(BF16), features(2, 3, 8, 8, seed=1).to(BF16), rois_fp32),
            BF16,
        ),
        "roi_masking": (
            lambda f, r: ops.roi_masking(f, r, 0.5),
            (features(2, 3, 16, 16).to(BF16), rois_fp32),
            BF16,
        ),
        "assemble_instances": (
            lambda s, w: ops.assemble_instances(s, w, 6, 3),
            (features(2, 9, 12, 12).to(BF16), windows),
            BF16,
        ),
        "nms": (
            lambda b, s: ops.nms(b, s, 0.5),
            (boxes.to(BF16).float(), features(20, seed=3).to(BF16)),
            None,
        ),
        "batched_nms": (
            lambda b, s: ops.batched_nms(b, s, torch.arange(20) % 2, 0.5, legacy=True),
            (boxes, features(20, seed=3).to(BF16)),
            None,
        ),
        "paste_masks": (
            lambda m, b: ops.paste_masks(m, b, 30, 30, 0.5),
            (features(20, 14, 14, seed=4).to(BF16), boxes),
            None,
        ),
        "paste_masks_legacy": (
            lambda m, b: ops.paste_masks(m, b, 30, 30, 0.5, legacy=True),
            (features(20, 14, 14, seed=4).to(BF16), boxes),
            None,
        ),
        "upsample_masks": (
            lambda m: ops.upsample_masks(m, [32, 32], [30, 28], [45, 42], 0.45),
            ((features(3, 8, 8, seed=5) * 8 - 4).to(BF16),),
            torch.float32,
        ),
        "resize_masks_in_boxes": (
            lambda p, b: ops.resize_masks_in_boxes(p, b, [32, 32], [30, 28], [45, 42], 0.5),
            (features(20, 8, 8, seed=10).to(BF16), boxes * 1.5),
            None,
        ),
        "dice_cost": (
            lambda p, t: ops.dice_cost(p, t),
            ((features(5, 40, seed=6) * 4 - 2).to(BF16), (features(4, 40, seed=7) > 0.5).float()),
            torch.float32,
        ),
        "linear_sum_assignment": (
            lambda c: ops.linear_sum_assignment(c),
            (features(5, 4, seed=8).to(BF16),),
            None,
        ),
        "resize_image": (
            lambda image: ops.resize_image(image, 10, 12),
            ((features(16, 20, 3, seed=9) * 255).to(torch.uint8),),
            None,
        ),
    }


def as_tuple(value: Any) -> Tuple[Any, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


@pytest.mark.parametrize("case", sorted(cases()))
def test_mixed_dtypes_under_cpu_autocast(case: str) -> None:
    function, inputs, floating_dtype = cases()[case]
    function: Callable[..., Any]
    with torch.autocast("cpu", dtype=BF16):
        outputs = as_tuple(function(*inputs))
    # The float32 result on the same (bfloat16-rounded) values.
    expected = as_tuple(function(*(x.float() if x.is_floating_point() else x for x in inputs)))
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        if want.is_floating_point():
            assert got.dtype == floating_dtype
            torch.testing.assert_close(got.float(), want, atol=1e-2, rtol=1e-2)
        else:
            assert got.dtype == want.dtype and torch.equal(got, want)


def test_float64_inputs_stay_float64_under_autocast() -> None:
    feature_map, boxes = features(2, 3, 16, 16).double(), rois(6, 1)
    with torch.autocast("cpu", dtype=BF16):
        pooled = ops.roi_align(feature_map, boxes, 7, 0.5, 2, True)
    assert pooled.dtype == torch.float64
    torch.testing.assert_close(pooled, ops.roi_align(feature_map, boxes.double(), 7, 0.5, 2, True))


def test_roi_align_trains_under_autocast() -> None:
    feature_map = features(2, 3, 16, 16).to(BF16).requires_grad_()
    with torch.autocast("cpu", dtype=BF16):
        pooled = ops.roi_align(feature_map, rois(6, 1), 7, 0.5, 2, True)
        loss = (pooled.float() ** 2).sum()
    loss.backward()
    assert feature_map.grad is not None and feature_map.grad.dtype == BF16
    reference = feature_map.detach().float().requires_grad_()
    (ops.roi_align(reference, rois(6, 1), 7, 0.5, 2, True) ** 2).sum().backward()
    torch.testing.assert_close(feature_map.grad.float(), reference.grad, atol=2e-2, rtol=2e-2)


def test_autocast_on_cuda(cuda: str) -> None:
    feature_map, boxes = features(2, 3, 16, 16).to(cuda, torch.float16), rois(6, 1).to(cuda)
    with torch.autocast("cuda", dtype=torch.float16):
        pooled = ops.roi_align(feature_map, boxes, 7, 0.5, 2, True)
        keep = ops.nms(boxes[:, 1:], features(6).to(cuda, torch.float16), 0.5)
    assert pooled.dtype == torch.float16 and keep.dtype == torch.int64
    expected = ops.roi_align(feature_map.float(), boxes, 7, 0.5, 2, True)
    torch.testing.assert_close(pooled.float(), expected, atol=1e-2, rtol=1e-2)


class PoolWithFunction(nn.Module):
    def forward(self, feature_map: Tensor, boxes: Tensor) -> Tensor:
        return ops.roi_align(feature_map, boxes, 7, 0.5, 2, True) * 2


def test_roi_align_is_a_torch_fx_leaf() -> None:
    for module in (PoolWithFunction(), ops.RoIAlign(7, 0.5, 2, True)):
        graph = torch.fx.symbolic_trace(module)
        targets = [node.target for node in graph.graph.nodes if node.op == "call_function"]
        assert ops.roi_align in targets, targets
        feature_map, boxes = features(2, 3, 16, 16), rois(6, 1)
        torch.testing.assert_close(graph(feature_map, boxes), module(feature_map, boxes))
