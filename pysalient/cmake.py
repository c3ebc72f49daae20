"""Where C++ programs find pysalient: ``python -m pysalient.cmake`` prints the ``CMAKE_PREFIX_PATH`` to use.

    cmake -S examples/cpp -B build -DCMAKE_PREFIX_PATH="$(python -m pysalient.cmake)"

The prefix is the installed package folder (``<site-packages>/pysalient``, holding ``lib/``, ``include/`` and
``share/cmake/PySalient``), followed by torch's CMake prefix, joined with ``;`` (CMake's list separator), so that
``find_package(PySalient)`` and the ``find_package(Torch)`` it makes both succeed. The package folder is located
through the compiled module ``pysalient._C``: under an editable install the Python sources stay in the checkout
while the build products live in site-packages.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import List, Optional, Sequence

CONFIG_RELATIVE_PATH = Path("share", "cmake", "PySalient", "PySalientConfig.cmake")


def package_prefix() -> Path:
    """The installed package folder that holds ``share/cmake/PySalient/PySalientConfig.cmake``.

    Raises:
        RuntimeError: the package was installed without its native part, or without the CMake package.
    """
    spec = importlib.util.find_spec("pysalient._C")
    if spec is None or not spec.origin:
        raise RuntimeError(
            "pysalient._C is not installed, so neither is the C++ package; build pysalient with "
            "`pip install --no-build-isolation .` (or `make install`)"
        )
    prefix = Path(spec.origin).resolve().parent
    if not (prefix / CONFIG_RELATIVE_PATH).is_file():
        raise RuntimeError(
            f"{prefix / CONFIG_RELATIVE_PATH} is missing: the installed pysalient predates its C++ package; "
            "rebuild it with `pip install --no-build-isolation .` (or `make install`)"
        )
    return prefix


def torch_prefix() -> str:
    """torch's CMake prefix (``<site-packages>/torch/share/cmake``)."""
    import torch.utils

    return str(torch.utils.cmake_prefix_path)


def cmake_prefix_path(with_torch: bool = True) -> str:
    """``package_prefix()``, then torch's prefix unless ``with_torch`` is False, joined with ``;``."""
    prefixes: List[str] = [str(package_prefix())]
    if with_torch:
        prefixes.append(torch_prefix())
    return ";".join(prefixes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Prints the prefix path; returns the exit status (1 with a message on stderr when it cannot)."""
    parser = argparse.ArgumentParser(
        prog="python -m pysalient.cmake",
        description="Print the CMAKE_PREFIX_PATH that makes find_package(PySalient) work.",
    )
    parser.add_argument(
        "--no-torch", action="store_true", help="print only the pysalient prefix, not torch's CMake prefix"
    )
    args = parser.parse_args(argv)
    try:
        print(cmake_prefix_path(with_torch=not args.no_torch))
    except RuntimeError as error:
        print(f"pysalient.cmake: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
