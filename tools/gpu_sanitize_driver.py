"""Calls every CUDA kernel of pysalient once or twice on small inputs, for compute-sanitizer (``make gpu-check``).

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python tools/gpu_sanitize_driver.py
    compute-sanitizer --tool racecheck python tools/gpu_sanitize_driver.py

Sizes are small (the tools slow kernels down by orders of magnitude) but deliberately awkward: not multiples of the
block sizes, RoIs and windows hanging off the maps, empty inputs, every dtype a kernel dispatches on, more feature
levels than one launch takes, NMS across several 64-box words. With the caching allocator disabled every tensor is
its own allocation, so memcheck sees reads and writes past the end of a tensor instead of inside a cached block.
Exits non-zero when an op raises or no CUDA kernels are available; the sanitizer's own exit code reports hazards.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from pysalient import ops

native = torch.ops.pysalient
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DEVICE = "cuda"  # --device cpu runs the same calls on the CPU kernels (checks the driver itself)


def normal(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype).to(DEVICE)


def rois(count: int, batch: int, height: float, width: float, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    size = torch.tensor([width, height], dtype=torch.float64)
    corner = (torch.rand(count, 2, generator=generator, dtype=torch.float64) * 1.6 - 0.3) * size
    extent = torch.rand(count, 2, generator=generator, dtype=torch.float64) * 0.7 * size
    extent[::5] *= -0.3  # inverted boxes
    index = torch.randint(0, batch, (count, 1), generator=generator).double()
    return torch.cat([index, corner, corner + extent], dim=1).to(dtype).to(DEVICE)


def roi_masking_calls() -> List[Tuple[str, Callable[[], object]]]:
    calls = []
    for dtype in FLOATS:
        features, regions = normal(2, 3, 13, 17, dtype=dtype), rois(11, 2, 52.0, 68.0, dtype)
        grad = normal(11, 3, 13, 17, dtype=dtype, seed=1)
        for mode in (0, 1, 2):
            calls.append(
                (
                    f"roi_masking {dtype} mode {mode}",
                    lambda f=features, r=regions, m=mode: native.roi_masking(f, r, 0.25, 1 / 3, m),
                )
            )
            calls.append(
                (
                    f"_roi_masking_backward {dtype} mode {mode}",
                    lambda g=grad, r=regions, m=mode: native._roi_masking_backward(g, r, 0.25, 1 / 3, m, 2),
                )
            )
    calls.append(
        (
            "roi_masking empty",
            lambda: native.roi_masking(normal(2, 3, 5, 6), rois(0, 2, 5.0, 6.0, torch.float32), 1.0, 0.5, 2),
        )
    )
    return calls


def assemble_calls() -> List[Tuple[str, Callable[[], object]]]:
    calls = []
    generator = torch.Generator().manual_seed(2)
    for m, k in ((7, 3), (2, 3), (5, 2)):
        windows = torch.stack(
            [
                torch.randint(0, 2, (23,), generator=generator),
                torch.randint(-m - 1, 13, (23,), generator=generator),
                torch.randint(-m - 1, 11, (23,), generator=generator),
            ],
            dim=1,
        ).to(DEVICE)
        for dtype in FLOATS:
            maps, grad = normal(2, k * k, 11, 9, dtype=dtype), normal(23, m, m, dtype=dtype, seed=3)
            calls.append(
                (
                    f"assemble_instances {dtype} m={m} k={k}",
                    lambda s=maps, w=windows, m=m, k=k: native.assemble_instances(s, w, m, k),
                )
            )
            calls.append(
                (
                    f"_assemble_instances_backward {dtype} m={m} k={k}",
                    lambda g=grad, w=windows, m=m, k=k: native._assemble_instances_backward(g, w, m, k, 2, 11, 9),
                )
            )
    return calls


def roi_align_calls() -> List[Tuple[str, Callable[[], object]]]:
    calls = []
    scales, sizes = [1 / 4, 1 / 8, 1 / 16], [7, 5, 3, 3, 2, 1]
    for dtype in FLOATS:
        levels = [normal(2, c, 33 // s, 41 // s, dtype=dtype, seed=s) for c, s in ((5, 1), (3, 2), (2, 4))]
        regions = rois(13, 2, 132.0, 164.0, dtype, seed=4)
        grads = [normal(13, f.shape[1], h, w, dtype=dtype, seed=5) for f, h, w in zip(levels, (7, 3, 2), (5, 3, 1))]
        heights, widths = [f.shape[2] for f in levels], [f.shape[3] for f in levels]
        for ratio, aligned in ((-1, True), (2, False)):
            calls.append(
                (
                    f"multilevel_roi_align {dtype} {ratio} {aligned}",
                    lambda f=levels, r=regions, s=ratio, a=aligned: native.multilevel_roi_align(
                        f, r, scales, sizes, s, a
                    ),
                )
            )
            calls.append(
                (
                    f"_multilevel_roi_align_backward {dtype} {ratio} {aligned}",
                    lambda g=grads, r=regions, s=ratio, a=aligned, h=heights, w=widths: (
                        native._multilevel_roi_align_backward(g, r, scales, sizes, s, a, 2, h, w)
                    ),
                )
            )
    many = [normal(1, 2, 3 + level, 4, seed=level) for level in range(10)]
    many[2] = torch.zeros(1, 0, 4, 4, device=DEVICE)
    calls.append(
        (
            "multilevel_roi_align 10 levels",
            lambda: native.multilevel_roi_align(
                many, rois(3, 1, 6.0, 4.0, torch.float32), [1.0] * 10, [2] * 10, 2, True
            ),
        )
    )
    return calls


def other_calls() -> List[Tuple[str, Callable[[], object]]]:
    calls = []
    generator = torch.Generator().manual_seed(6)
    for dtype in FLOATS:
        boxes = rois(130, 1, 60.0, 60.0, dtype, seed=7)[:, 1:].contiguous()
        scores = torch.rand(130, generator=generator).to(dtype).to(DEVICE)
        calls.append((f"nms {dtype}", lambda b=boxes, s=scores: native.nms(b, s, 0.5)))
        masks = torch.rand(9, 7, 5, generator=generator).to(dtype).to(DEVICE)
        calls.append((f"paste_masks {dtype}", lambda m=masks, b=boxes[:9]: native.paste_masks(m, b, 37, 43, 0.5)))
        logits = normal(5, 9, 7, dtype=dtype, seed=8) * 4
        calls.append(
            (f"upsample_masks {dtype}", lambda x=logits: native.upsample_masks(x, [36, 28], [33, 27], [41, 29], 0.45))
        )
        probabilities = torch.rand(5, 9, 7, generator=generator).to(dtype).to(DEVICE)
        calls.append(
            (
                f"resize_masks_in_boxes {dtype}",
                lambda p=probabilities, b=boxes[:5]: native.resize_masks_in_boxes(
                    p, b, [72, 56], [70, 51], [41, 29], 0.5
                ),
            )
        )
        calls.append(
            (
                f"dice_cost {dtype}",
                lambda d=dtype: native.dice_cost(normal(6, 77, dtype=d), torch.rand(4, 77, device=DEVICE) > 0.5),
            )
        )
    calls.append(
        ("nms empty", lambda: native.nms(torch.zeros(0, 4, device=DEVICE), torch.zeros(0, device=DEVICE), 0.5))
    )
    calls.append(
        (
            "paste_masks empty",
            lambda: native.paste_masks(
                torch.zeros(0, 3, 3, device=DEVICE), torch.zeros(0, 4, device=DEVICE), 5, 5, 0.5
            ),
        )
    )
    calls.append(
        (
            "upsample_masks empty",
            lambda: native.upsample_masks(torch.zeros(0, 4, 4, device=DEVICE), [8, 8], [8, 8], [8, 8], 0.45),
        )
    )
    calls.append(
        (
            "resize_masks_in_boxes empty",
            lambda: native.resize_masks_in_boxes(
                torch.zeros(0, 4, 4, device=DEVICE), torch.zeros(0, 4, device=DEVICE), [8, 8], [8, 8], [8, 8], 0.5
            ),
        )
    )
    for shape, size in (
        ((37, 29, 3), (23, 51)),
        ((2, 45, 70, 3), (31, 99)),
        ((120, 60, 1), (40, 50)),
        ((9, 9, 3), (9, 9)),
    ):
        image = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator).to(DEVICE)
        calls.append((f"resize_image {shape} -> {size}", lambda i=image, s=size: native.resize_image(i, *s)))
    for n, k in ((7, 11), (11, 7)):
        calls.append(
            (f"linear_sum_assignment {n}x{k}", lambda n=n, k=k: native.linear_sum_assignment(normal(n, k), False))
        )
    calls.append(("dice_cost no pixels", lambda: native.dice_cost(normal(3, 0), torch.zeros(2, 0, device=DEVICE))))
    return calls


def main(argv: Optional[Sequence[str]] = None) -> int:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="device to run the kernels on (default: cuda)")
    DEVICE = parser.parse_args(argv).device
    on_cuda = torch.device(DEVICE).type == "cuda"
    if on_cuda and not torch.cuda.is_available():
        print("gpu_sanitize_driver: CUDA is not available", file=sys.stderr)
        return 2
    if on_cuda and (
        not ops.has_native() or not torch._C._dispatch_has_kernel_for_dispatch_key("pysalient::nms", "CUDA")
    ):
        print("gpu_sanitize_driver: the loaded pysalient op library has no CUDA kernels", file=sys.stderr)
        return 2
    calls = roi_masking_calls() + assemble_calls() + roi_align_calls() + other_calls()
    for name, call in calls:
        call()
        if on_cuda:
            torch.cuda.synchronize()  # attribute an asynchronous fault to the call that caused it
        print(f"ok  {name}", flush=True)
    print(f"gpu_sanitize_driver: {len(calls)} calls on {DEVICE}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
