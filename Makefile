# The two commands a new user needs: `make demo` and `make test`. Both create/use .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test demo lint bench cpp-deps sanitize

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed only when none is importable (a plain `pip install torch` would pull CUDA wheels);
# the package is then built against that torch without build isolation. The editable install picks up Python
# changes by itself; it is redone only when the native sources or the build files change (the stamp below), so
# `make test` / `make demo` do not rebuild or reinstall anything when nothing changed.
INSTALL_STAMP := $(VENV)/.pysalient-installed
NATIVE_SOURCES := $(shell find csrc -type f 2>/dev/null) CMakeLists.txt pyproject.toml pysalient/version.py

install: $(INSTALL_STAMP)

$(INSTALL_STAMP): $(PY) $(NATIVE_SOURCES)
	@$(PY) -c "import torch" 2>/dev/null || { echo "installing torch 2.13.0 (CPU) into $(VENV)"; \
		$(PY) -m pip install --progress-bar off torch==2.13.0; }
	@echo "installing the build tools (scikit-build-core, pybind11, ninja, cmake) into $(VENV)"
	@$(PY) -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" ninja cmake
	@echo "building pysalient's C++ operators and runtime with CMake (about 5 minutes on 2 cores the first time;"
	@echo "  incremental afterwards) and installing the package in editable mode"
	@mkdir -p build; start=$$(date +%s); \
		$(PY) -m pip install -v --no-build-isolation -e ".[test,onnx]" > build/install.log 2>&1 & pid=$$!; \
		while kill -0 $$pid 2>/dev/null; do sleep 20; \
			step=$$(grep -oE "^\[[0-9]+/[0-9]+\]" build/install.log | tail -n 1); \
			echo "  ... $$(( $$(date +%s) - start )) s $${step:+(compiled $$step)}"; done; \
		wait $$pid; status=$$?; \
		if [ $$status -ne 0 ]; then tail -n 40 build/install.log; echo "install failed: full log in build/install.log"; \
		else echo "built and installed in $$(( $$(date +%s) - start )) s (log: build/install.log)"; fi; exit $$status
	@touch $@

# The C++ example that tests/cpp builds reads images with OpenCV's C++ library (Debian/Ubuntu libopencv-dev).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
cpp-deps:
	@pkg-config --exists opencv4 2>/dev/null || { $(SUDO) apt-get update && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopencv-dev pkg-config; }

# The CUDA compile check runs first so pytest's summary stays the last line of the output.
test: install cpp-deps
	@if command -v $(NVCC) >/dev/null 2>&1; then $(CUDA_CHECK); else echo "nvcc not found: CUDA compile check skipped"; fi
	@echo "running the test suite: about 10 minutes on 2 idle cores (one line per test file)"
	$(PY) -m pytest tests $(PYTEST_ARGS)

# A SynthSIS test split (a seed the default weights never saw), evaluated and visualised with the default model.
DEMO_DIR ?= runs/demo
demo: install
	$(PY) -m pysalient data synth --out $(DEMO_DIR)/data --test 40 --size 256 --seed 11
	$(PY) -m pysalient eval --data $(DEMO_DIR)/data/annotations/test.json --save-dir $(DEMO_DIR)/eval
	$(PY) -m pysalient predict $(DEMO_DIR)/data/images/test --save-dir $(DEMO_DIR)/predict
	@echo "demo: metrics in $(DEMO_DIR)/eval/metrics.json, visualisations in $(DEMO_DIR)/predict/"

