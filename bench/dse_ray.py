"""accelkit dse on Ray: the dse_sweep sweep on a local 2-worker Ray against the local process pool.

Ray's start-up (ray.init of a local 2-CPU cluster) is timed on its own and not counted in Ray's rate; neither
run uses a cache file, so both simulate every layer. `ratio` = Ray designs/s over the pool's; the tables must be
identical.
"""

from __future__ import annotations

import argparse
import os
import time

from _dse_common import spec as bench_spec


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py dse_ray", description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    import pandas as pd
    import ray

    from accelkit.sim.dse.sweep import run_sweep

    spec = bench_spec(args.designs)
    start = time.perf_counter()
    pooled = run_sweep(spec, executor="process", workers=args.workers, cache=None, progress=False)
    pool_s = time.perf_counter() - start
    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    startup_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        rayed = run_sweep(spec, executor="ray", cache=None, progress=False)
        ray_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(pooled.table, rayed.table)
    designs = len(pooled.table)
    ours, peer = designs / ray_s, designs / pool_s
    load = os.getloadavg()[0]
    print(f"{designs} designs: pool {pool_s:.2f} s ({peer:,.0f}/s), Ray {ray_s:.2f} s ({ours:,.0f}/s, "
          f"x{ours / peer:.2f}) after {startup_s:.1f} s of Ray start-up; load average {load:.1f}")  # fmt: skip
    return {
        "name": "dse_ray",
        "metric": "design points per second (ResNet-50, native mode, no cache)",
        "ours": ours,
        "peer": peer,
        "ratio": ours / peer,
        "ours_call": f"run_sweep(executor='ray') on a local {args.workers}-CPU Ray",
        "peer_call": f"run_sweep(executor='process', workers={args.workers})",
        "designs": designs,
        "seconds_ray": ray_s,
        "seconds_pool": pool_s,
        "ray_startup_s": startup_s,
        "load_average_1min": os.getloadavg()[0],
    }
