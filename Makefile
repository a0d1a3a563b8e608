# Newcomers run `make demo` and `make test`; both build .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# A CPU build of torch 2.13.0 lies on this machine's disk; another pin downloads a CUDA build of several GB.
TORCH_SPEC ?= torch==$(TORCH_VERSION)
# Where the default torch wheel is a CUDA build, TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the CPU one.
TORCH_INDEX ?=
# Test-only peers the suite compares against. They are installed without their dependencies (fla-core would pull a
# CUDA torch, spikingjelly a pinned one), then the few small packages they import.
TEST_PEERS := fla-core==0.6.0 spikingjelly==2.0.0
TEST_PEER_DEPS := einops loguru
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.accelkit-installed
NATIVE_SOURCES := $(wildcard csrc/*.cpp csrc/*.h csrc/include/accelkit/*.h) setup.py pyproject.toml

.PHONY: setup demo test lint sanitize clean gpu-check

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The stamp depends on the native sources, so an edit to csrc/ rebuilds the extension on the next make.
$(STAMP): $(PY) $(NATIVE_SOURCES)
	$(PIP) install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(PIP) install --quiet "setuptools>=77" "pybind11>=2.12" wheel
	$(PIP) install --quiet --no-build-isolation -e ".[dev]"
	$(PIP) install --quiet --no-deps $(TEST_PEERS)
	$(PIP) install --quiet $(TEST_PEER_DEPS)
	touch $(STAMP)

# Every backend found here, every op against its oracle, small benchmarks, the simulator.
demo: setup
	$(VENV)/bin/accelkit demo

# On a machine with a CUDA device (at most ~8 minutes): the cuda-marked tests, then flash and decode attention
# against torch SDPA (bench/gpu_check.py). Without one it prints "no CUDA device" and exits 0.
gpu-check: setup
	$(PY) bench/gpu_check.py

# ruff lint and format check over the whole repository.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The whole suite, after the lint and the sanitizer gate (make sanitize).
test: setup lint sanitize
	$(PY) -m pytest -q

# --- make sanitize: the C++ kernels under AddressSanitizer + UndefinedBehaviorSanitizer -----------------------------
# Two runs, both stopping at the first report (-fno-sanitize-recover=all makes UBSan fatal too):
# 1. csrc/tests/test_binary.cpp and csrc/tests/test_attention.cpp, standalone programs, check the header math and the
#    kernels of csrc/*.cpp (the files without pybind11) against scalar loops on edge sizes, leak checking on.
# 2. tests/kernels/test_binary_cpp.py and test_lean_attention_cpu.py against a sanitized accelkit._C built here, in
#    $(SAN_DIR), never over the in-place build. Python is not instrumented, so libasan must be preloaded (and
#    libstdc++ with it, or ASan's __cxa_throw interceptor finds no real __cxa_throw when the first ValueError is
#    thrown); CPython's own
#    allocations look like leaks at exit, hence detect_leaks=0. csrc/tests/sanitized_native.py loads the .so as
#    accelkit._C and refuses to run if the tests would import any other build. --capture=sys leaves file
#    descriptor 2 alone, so a sanitizer report that aborts the process still reaches the terminal.
#    NDEBUG stays unset, so pybind11's GIL assertions are on too: a Python object released without the GIL aborts.
SAN_DIR := build/sanitize
SAN_FLAGS := -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_OPENMP = $(shell printf 'int main(){}' | $(CXX) -fopenmp -x c++ - -o /dev/null 2>/dev/null && echo -fopenmp)
# Each csrc/*.cpp compiles once, to an object the programs share: the kernels (the files without pybind11) go into
# the standalone tests, all of them into the extension.
SAN_OBJECTS = $(patsubst csrc/%.cpp,$(SAN_DIR)/%.o,$(wildcard csrc/*.cpp))
SAN_KERNEL_OBJECTS = $(patsubst csrc/%.cpp,$(SAN_DIR)/%.o,$(shell grep -L pybind11 $(wildcard csrc/*.cpp)))
SAN_TESTS := csrc/tests/test_binary.cpp csrc/tests/test_attention.cpp csrc/tests/sanitized_native.py \
	csrc/tests/test_wkv.cpp csrc/tests/test_spiking.cpp csrc/tests/test_delta_rule.cpp csrc/tests/test_text_rows.cpp \
	csrc/tests/test_scalesim.cpp

$(SAN_DIR)/%.o: csrc/%.cpp $(wildcard csrc/*.h csrc/include/accelkit/*.h) | $(STAMP)
	mkdir -p $(SAN_DIR)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -fPIC -fvisibility=hidden $$($(PY) -m pybind11 --includes) -Icsrc/include \
		-c $< -o $@

$(SAN_DIR)/test_binary: csrc/tests/test_binary.cpp csrc/tests/check.h $(SAN_KERNEL_OBJECTS)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -Icsrc/include $(filter-out %.h,$^) -o $@

$(SAN_DIR)/test_attention: csrc/tests/test_attention.cpp csrc/tests/check.h $(SAN_KERNEL_OBJECTS)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -Icsrc/include $(filter-out %.h,$^) -o $@

$(SAN_DIR)/test_wkv: csrc/tests/test_wkv.cpp csrc/tests/check.h $(SAN_KERNEL_OBJECTS)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -Icsrc/include $(filter-out %.h,$^) -o $@

$(SAN_DIR)/test_spiking: csrc/tests/test_spiking.cpp csrc/tests/check.h $(SAN_KERNEL_OBJECTS)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -Icsrc/include $(filter-out %.h,$^) -o $@

$(SAN_DIR)/test_delta_rule: csrc/tests/test_delta_rule.cpp csrc/tests/check.h $(SAN_KERNEL_OBJECTS)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -Icsrc/include $(filter-out %.h,$^) -o $@

$(SAN_DIR)/test_text_rows: csrc/tests/test_text_rows.cpp csrc/tests/check.h $(SAN_KERNEL_OBJECTS)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -Icsrc/include $(filter-out %.h,$^) -o $@

$(SAN_DIR)/test_scalesim: csrc/tests/test_scalesim.cpp csrc/tests/check.h $(SAN_KERNEL_OBJECTS)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -Icsrc/include $(filter-out %.h,$^) -o $@

$(SAN_DIR)/_C.so: $(SAN_OBJECTS)
	$(CXX) $(SAN_FLAGS) $(SAN_OPENMP) -shared $^ -o $@

sanitize: $(SAN_DIR)/test_binary $(SAN_DIR)/test_attention $(SAN_DIR)/test_wkv $(SAN_DIR)/test_spiking \
		$(SAN_DIR)/test_delta_rule $(SAN_DIR)/test_text_rows $(SAN_DIR)/test_scalesim $(SAN_DIR)/_C.so $(SAN_TESTS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(SAN_DIR)/test_binary
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(SAN_DIR)/test_attention
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(SAN_DIR)/test_wkv
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(SAN_DIR)/test_spiking
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(SAN_DIR)/test_delta_rule
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(SAN_DIR)/test_text_rows
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(SAN_DIR)/test_scalesim
	LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so.6)" \
		ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
		ACCELKIT_SANITIZED_C=$(SAN_DIR)/_C.so PYTHONPATH=csrc/tests \
		$(PY) -m pytest -q --capture=sys -p sanitized_native tests/kernels/test_binary_cpp.py \
		tests/kernels/test_lean_attention_cpu.py tests/kernels/test_wkv.py \
		tests/kernels/test_spiking_op.py::test_isa_and_saved_h_paths_agree \
		tests/kernels/test_spiking_op.py::test_many_chunks_and_threads tests/kernels/test_spiking_op.py::test_empty_and_tiny \
		tests/sim/test_trace_text.py tests/sim/test_scalesim_native.py \
		tests/kernels/test_delta_rule_native_chunk.py

# Build outputs, the sanitizer build (build/sanitize) included.
clean:
	rm -rf build *.egg-info accelkit/_C*.so
