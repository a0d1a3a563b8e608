"""accelkit: hand-written ML kernels as PyTorch ops, and a cycle-level accelerator simulator.

`accelkit.kernels` (the repository's kernels/ folder) holds the ops, `accelkit.sim` (sim/) the simulator,
`accelkit.ops` the public PyTorch functions and `accelkit.nn` the layers built on them. Importing `accelkit` loads
neither torch nor triton: the simulator's command line must start fast, so the heavy imports happen when a kernel is
first used.
"""

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "kernels", "nn", "ops", "sim"]


def __getattr__(name: str) -> Any:
    if name in ("kernels", "nn", "ops", "sim"):
        return importlib.import_module(f"accelkit.{name}")
    raise AttributeError(f"module 'accelkit' has no attribute {name!r}")
