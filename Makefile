# The two commands a new user needs: `make test` and (later) `make demo`. Both create/use .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test lint bench

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed only when none is importable (a plain `pip install torch` would pull CUDA wheels);
# the package is then built against that torch without build isolation.
install: $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" ninja cmake
	$(PY) -m pip install --quiet --no-build-isolation -e ".[test]"

test: install
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check pysalient tests benchmarks

bench: install
	$(PY) benchmarks/bench_ops.py
