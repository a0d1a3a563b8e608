"""Sweeps: resume after an interruption, executors agree, NSGA-II reaches the grid's front, a lost task reruns."""

import os

import pandas as pd
import pytest
from specs import SMALL

from accelkit.sim.dse.cache import ResultCache
from accelkit.sim.dse.executors import PoolExecutor
from accelkit.sim.dse.spec import parse_spec
from accelkit.sim.dse.sweep import run_sweep


@pytest.fixture(scope="module")
def spec():
    return parse_spec(SMALL, "small.yaml")


@pytest.fixture(scope="module")
def reference(spec):
    """The uninterrupted serial run every other run is compared with."""
    return run_sweep(spec, executor="serial", cache=None, progress=False)


def test_grid_covers_feasible_designs(spec, reference):
    feasible = [v for v in spec.grid() if v[0] * v[1] <= 128]
    assert len(reference.table) == len(feasible) == 180
    assert reference.evaluations == len(feasible) * 3  # three layers of distinct shapes
    assert reference.table["on_front"].any()


class _Stop(Exception):
    pass


def test_resume_after_interrupt_computes_only_missing(spec, reference, tmp_path):
    cache = tmp_path / "cache.sqlite"

    def stop_after(done, total):
        if done >= 40:
            raise _Stop

    with pytest.raises(_Stop):
        run_sweep(spec, executor="serial", cache=cache, progress=False, on_design=stop_after)
    stored = ResultCache(cache)
    kept = len(stored)
    stored.close()
    assert 0 < kept < reference.evaluations
    resumed = run_sweep(spec, executor="serial", cache=cache, progress=False)
    assert resumed.evaluations == reference.evaluations - kept
    pd.testing.assert_frame_equal(resumed.table, reference.table)
    again = run_sweep(spec, executor="serial", cache=cache, progress=False)
    assert again.evaluations == 0
    pd.testing.assert_frame_equal(again.table, reference.table)


def test_process_pool_equals_serial(spec, reference, tmp_path):
    pooled = run_sweep(spec, executor="process", workers=2, cache=tmp_path / "c.sqlite", progress=False)
    pd.testing.assert_frame_equal(pooled.table, reference.table)
    assert pooled.evaluations == reference.evaluations


def test_nsga2_finds_most_of_the_grid_front(spec, reference):
    # 100 of the 180 feasible designs; seeds 0-3 find 16, 18, 18 and 16 of the 19 front designs.
    text = SMALL + "search: {method: nsga2, trials: 100, population: 20, seed: 1}\n"
    guided = run_sweep(parse_spec(text, "nsga.yaml"), executor="serial", cache=None, progress=False)
    grid_front = set(reference.front["design"])
    found = grid_front & set(guided.table["design"])
    assert len(found) >= 0.9 * len(grid_front), (sorted(grid_front - found), len(grid_front))
    assert len(guided.table) == guided.evaluations // 3 == 100
    # Every grid-front design NSGA-II evaluated is on its own front too, with the same numbers.
    mine = guided.table.set_index("design").loc[sorted(found)]
    assert mine["on_front"].all()
    columns = ["latency_ms", "energy_mj", "area_mm2"]
    pd.testing.assert_frame_equal(mine[columns], reference.table.set_index("design").loc[sorted(found)][columns])


def _die_once(marker: str) -> int:
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return os.getpid()


def test_pool_retries_a_task_whose_worker_died(tmp_path):
    marker = str(tmp_path / "died")
    pool = PoolExecutor(workers=1)
    try:
        results = dict(pool.map(_die_once, [marker, marker]))
    finally:
        pool.close()
    assert sorted(results) == [0, 1] and os.path.exists(marker)


@pytest.mark.slow
def test_ray_equals_process_pool(spec, reference, tmp_path):
    pytest.importorskip("ray")
    rayed = run_sweep(spec, executor="ray", workers=2, cache=tmp_path / "r.sqlite", progress=False)
    pd.testing.assert_frame_equal(rayed.table, reference.table)
    assert rayed.evaluations == reference.evaluations
