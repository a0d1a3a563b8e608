"""Optional dependencies: import one, or fail with a single line that names the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# module -> the accelkit extra that installs it (see [project.optional-dependencies] in pyproject.toml).
EXTRAS = {
    "torch": "kernels",
    "triton": "kernels",
    "pandas": "pandas",
    "cupy": "cuda",
    "yaml": "dse",
    "optuna": "dse",
    "pyarrow": "dse",
    "matplotlib": "dse",
    "ray": "ray",
}


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message names the pip command that installs it."""


def require(module: str, *, feature: str) -> ModuleType:
    """Import `module`, or raise MissingDependency saying which `feature` needs it and which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module)
        hint = f"pip install 'accelkit[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependency(f"{feature} needs {module}, which is not installed: {hint}") from exc


def available(module: str) -> bool:
    """True when `module` is installed; looks it up without importing it (importing torch takes seconds)."""
    return importlib.util.find_spec(module) is not None
