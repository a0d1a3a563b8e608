# Newcomers run `make demo` and `make test`; both build .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# A CPU build of torch 2.13.0 lies on this machine's disk; another pin downloads a CUDA build of several GB.
TORCH_SPEC ?= torch==$(TORCH_VERSION)
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.accelkit-installed
NATIVE_SOURCES := $(wildcard csrc/*.cpp csrc/include/accelkit/*.h) setup.py pyproject.toml

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The stamp depends on the native sources, so an edit to csrc/ rebuilds the extension on the next make.
$(STAMP): $(PY) $(NATIVE_SOURCES)
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet "setuptools>=69" "pybind11>=2.12" wheel
	$(PIP) install --quiet --no-build-isolation -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/accelkit demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup lint
	$(PY) -m pytest -q

clean:
	rm -rf build *.egg-info accelkit/_C*.so
