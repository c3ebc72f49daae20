"""The ``pysalient`` console script."""

from __future__ import annotations

import subprocess
import sys

import torch

import pysalient
from pysalient.cli import environment_report, main


def test_env_report_names_versions_and_op_library(capsys) -> None:
    assert main(["env"]) == 0
    printed = capsys.readouterr().out
    assert f"torch                {torch.__version__}" in printed
    report = environment_report()
    assert report["pysalient"] == pysalient.__version__
    assert report["native ops"].endswith("libpysalient_ops.so")
    assert report["op library version"] == pysalient.__version__
    assert report["threads"] == str(torch.get_num_threads())


def test_module_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "pysalient", "env"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "built against torch" in result.stdout
