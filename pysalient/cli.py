"""Command-line interface: ``pysalient predict|train|eval|models|env|data synth|export``.

Each sub-command is one small function that parses nothing itself and calls the Python API. Expected failures
(bad paths, bad values, torch's errors: ``ValueError``/``OSError``/``ImportError``/``RuntimeError``, e.g. a device
that is not there) print ``pysalient <command>: error: ...`` on stderr and exit with 1, without a traceback unless
``--verbose``; argument errors (``--conf nan``) exit with 2 (argparse).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

EXPORT_FORMATS = ("torchscript", "aoti", "onnx")
DEFAULT_CONF = 0.3  # pysalient.models.family.DEFAULT_CONF, repeated so that --help imports no torch
EVALUATION_CONF = 0.0  # pysalient.models.family.EVALUATION_CONF


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``pysalient`` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        if not args.verbose:
            warnings.showwarning = _show_warning  # one readable line instead of a source excerpt
        try:
            return args.handler(args)
        except KeyboardInterrupt:
            print(f"pysalient {args.command_name}: interrupted", file=sys.stderr)
            return 130
        except (ValueError, OSError, ImportError, RuntimeError) as error:  # RuntimeError: torch's (bad device, ...)
            if args.verbose:
                traceback.print_exc()
            print(f"pysalient {args.command_name}: error: {error}", file=sys.stderr)
            return 1


def build_parser() -> argparse.ArgumentParser:
    """The ``pysalient`` argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="pysalient", description="Salient instance segmentation toolkit.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and library output")
    # Sub-commands accept --verbose too; SUPPRESS keeps them from resetting the top-level value when absent.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Any, help_text: str, subparsers: Any = commands) -> argparse.ArgumentParser:
        command = subparsers.add_parser(name, parents=[common], help=help_text, description=help_text)
        full_name = name if subparsers is commands else f"data {name}"
        command.set_defaults(handler=handler, command_name=full_name)
        return command

    predict = add(
        "predict", _command_predict, "segment the salient instances of images or videos; save overlays and json"
    )
    predict.add_argument(
        "source",
        help="an image or video file, a directory, a glob pattern, an http(s) URL or a camera index (0: first webcam)",
    )
    _add_model_arguments(predict)
    predict.add_argument(
        "--conf", type=_score, help=f"minimum score of a returned instance, in [0, 1] (model default, {DEFAULT_CONF})"
    )
    predict.add_argument("--imgsz", type=_positive_int, help="shortest side at inference (model default if unset)")
    predict.add_argument("--batch", type=_positive_int, default=1, help="images per forward pass (default 1)")
    predict.add_argument("--max-det", type=_positive_int, help="at most this many instances per image")
    predict.add_argument("--save-dir", type=Path, help="output folder (default runs/predict/exp, auto-numbered)")
    predict.add_argument(
        "--no-save", action="store_true", help="write no overlays or annotated videos (predictions.json still is)"
    )
    predict.add_argument("--save-masks", action="store_true", help="write each instance mask as masks/<stem>_<i>.png")
    predict.add_argument(
        "--save-txt",
        action="store_true",
        help="write labels/<stem>.txt: 'class x1 y1 x2 y2 score' per instance, in [0, 1]",
    )

    train = add("train", _command_train, "train a model from a YAML config and key=value overrides")
    train.formatter_class = _TrainHelpFormatter  # the settings list is built only when --help is asked for
    train.add_argument("--config", help="YAML file of training settings")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings overriding the config file")

    evaluate = add("eval", _command_eval, "COCO mask and box AP and AR of a model on a COCO-json dataset")
    _add_model_arguments(evaluate)
    evaluate.add_argument("--data", required=True, help="COCO instances json of the ground truth")
    evaluate.add_argument("--image-root", help="folder of the images (found next to the json if unset)")
    evaluate.add_argument("--imgsz", type=_positive_int, help="shortest side at inference (model default if unset)")
    evaluate.add_argument(
        "--conf", type=_score, help=f"minimum score of an evaluated instance (default {EVALUATION_CONF}: all)"
    )
    evaluate.add_argument("--batch", type=_positive_int, default=4, help="images per forward pass (default 4)")
    evaluate.add_argument("--class-agnostic", action="store_true", default=None, help="ignore categories")
    evaluate.add_argument(
        "--max-dets",
        type=_positive_int,
        nargs="+",
        default=[1, 10, 100],
        metavar="N",
        help="detections per image of the average recalls AR@N (default 1 10 100; proposals: 10 100 1000)",
    )
    evaluate.add_argument("--save-dir", type=Path, help="output folder (default runs/eval/exp, auto-numbered)")

    add("models", _command_models, "list the registered models and whether they have weights")
    add("env", _command_env, "print versions of python, torch, pysalient and the op library")

    data = commands.add_parser("data", help="dataset tools", description="Dataset tools.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    synth = add("synth", _command_data_synth, "generate a SynthSIS dataset (images + COCO json)", data_commands)
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    for split in ("train", "val", "test"):
        synth.add_argument(f"--{split}", type=_non_negative_int, default=0, help=f"images in the {split} split")
    synth.add_argument("--size", type=_image_size, default=320, help="image size: S (square) or HxW (default 320)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")

    export = add("export", _command_export, "export a model for deployment (TorchScript, AOTInductor or ONNX)")
    _add_model_arguments(export)
    export.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="export format")
    export.add_argument("--output", type=Path, required=True, help="file to write (.ts, .pt2 or .onnx)")
    export.add_argument("--imgsz", type=_positive_int, help="shortest side inside the graph (model default if unset)")
    export.add_argument("--half", action="store_true", help="export in float16 (for GPUs)")
    export.add_argument("--conf", type=_score, help="default minimum score of the graph (model default if unset)")
    export.add_argument("--max-det", type=_positive_int, help="detection cap inside the graph (model default if unset)")
    return parser