# sanitize: the op library built again with ASan + UBSan (build/sanitize, RelWithDebInfo) and tests/ops run against it
# (PYSALIENT_OPS_LIBRARY; the sanitizer runtimes preloaded into the uninstrumented Python). Any invalid memory
# access or undefined behaviour in a kernel aborts the run with a report. About 10 minutes on 2 cores.
SANITIZE_DIR ?= build/sanitize
SANITIZE_TESTS ?= tests/ops
sanitize: install
	@echo "building the op library with -fsanitize=address,undefined into $(SANITIZE_DIR) (minutes)"
	@mkdir -p build; $(VENV)/bin/cmake -S . -B $(SANITIZE_DIR) -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYSALIENT_SANITIZE=ON -DPYSALIENT_BUILD_PYTHON_MODULE=OFF \
		-DPython_EXECUTABLE=$(abspath $(PY)) > $(SANITIZE_DIR).log 2>&1 \
		|| { tail -n 30 $(SANITIZE_DIR).log; exit 1; }
	@$(VENV)/bin/cmake --build $(SANITIZE_DIR) --target pysalient_ops >> $(SANITIZE_DIR).log 2>&1 \
		|| { tail -n 30 $(SANITIZE_DIR).log; exit 1; }
	PYSALIENT_OPS_LIBRARY=$(SANITIZE_DIR)/libpysalient_ops.so \
	LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(PY) -m pytest $(SANITIZE_TESTS) -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check pysalient tests benchmarks

bench: install
	$(PY) benchmarks/bench_ops.py

# ---- CUDA ----
# cuda-check: compile-only check of every csrc/ops/*/*_cuda.cu with nvcc against the installed torch headers
# (works with a CPU-only torch and no GPU; `make test` runs it whenever nvcc is on PATH).
# gpu-check: on a machine with an NVIDIA GPU and a CUDA torch: build with the CUDA kernels, run the op tests on
# both devices, the models on the GPU (tests/gpu, the golden parity on CUDA) - a skipped CUDA case is a failure -,
# compute-sanitizer over every kernel, the GPU benchmarks (appended to benchmarks/RESULTS.md).
# GPU_PY: the Python that holds the CUDA torch. Default: the .venv of `make install`. On a machine whose system
# Python already has a CUDA torch and no package index (e.g. `make gpu-check GPU_PY=python3`), the package is built
# in place with --no-deps, so nothing is downloaded; its runtime and test dependencies must already be importable.
.PHONY: cuda-check gpu-check
NVCC ?= nvcc
CUDA_CHECK = NVCC=$(NVCC) $(PY) tools/cuda_check.py
SANITIZER ?= $(shell command -v compute-sanitizer 2>/dev/null || echo /usr/local/cuda/bin/compute-sanitizer)
SANITIZE = $(SANITIZER) --error-exitcode 1 --print-limit 20
GPU_PY ?= $(PY)
GPU_TESTS ?= tests/ops tests/gpu tests/models

cuda-check: install
	$(CUDA_CHECK)

ifeq ($(GPU_PY),$(PY))
gpu-check: install
else
gpu-check:
	$(GPU_PY) -m pip install --quiet --no-build-isolation --no-deps -e .
endif
	@$(GPU_PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: torch sees no CUDA GPU')"
	@$(GPU_PY) -c "from pysalient import _C; assert _C.with_cuda, 'pysalient was built without CUDA kernels (nvcc on PATH?)'; print('CUDA archs:', _C.cuda_archs)"
	PYSALIENT_REQUIRE_CUDA=1 $(GPU_PY) -m pytest -q $(GPU_TESTS) $(PYTEST_ARGS)
	@test -x "$(SANITIZER)" || { echo "gpu-check: compute-sanitizer not found (set SANITIZER=...)"; exit 1; }
	PYTORCH_NO_CUDA_MEMORY_CACHING=1 $(SANITIZE) --tool memcheck $(GPU_PY) tools/gpu_sanitize_driver.py
	$(SANITIZE) --tool racecheck $(GPU_PY) tools/gpu_sanitize_driver.py
	$(SANITIZE) --tool synccheck $(GPU_PY) tools/gpu_sanitize_driver.py
	$(GPU_PY) benchmarks/bench_ops.py --device cuda
	$(GPU_PY) benchmarks/bench_export.py --device cuda --models sparseinst_r50_giam --imgsz 640
