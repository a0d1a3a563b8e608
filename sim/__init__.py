"""accelkit.sim: a cycle-level simulator of systolic-array accelerator dataflows (os, ws, is).

`simulate(workload, hardware)` runs a network or layer list, `simulate_layer` one layer; `Hardware` and the
presets describe the accelerator, `Gemm` and `Conv` the work. `accelkit scalesim` is a drop-in for SCALE-Sim
3.0.0's command line. Names resolve lazily so that importing this package costs only this file: the
`accelkit scalesim` command must start fast (about 0.1 s, most of it NumPy).
"""

import importlib
from typing import Any

_PUBLIC = {
    "simulate": "accelkit.sim.api",
    "Report": "accelkit.sim.report",
    "simulate_layer": "accelkit.sim.engine",
    "fold_schedule": "accelkit.sim.engine",
    "LayerStats": "accelkit.sim.engine",
    "Fold": "accelkit.sim.engine",
    "Hardware": "accelkit.sim.hardware",
    "EnergyTable": "accelkit.sim.hardware",
    "tpu_v1_like": "accelkit.sim.hardware",
    "eyeriss_like": "accelkit.sim.hardware",
    "resolve_hardware": "accelkit.sim.hardware",
    "words_per_cycle": "accelkit.sim.hardware",
    "DuplicateLayerNameWarning": "accelkit.sim.api",
    "Gemm": "accelkit.sim.workloads",
    "Conv": "accelkit.sim.workloads",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'accelkit.sim' has no attribute {name!r}")