def _command_predict(args: argparse.Namespace) -> int:
    import time

    from pysalient.engine.saving import describe_outputs
    from pysalient.utils.image_io import resolve_sources

    resolve_sources(args.source)  # a missing source fails here, before a model is loaded or a folder created
    model = _load_model(args)
    results = model.predict(
        args.source,
        conf=args.conf,
        imgsz=args.imgsz,
        batch=args.batch,
        max_det=args.max_det,
        stream=True,
        save=not args.no_save,
        save_masks=args.save_masks,
        save_txt=args.save_txt,
        save_json=True,
        save_dir=args.save_dir,
        verbose=True,
    )
    start = time.perf_counter()
    images = instances = 0
    save_dir = args.save_dir
    for result in results:  # predict prints one line per image
        images += 1
        instances += len(result)
        save_dir = result.save_dir
    mean_ms = (time.perf_counter() - start) * 1000.0 / max(images, 1)
    outputs = describe_outputs(save_dir, not args.no_save, args.save_masks, args.save_txt, json=True)
    print(f"{images} image(s), {instances} instance(s), {mean_ms:.1f}ms per image: {outputs}")
    return 0


def _command_train(args: argparse.Namespace) -> int:
    from pysalient.engine.trainer import main_train

    run_dir = main_train(args.config, list(args.overrides))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one line from the main process only
        print(f"training run saved in {run_dir}")
    return 0


def _command_eval(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from pysalient.engine.evaluator import format_metrics, write_json_atomic
    from pysalient.engine.run_files import new_run_dir

    # Checked before a model is loaded or a folder created.
    if Path(args.data).suffix.lower() != ".json":
        raise ValueError(f"--data needs a COCO instances json (a .json file), got {args.data}")
    if not Path(args.data).is_file():
        raise FileNotFoundError(f"COCO json not found: {args.data}")
    model = _load_model(args)
    # The detections go to a scratch file first: the run folder is only created for a finished evaluation.
    with tempfile.TemporaryDirectory(prefix="pysalient-eval-") as scratch:
        metrics = model.evaluate(
            args.data,
            image_root=args.image_root,
            imgsz=args.imgsz,
            batch=args.batch,
            conf=args.conf,
            save_json=Path(scratch) / "predictions.json",
            class_agnostic=args.class_agnostic,
            verbose=args.verbose,
            max_dets=args.max_dets,
        )
        save_dir = args.save_dir or new_run_dir(Path("runs") / "eval", "exp")
        save_dir.mkdir(parents=True, exist_ok=True)
        predictions = Path(shutil.move(str(Path(scratch) / "predictions.json"), str(save_dir / "predictions.json")))
    # Strict JSON has no NaN: metrics without ground truth (e.g. APl on a set of small objects) become null.
    report = {
        "model": model.name,
        "weights": args.weights,
        "data": str(args.data),
        "imgsz": args.imgsz or model.test_size,
        "metrics": {name: None if math.isnan(value) else value for name, value in metrics.items()},
    }
    output = write_json_atomic(save_dir / "metrics.json", report)
    print(format_metrics(metrics))
    print(f"metrics in {output}, detections in {predictions}")
    return 0


def _command_models(_: argparse.Namespace) -> int:
    from pysalient.models import get_model_entry, list_models

    rows = [("name", "family", "default", "weights", "trained on / fit for", "description")]
    published = []
    for name in list_models():
        entry = get_model_entry(name)
        try:
            default = "yes" if get_model_entry(entry.family).name == name else ""
        except ValueError:  # a family without a default entry
            default = ""
        rows.append((name, entry.family, default, _weights_status(entry.weights), _fitness(entry), entry.description))
        if entry.published is not None:
            published.append((name, entry.published))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5])
    if published:
        print("\nPublished weights (not shipped; download them yourself, they convert on load):")
        for name, weights in published:
            print(f"  {name}: {weights.file_name} - {weights.trained_on}; {weights.license}; from {weights.source}")
            print(f"    pysalient.load({name!r}, weights={weights.file_name!r})")
    return 0


