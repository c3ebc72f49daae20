"""The ONNX lowerings of the inference ops (``pysalient/ops/_onnx``) against the native kernels, run by ONNX Runtime.

Each op is exported once inside a small module with dynamic sizes, then run on random and edge-case inputs: the
Pillow resize, NMS, RoIAlign, RoIMasking, assembling and the mask steps must give the native results exactly (bit
for bit, or to float rounding where the op computes in floating point).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

pytest.importorskip("onnxscript")
onnxruntime = pytest.importorskip("onnxruntime")

from pysalient.ops._onnx import onnx_translations  # noqa: E402

OPS = torch.ops.pysalient


def dynamic(*names: str) -> Dict[int, Any]:
    return {axis: torch.export.Dim(name, min=2, max=4096) for axis, name in enumerate(names) if name}


def onnx_session(module: nn.Module, example: Sequence[Tensor], shapes: Sequence[Any], tmp_path) -> Any:
    program = torch.export.export(module.eval(), tuple(example), dynamic_shapes=tuple(shapes), strict=False)
    onnx_program = torch.onnx.export(program, dynamo=True, custom_translation_table=onnx_translations())
    path = tmp_path / "op.onnx"
    onnx_program.save(str(path))
    import onnx

    model = onnx.load(str(path))
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(session: Any, *inputs: Tensor) -> List[np.ndarray]:
    names = [entry.name for entry in session.get_inputs()]
    return session.run(None, {name: value.numpy() for name, value in zip(names, inputs)})


def size_carrier(height: int, width: int) -> Tensor:
    """A tensor whose shape carries two sizes into the graph (dynamic sizes are inputs' dimensions)."""
    return torch.zeros(height, width)


class Resize(nn.Module):
    def forward(self, image: Tensor, size: Tensor) -> Tensor:
        return OPS.resize_image(image, size.shape[0], size.shape[1])


def test_resize_image_is_bit_exact(tmp_path) -> None:
    example = (torch.zeros(40, 60, 3, dtype=torch.uint8), size_carrier(20, 30))
    session = onnx_session(Resize(), example, (dynamic("h", "w"), dynamic("oh", "ow")), tmp_path)
    rng = np.random.default_rng(0)
    cases = [tuple(int(v) for v in rng.integers(2, 160, 4)) for _ in range(120)]
    # identity, tall images (vertical pass first), strong shrink, strong growth, 2-pixel sides
    cases += [(50, 50, 50, 50), (300, 40, 60, 38), (400, 30, 20, 29), (7, 9, 150, 120), (2, 2, 5, 3), (99, 2, 2, 2)]
    for height, width, out_h, out_w in cases:
        image = torch.from_numpy(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        (out,) = run(session, image, size_carrier(out_h, out_w))
        expected = OPS.resize_image(image, out_h, out_w).numpy()
        assert np.array_equal(out, expected), (height, width, out_h, out_w)


def test_resize_image_of_a_batch_is_bit_exact(tmp_path) -> None:
    example = (torch.zeros(2, 40, 60, 3, dtype=torch.uint8), size_carrier(20, 30))
    session = onnx_session(Resize(), example, (dynamic("", "h", "w"), dynamic("oh", "ow")), tmp_path)
    rng = np.random.default_rng(1)
    for height, width, out_h, out_w in ((40, 60, 20, 30), (31, 77, 50, 13), (300, 40, 60, 38)):
        images = torch.from_numpy(rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8))
        (out,) = run(session, images, size_carrier(out_h, out_w))
        assert np.array_equal(out, OPS.resize_image(images, out_h, out_w).numpy())


class Suppress(nn.Module):
    def __init__(self, threshold: float, legacy: bool) -> None:
        super().__init__()
        self.threshold, self.legacy = threshold, legacy

    def forward(self, boxes: Tensor, scores: Tensor) -> Tensor:
        return OPS.nms(boxes, scores, self.threshold, self.legacy)


def random_boxes(count: int, generator: torch.Generator, size: float = 100.0) -> Tensor:
    corners = torch.rand(count, 2, generator=generator) * size
    extents = torch.rand(count, 2, generator=generator) * size / 3
    return torch.cat([corners, corners + extents], dim=1)


@pytest.mark.parametrize("legacy", [False, True])
def test_nms_keeps_the_native_indices(legacy: bool, tmp_path) -> None:
    generator = torch.Generator().manual_seed(1)
    count = torch.export.Dim("n", min=0, max=100000)
    example = (random_boxes(10, generator), torch.rand(10, generator=generator))
    session = onnx_session(Suppress(0.5, legacy), example, ({0: count}, {0: count}), tmp_path)
    for trial in range(20):
        boxes = random_boxes(int(torch.randint(2, 300, (1,), generator=generator)), generator)
        scores = torch.rand(boxes.shape[0], generator=generator)
        if trial % 3 == 0:  # ties and exact duplicates
            scores = (scores * 4).round() / 4
            boxes[1::7] = boxes[::7][: boxes[1::7].shape[0]]
        if trial % 5 == 0:  # integer boxes, where the legacy +1 and >= matter
            boxes = boxes.round()
        (kept,) = run(session, boxes, scores)
        assert np.array_equal(kept, OPS.nms(boxes, scores, 0.5, legacy).numpy()), trial
    (kept,) = run(session, torch.zeros(0, 4), torch.zeros(0))
    assert kept.shape == (0,)


class Align(nn.Module):
    def __init__(self, sampling_ratio: int, aligned: bool) -> None:
        super().__init__()
        self.sampling_ratio, self.aligned = sampling_ratio, aligned

    def forward(self, p3: Tensor, p4: Tensor, rois: Tensor) -> List[Tensor]:
        return OPS.multilevel_roi_align([p3, p4], rois, [0.25, 0.125], [7, 5, 3, 4], self.sampling_ratio, self.aligned)


@pytest.mark.parametrize("sampling_ratio, aligned", [(2, False), (0, True), (0, False)])
def test_multilevel_roi_align_matches(sampling_ratio: int, aligned: bool, tmp_path) -> None:
    generator = torch.Generator().manual_seed(2)
    rois_dim = torch.export.Dim("r", min=0, max=100000)
    example = (torch.rand(2, 4, 16, 20), torch.rand(2, 4, 8, 10), torch.rand(3, 5))
    shapes = (
        {2: torch.export.Dim("h3", min=2, max=999), 3: torch.export.Dim("w3", min=2, max=999)},
        {2: torch.export.Dim("h4", min=2, max=999), 3: torch.export.Dim("w4", min=2, max=999)},
        {0: rois_dim},
    )
    session = onnx_session(Align(sampling_ratio, aligned), example, shapes, tmp_path)
    for height, width in ((16, 20), (13, 31), (40, 9)):
        p3 = torch.randn(2, 4, height, width, generator=generator)
        p4 = torch.randn(2, 4, (height + 1) // 2, (width + 1) // 2, generator=generator)
        boxes = random_boxes(40, generator, size=4.0 * max(height, width)) - 10.0  # some off the map
        boxes[::9, 2:] = boxes[::9, :2]  # degenerate
        rois = torch.cat([torch.randint(0, 2, (40, 1), generator=generator).float(), boxes], dim=1)
        outputs = run(session, p3, p4, rois)
        for out, expected in zip(outputs, Align(sampling_ratio, aligned)(p3, p4, rois)):
            np.testing.assert_allclose(out, expected.numpy(), atol=1e-5, rtol=1e-5)


class Masking(nn.Module):
    def __init__(self, mode: int) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, features: Tensor, rois: Tensor) -> Tensor:
        return OPS.roi_masking(features, rois, 0.125, 0.25, self.mode)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_roi_masking_is_exact(mode: int, tmp_path) -> None:
    generator = torch.Generator().manual_seed(3)
    rois_dim = torch.export.Dim("r", min=0, max=100000)
    example = (torch.rand(2, 3, 10, 12), torch.rand(3, 5))
    session = onnx_session(Masking(mode), example, (dynamic("", "", "h", "w"), {0: rois_dim}), tmp_path)
    for height, width in ((10, 12), (7, 23)):
        features = torch.randn(2, 3, height, width, generator=generator)
        boxes = random_boxes(12, generator, size=8.0 * max(height, width)) - 16.0
        boxes[0] = torch.tensor([float("nan"), 3.0, float("inf"), 40.0])
        rois = torch.cat([torch.randint(0, 2, (12, 1), generator=generator).float(), boxes], dim=1)
        (out,) = run(session, features, rois)
        assert np.array_equal(out, Masking(mode)(features, rois).numpy())


class Assemble(nn.Module):
    def forward(self, maps: Tensor, windows: Tensor) -> Tensor:
        return OPS.assemble_instances(maps, windows, 7, 3)


def test_assemble_instances_is_exact(tmp_path) -> None:
    generator = torch.Generator().manual_seed(4)
    rois_dim = torch.export.Dim("r", min=0, max=100000)
    example = (torch.rand(2, 9, 12, 14), torch.zeros(3, 3, dtype=torch.int64))
    session = onnx_session(Assemble(), example, (dynamic("", "", "h", "w"), {0: rois_dim}), tmp_path)
    for height, width in ((12, 14), (5, 30)):
        maps = torch.randn(2, 9, height, width, generator=generator)
        windows = torch.stack(
            [
                torch.randint(0, 2, (30,), generator=generator),
                torch.randint(-9, height + 2, (30,), generator=generator),
                torch.randint(-9, width + 2, (30,), generator=generator),
            ],
            dim=1,
        )
        (out,) = run(session, maps, windows)
        assert np.array_equal(out, Assemble()(maps, windows).numpy())


class PasteAndResize(nn.Module):
    def __init__(self, legacy: bool) -> None:
        super().__init__()
        self.legacy = legacy

    def forward(self, masks: Tensor, boxes: Tensor, size: Tensor) -> List[Tensor]:
        height, width = size.shape[0], size.shape[1]
        pasted = OPS.paste_masks(masks, boxes, height, width, 0.5, self.legacy, 1)
        padded = [masks.shape[1] * 4, masks.shape[2] * 4]
        resized = OPS.resize_masks_in_boxes(masks, boxes, padded, [padded[0] - 3, padded[1] - 5], [height, width], 0.4)
        upsampled = OPS.upsample_masks(masks * 8 - 4, padded, [padded[0] - 3, padded[1] - 5], [height, width], 0.5)
        return [pasted, resized, *upsampled]


@pytest.mark.parametrize("legacy", [False, True])
def test_mask_steps_match(legacy: bool, tmp_path) -> None:
    generator = torch.Generator().manual_seed(5)
    count = torch.export.Dim("r", min=0, max=100000)
    example = (torch.rand(3, 14, 14), random_boxes(3, generator), size_carrier(40, 50))
    session = onnx_session(PasteAndResize(legacy), example, ({0: count}, {0: count}, dynamic("h", "w")), tmp_path)
    for height, width in ((40, 50), (33, 129), (151, 47)):
        masks = torch.rand(20, 14, 14, generator=generator)
        boxes = random_boxes(20, generator, size=float(max(height, width)))
        boxes[3] = boxes[3, [2, 3, 0, 1]]  # corners crossed
        outputs = run(session, masks, boxes, size_carrier(height, width))
        expected = PasteAndResize(legacy)(masks, boxes, size_carrier(height, width))
        for index, (out, reference) in enumerate(zip(outputs, expected)):
            if reference.dtype == torch.uint8:
                assert (out != reference.numpy()).mean() <= 1e-4, index
            else:
                np.testing.assert_allclose(out, reference.numpy(), atol=1e-5, rtol=0)
    outputs = run(session, torch.zeros(0, 14, 14), torch.zeros(0, 4), size_carrier(9, 11))
    assert [out.shape[0] for out in outputs] == [0] * 5


class Pooling(nn.Module):
    def forward(self, features: Tensor) -> List[Tensor]:
        pooled = [F.adaptive_avg_pool2d(features, size) for size in (1, 2, 3, 6)]
        shrunk = F.interpolate(features, scale_factor=0.3, mode="bilinear", align_corners=False, antialias=True)
        return [*pooled, shrunk]


def test_adaptive_pooling_and_antialiased_resize_on_dynamic_sizes(tmp_path) -> None:
    generator = torch.Generator().manual_seed(6)
    sides = {2: torch.export.Dim("h", min=7, max=4096), 3: torch.export.Dim("w", min=7, max=4096)}  # 0.3 x side >= 2
    session = onnx_session(Pooling(), (torch.rand(1, 2, 20, 24),), (sides,), tmp_path)
    for height, width in ((20, 24), (7, 13), (61, 10), (9, 1000)):
        features = torch.randn(1, 2, height, width, generator=generator)
        for out, expected in zip(run(session, features), Pooling()(features)):
            np.testing.assert_allclose(out, expected.numpy(), atol=1e-5, rtol=0)


def test_every_inference_op_has_a_lowering() -> None:
    """Every schema of ``csrc/ops/registration.cpp`` except backward kernels and training-only ops is lowered."""
    registration = (Path(__file__).resolve().parents[2] / "csrc" / "ops" / "registration.cpp").read_text()
    schemas = set(re.findall(r'"([a-z][a-z_0-9]*)\(', registration))
    training_only = {"dice_cost", "linear_sum_assignment"}
    lowered = {
        overload.name().split("::")[1].split(".")[0]
        for overload in onnx_translations()
        if overload.name().startswith("pysalient::")
    }
    assert schemas - training_only == lowered
