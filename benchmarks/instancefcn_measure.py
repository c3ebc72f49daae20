"""InstanceFCN: latency of eager / TorchScript / AOTInductor at one scale and at all scales, and where the time and
memory go (dilated backbone + branches vs assembling + tight boxes + NMS + pasting).

For each model (default: the light default entry with its shipped weights, and ``instancefcn_vgg16`` with seeded
random weights; latency depends on the values only through the number of windows kept) and each scale set
(``one``: the reference scale only; ``all``: the config's ``test_scales``), one 480x640 BGR image is predicted
(pre- and post-processing included), median of ``--repeats`` runs after warm-up, in one process. The breakdown runs
the detector's stages directly on the preprocessed image: the network over every scale, then the candidate stage
(assembling, binarising, tight boxes) and the final stage (NMS, pasting); memory is the float32 output the assembling op
writes (non-empty windows) and the outputs the convolutions write over all scales.

    python benchmarks/instancefcn_measure.py --models instancefcn_r18_light instancefcn_vgg16 --threads 1 2

Appends a dated table to ``benchmarks/RESULTS.md`` unless ``--no-write``. AOTInductor compiles for minutes.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

import pysalient
from pysalient.engine.model import SalientModel
from pysalient.inputs import Preprocessor
from pysalient.models.instancefcn.detector import resize_batch

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


def median_ms(function: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``function`` in milliseconds."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def with_scales(model: SalientModel, which: str) -> SalientModel:
    """The model with the reference scale only (``one``) or its configured scales (``all``)."""
    scales = (1.0,) if which == "one" else model.config.test_scales
    config = model.config.replace(test_scales=tuple(scales))
    return SalientModel(model.network, model.family, config, list(model.names.values()), f"{model.name}_{which}")


def breakdown(model: SalientModel, image: np.ndarray, repeats: int) -> Dict[str, float]:
    """Milliseconds of the network (all scales), the candidate stage and the rest; MB allocated by assembling and
    by the convolutions (one run)."""
    detector = model.family.build_detector(model.network, model.config, model.config.inference_spec())
    pixels, resized = Preprocessor(model.config.input_spec())(torch.from_numpy(image))
    images, sizes, outputs = pixels[None], [resized], [list(image.shape[:2])]
    conf = torch.tensor(model.config.score_threshold)
    with torch.no_grad():
        network = median_ms(
            lambda: [model.network(resize_batch(images, f, detector.stride)) for f in detector.scales], repeats
        )
        candidates = median_ms(lambda: [detector.scale_candidates(images, sizes, f) for f in detector.scales], repeats)
        total = median_ms(lambda: detector(images, sizes, outputs, conf), repeats)
        written = {"conv": 0.0}

        def count_output(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            written["conv"] += output.numel() * output.element_size() / 2**20

        hooks = [
            m.register_forward_hook(count_output) for m in model.network.modules() if isinstance(m, torch.nn.Conv2d)
        ]
        windows = [c[0][3].shape[0] for c in (detector.scale_candidates(images, sizes, f) for f in detector.scales)]
        for hook in hooks:
            hook.remove()
    # assemble_instances writes R x m x m float32 per scale (R: the windows kept by the per-scale top-k; the
    # candidates above are the non-empty ones, a lower bound when windows are dropped as empty).
    memory = {"assemble": sum(windows) * detector.m**2 * 4 / 2**20, "conv": written["conv"]}
    return {
        "network": network,
        "assembling": candidates - network,
        "nms_paste": total - candidates,
        "assemble_mb": memory["assemble"],
        "conv_mb": memory["conv"],
    }


def measure_row(model: SalientModel, loaded: Sequence[Any], image: np.ndarray, threads: int, repeats: int) -> List[str]:
    """The table cells of one model / scale set / thread count."""
    cells = [model.name.rsplit("_", 1)[0], f"{model.name.rsplit('_', 1)[1]} ({len(model.config.test_scales)})"]
    cells += [str(model.config.min_size_test), str(threads), f"{median_ms(lambda: model.predict(image), repeats):.0f}"]
    for exported in loaded:
        cells.append(f"{median_ms(lambda exported=exported: exported.predict(image), repeats):.0f}")
    parts = breakdown(model, image, repeats)
    cells += [f"{parts[key]:.0f}" for key in ("network", "assembling", "nms_paste")]
    return cells + [f"{parts[key]:.1f}" for key in ("assemble_mb", "conv_mb")]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["instancefcn_r18_light", "instancefcn_vgg16"])
    parser.add_argument("--scales", nargs="+", default=["one", "all"], choices=["one", "all"])
    parser.add_argument("--formats", nargs="+", default=["torchscript", "aoti"], choices=["torchscript", "aoti"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", nargs="+", type=int, default=[torch.get_num_threads()])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    header = ["model", "scales", "imgsz", "threads", "eager ms"] + [f"{f} ms" for f in args.formats]
    header += ["network ms", "assembling ms", "NMS + paste ms", "assembled MB", "conv outputs MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # entries without trained weights warn; latency does not care
                torch.manual_seed(0)
                base = pysalient.load(name, device="cpu")
            for which in args.scales:
                model = with_scales(base, which)
                imgsz = model.config.min_size_test
                loaded: List[Any] = []
                for format in args.formats:
                    path = Path(scratch) / f"{model.name}.{'ts' if format == 'torchscript' else 'pt2'}"
                    model.export(format, path, imgsz=imgsz)
                    loaded.append(pysalient.load(str(path), device="cpu"))
                for count in args.threads:
                    torch.set_num_threads(count)
                    row = "| " + " | ".join(measure_row(model, loaded, image, count, args.repeats)) + " |"
                    print(row, flush=True)
                    lines.append(row)
    if not args.no_write:
        from bench_ops import machine_description  # same folder: the machine line of every results table

        heading = f"\n## {datetime.date.today().isoformat()} — instancefcn_measure.py — {machine_description('cpu')}\n"
        note = "One 480x640 BGR image per call at the entry's reference size, conf 0.3; median of repeated runs."
        with RESULTS_PATH.open("a") as handle:
            handle.write("\n".join([heading, note, ""] + lines) + "\n")
        print(f"appended to {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