def _fitness(entry: Any) -> str:
    """What an entry's packaged weights were trained on and are fit for, or where its published weights are."""
    if entry.weights is not None:
        trained_on = entry.weights.trained_on.split(" (")[0] or "unknown data"
        return f"{trained_on}: {entry.weights.fit_for}" if entry.weights.fit_for else trained_on
    if entry.published is not None:
        return f"published: {entry.published.file_name} ({entry.published.trained_on.split(',')[0]})"
    return "no weights here: train it or bring a checkpoint"


def _command_env(_: argparse.Namespace) -> int:
    report = environment_report()
    width = max(len(key) for key in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _command_data_synth(args: argparse.Namespace) -> int:
    if args.train + args.val + args.test == 0:
        raise ValueError("nothing to generate: ask for images with --train, --val and/or --test")
    from pysalient.data import synthesize

    paths = synthesize(args.out, train=args.train, val=args.val, test=args.test, size=args.size, seed=args.seed)
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def _command_export(args: argparse.Namespace) -> int:
    model = _load_model(args)
    options = {key: value for key, value in (("conf", args.conf), ("max_det", args.max_det)) if value is not None}
    path = model.export(args.format, args.output, imgsz=args.imgsz, half=args.half, **options)
    print(f"exported {model.name} ({args.format}) to {path}")
    return 0


def environment_report() -> Dict[str, str]:
    """Versions and capabilities of this installation, as printed by ``pysalient env``."""
    import torch

    import pysalient
    from pysalient import ops

    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch CUDA": str(torch.version.cuda),
        "CUDA available": str(torch.cuda.is_available()),
        "pysalient": pysalient.__version__,
        "native ops": ops.native_library_path() or f"not loaded ({ops.native_load_error()})",
        "threads": str(torch.get_num_threads()),
    }
    try:
        from pysalient import _C

        report["op library version"] = _C.__version__
        report["built against torch"] = _C.torch_version
        report["CUDA kernels"] = str(_C.with_cuda)
        report["CUDA archs"] = _C.cuda_archs or "-"
    except ImportError as error:
        report["build info"] = f"unavailable ({error})"
    report["PYSALIENT_OFFLINE"] = os.environ.get("PYSALIENT_OFFLINE", "0")
    return report


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="sparseinst", help="registry name or checkpoint file (default sparseinst)")
    parser.add_argument("--weights", help="weights for a registry name: a local file or URL")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (CUDA when available if unset)")


def _load_model(args: argparse.Namespace) -> Any:
    import pysalient

    return pysalient.load(args.model, weights=args.weights, device=args.device)


def _weights_status(weights: Any) -> str:
    from pysalient.engine.hub import cache_dir
    from pysalient.engine.loader import PACKAGE_DIR

    if weights is None:
        return "none (random init)"
    if "://" in weights.url:
        cached = (cache_dir() / Path(weights.url).name).is_file()
        return "cached" if cached else "download"
    location = Path(weights.url)
    return "packaged" if (location if location.is_absolute() else PACKAGE_DIR / location).is_file() else "missing"


class _TrainHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``pysalient train --help``: the usual help, then every ``KEY=VALUE`` setting with its default and what a run
    folder holds. Built at help time only: the list comes from ``TrainConfig``, whose import loads torch."""

    def format_help(self) -> str:
        from pysalient.engine.train_config import settings_help

        self.add_text(settings_help())
        self.add_text(
            "a run folder (runs/train/expN; project= and name= choose another) holds: weights.pth (the final\n"
            "model, for pysalient.load / predict / evaluate / export), best.pth (best validation AP so far, when\n"
            "val= is set), last.pth (the full training state; resume=true continues from it exactly),\n"
            "config.json (the settings and the starting weights), metrics.jsonl and results.csv"
        )
        return super().format_help()


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _image_size(text: str) -> Union[int, Tuple[int, int]]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected a size S or HxW with positive integers, got {text!r}")
    return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    print(f"pysalient: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
