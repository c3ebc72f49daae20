"""``python -m pysalient.cmake``: the installed package's CMake prefix, then torch's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch.utils

from tests.cpp.helpers import run


def test_prints_the_installed_package_then_torch() -> None:
    result = run([sys.executable, "-m", "pysalient.cmake"])
    assert result.returncode == 0, result.stderr
    prefixes = result.stdout.strip().split(";")
    assert len(prefixes) == 2 and prefixes[1] == torch.utils.cmake_prefix_path
    package = Path(prefixes[0])
    # The folder of the compiled module: under an editable install, site-packages, not the source checkout.
    assert package == Path(importlib.util.find_spec("pysalient._C").origin).resolve().parent
    for relative in (
        "share/cmake/PySalient/PySalientConfig.cmake",
        "share/cmake/PySalient/PySalientConfigVersion.cmake",
        "include/pysalient/predictor.h",
        "include/pysalient/metadata.h",
        "lib/libpysalient_ops.so",
        "lib/libpysalient_runtime.so",
    ):
        assert (package / relative).is_file(), relative

    only_package = run([sys.executable, "-m", "pysalient.cmake", "--no-torch"])
    assert only_package.returncode == 0 and only_package.stdout.strip() == prefixes[0]
