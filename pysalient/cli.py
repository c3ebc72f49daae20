"""Command-line interface: ``pysalient <command>``."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Dict, List, Optional


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


def _command_env(_: argparse.Namespace) -> int:
    report = environment_report()
    width = max(len(key) for key in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``pysalient`` argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="pysalient", description="Salient instance segmentation toolkit.")
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env", help="print versions of python, torch, pysalient and the op library")
    env.set_defaults(handler=_command_env)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``pysalient`` console script."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
