"""pytest plugin for `make sanitize`: import the ASan + UBSan build of accelkit._C instead of the in-place one.

Loaded with `-p sanitized_native` (csrc/tests on PYTHONPATH) and ACCELKIT_SANITIZED_C set to the sanitized .so. It
registers that file as `accelkit._C` before any test imports the extension, so `accelkit._native.native()` and
every launcher in kernels/binary/cpu.py run the instrumented code, and it refuses to run (exit status 4, pytest's
usage error) when the extension that tests would get is any other file: a sanitize run that silently tested the
normal build would pass on the bugs it exists to catch.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_ENV = "ACCELKIT_SANITIZED_C"
_KEY = pytest.StashKey[Path]()


def _load() -> Path:
    raw = os.environ.get(_ENV)
    if not raw:
        raise pytest.UsageError(f"{_ENV} must name the sanitized accelkit._C shared object")
    path = Path(raw).resolve()
    if not path.is_file():
        raise pytest.UsageError(f"{_ENV}={raw}: no such file")
    import accelkit

    if "accelkit._C" in sys.modules:
        raise pytest.UsageError("accelkit._C was imported before the sanitized build could replace it")
    spec = importlib.util.spec_from_file_location("accelkit._C", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["accelkit._C"] = module
    spec.loader.exec_module(module)
    accelkit._C = module
    return path


def pytest_configure(config: pytest.Config) -> None:
    expected = _load()
    from accelkit._native import native

    loaded = Path(native().__file__).resolve()
    if loaded != expected:
        raise pytest.UsageError(f"tests would import {loaded}, not the sanitized build {expected}")
    config.stash[_KEY] = loaded


def pytest_sessionstart(session: pytest.Session) -> None:
    # Written even under -q (a report header is not), so the CI log shows which build the tests ran against.
    line = f"accelkit._C under test: {session.config.stash[_KEY]}"
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(line)
