"""accelkit dse throughput: 2,000 designs x ResNet-50 (54 layers, native mode), process pool against one process.

Three runs of the same sweep in one process: one process (serial executor, no cache file), the local process pool
(the default executor) into a fresh sqlite cache, and the pool again on that cache. `ratio` = pool designs/s over
one process's (goal >= 1.7 on 2 cores, and >= 150 designs/s); `cache_speedup` = first pool run over the cached
re-run (goal >= 20). The tables of all three must be identical. On a shared machine the ratio depends on what
else runs: report the machine's load with it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _dse_common import spec as bench_spec


def _timed(spec, **options):
    from accelkit.sim.dse.sweep import run_sweep

    start = time.perf_counter()
    result = run_sweep(spec, progress=False, **options)
    return time.perf_counter() - start, result


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py dse_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=None, help="pool processes (default: every usable CPU)")
    args = parser.parse_args(argv)
    import pandas as pd

    spec = bench_spec(args.designs)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.sqlite"
        one_s, one = _timed(spec, executor="serial", cache=None)
        pool_s, pooled = _timed(spec, executor="process", workers=args.workers, cache=cache)
        cached_s, cached = _timed(spec, executor="process", workers=args.workers, cache=cache)
    pd.testing.assert_frame_equal(one.table, pooled.table)
    pd.testing.assert_frame_equal(one.table, cached.table)
    if cached.evaluations:
        raise RuntimeError(f"the cached re-run simulated {cached.evaluations} layers")
    designs = len(one.table)
    ours, peer = designs / pool_s, designs / one_s
    print(f"{designs} designs x {len(spec.workloads[0].layers)} layers ({one.evaluations:,} layer simulations)")
    load = os.getloadavg()[0]
    print(f"  one process {one_s:.2f} s ({peer:,.0f}/s); pool {pool_s:.2f} s ({ours:,.0f}/s, x{ours / peer:.2f}); "
          f"cached re-run {cached_s:.3f} s (x{pool_s / cached_s:.1f}); load average {load:.1f}")  # fmt: skip
    return {
        "name": "dse_sweep",
        "metric": "design points per second (ResNet-50, native mode)",
        "ours": ours,
        "peer": peer,
        "ratio": ours / peer,
        "ours_call": "run_sweep(executor='process') into a fresh sqlite cache",
        "peer_call": "run_sweep(executor='serial'), one process",
        "designs": designs,
        "layer_simulations": one.evaluations,
        "seconds_one_process": one_s,
        "seconds_pool": pool_s,
        "seconds_cached": cached_s,
        "cache_speedup": pool_s / cached_s,
        "front_size": int(one.table["on_front"].sum()),
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
        "goals": {"ratio": 1.7, "designs_per_s": 150, "cache_speedup": 20},
    }
