"""accelkit.sim.dse: design-space exploration over the simulator (`accelkit dse SPEC.yaml`).

`load_spec` reads a YAML spec, `run_sweep` evaluates its designs (grid or optuna's NSGA-II; a process pool or
Ray; an sqlite result cache shared by sweeps) into a pandas DataFrame with its Pareto front, and `write_report`
writes parquet, CSV, PNG plots and one self-contained HTML file. Names resolve lazily, as in accelkit.sim.
"""

import importlib
from typing import Any

_PUBLIC = {
    "load_spec": "accelkit.sim.dse.spec",
    "parse_spec": "accelkit.sim.dse.spec",
    "Spec": "accelkit.sim.dse.spec",
    "SpecError": "accelkit.sim.dse.space",
    "AreaTable": "accelkit.sim.dse.area",
    "run_sweep": "accelkit.sim.dse.sweep",
    "SweepResult": "accelkit.sim.dse.sweep",
    "ResultCache": "accelkit.sim.dse.cache",
    "non_dominated": "accelkit.sim.dse.pareto",
    "pareto_mask": "accelkit.sim.dse.pareto",
    "write_report": "accelkit.sim.dse.report",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'accelkit.sim.dse' has no attribute {name!r}")
