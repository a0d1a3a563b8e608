"""`run_sweep`: evaluate the designs a search picks, through the cache and an executor, into one DataFrame."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accelkit._optional import require
from accelkit.sim.dse.cache import ResultCache, default_cache_path, hardware_key
from accelkit.sim.dse.evaluate import Shapes, design_metrics, simulate_task
from accelkit.sim.dse.executors import make_executor
from accelkit.sim.dse.pareto import pareto_mask
from accelkit.sim.dse.progress import Progress
from accelkit.sim.dse.space import OBJECTIVES, hardware_for
from accelkit.sim.dse.spec import Spec
from accelkit.sim.hardware import Hardware

# Designs per task: enough to amortise a round trip to a worker (a ResNet-50 design is about 6 ms of work), few
# enough that every worker gets several tasks and an interrupted sweep loses little.
MAX_CHUNK = 16


@dataclass
class SweepResult:
    """The evaluated designs (`table`, one row per design, `on_front` marks the Pareto front), how many layer
    simulations this run performed (`evaluations`; cached ones cost nothing) and the layer rows it read."""

    spec: Spec
    table: object
    evaluations: int
    seconds: float
    rows: dict = field(repr=False, default_factory=dict)

    @property
    def front(self):
        return self.table[self.table["on_front"]]

    def hardware(self, design: int) -> Hardware:
        row = self.table.loc[self.table["design"] == design].iloc[0]
        return hardware_for(self.spec.base, ((p.name, _plain(row[p.name])) for p in self.spec.parameters))


def _plain(value):
    """A pandas/NumPy scalar as the Python int/float/str a Hardware field takes."""
    return value.item() if hasattr(value, "item") else value


class _Evaluator:
    """Evaluates batches of designs, simulating only layers absent from the cache."""

    def __init__(self, spec: Spec, cache: ResultCache, executor, progress: Progress, on_design):
        self.spec, self.cache, self.executor, self.progress = spec, cache, executor, progress
        self.shapes = Shapes.of(spec.workloads)
        self.rows: dict[tuple[str, str], tuple] = {}
        self.evaluations = 0
        self.looked_up: set[str] = set()
        self.on_design = on_design

    def run(self, designs: Sequence[Hardware]) -> None:
        keys = [hardware_key(hw) for hw in designs]
        fresh = set(keys) - self.looked_up
        self.rows.update(self.cache.lookup(fresh, self.spec.mode))
        self.looked_up |= fresh
        work, seen = [], set()
        for hw, key in zip(designs, keys, strict=True):
            missing = tuple((lk, layer) for lk, layer in self.shapes.unique.items() if (key, lk) not in self.rows)
            if missing and key not in seen:
                seen.add(key)
                work.append((hw, key, missing))
        self.progress.update(len(designs) - len(work))
        size = max(1, min(MAX_CHUNK, math.ceil(len(work) / (4 * self.executor.workers))))
        tasks = [(self.spec.mode, tuple(work[i : i + size])) for i in range(0, len(work), size)]
        for index, result in self.executor.map(simulate_task, tasks):
            self.cache.store(self.spec.mode, result)
            self.evaluations += len(result)
            self.rows.update(((hw, lk), row) for hw, lk, row in result)
            self.progress.update(len(tasks[index][1]))
            if self.on_design is not None:
                self.on_design(self.progress.done, self.progress.total)

    def record(self, design: int, values: tuple, hw: Hardware) -> dict:
        row = {"design": design, **{p.name: v for p, v in zip(self.spec.parameters, values, strict=True)}}
        row.update(design_metrics(hw, self.shapes, self.rows, self.spec.area))
        return row


def run_sweep(
    spec: Spec,
    *,
    executor: str = "process",
    workers: int | None = None,
    address: str | None = None,
    cache: str | Path | None = "default",
    progress: bool = True,
    on_design: Callable[[int, int], None] | None = None,
):
    """Evaluate `spec`'s designs (its search method picks them) and return a SweepResult.

    `cache="default"` is `default_cache_path()`; None keeps results in memory for this run only. `on_design(done,
    total)` is called after each finished task; raising there (or Ctrl-C) stops the sweep with every finished
    design stored, and the same call again resumes it.
    """
    pd = require("pandas", feature="accelkit dse")
    from accelkit.sim.dse.search import designs_for

    start = time.perf_counter()
    store = ResultCache(default_cache_path() if cache == "default" else cache)
    pool = make_executor(executor, workers=workers, address=address)
    total = spec.search.trials if spec.search.method == "nsga2" else spec.grid_size
    bar = Progress(total, enabled=progress)
    evaluator = _Evaluator(spec, store, pool, bar, on_design)
    try:
        records = designs_for(spec, evaluator)
    finally:
        bar.close()
        pool.close()
        store.close()
    table = pd.DataFrame(records).sort_values("design", kind="stable").reset_index(drop=True)
    table["on_front"] = pareto_mask(table, spec.objectives)
    return SweepResult(spec, table, evaluator.evaluations, time.perf_counter() - start, evaluator.rows)


def objective_columns(spec: Spec) -> list[str]:
    return [OBJECTIVES[name][0] for name in spec.objectives]
