"""Where sweep tasks run: in this process, a local process pool (the default) or a Ray cluster.

Each executor's `map(fn, tasks)` yields (task index, result) as tasks finish, in any order; the sweep stores
results as they arrive, so the order never changes the table. A task lost with its worker is retried: the pool
is rebuilt after a BrokenProcessPool (up to MAX_RETRIES times) and Ray re-runs a task whose worker died
(`max_retries`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from accelkit._optional import require

EXECUTORS = ("process", "serial", "ray")
MAX_RETRIES = 3


class SerialExecutor:
    """Runs every task in this process, in order (for debugging and for counting work exactly)."""

    workers = 1

    def map(self, fn: Callable, tasks: Sequence) -> Iterator[tuple[int, Any]]:
        for index, task in enumerate(tasks):
            yield index, fn(task)

    def close(self) -> None:
        pass


class PoolExecutor:
    """A local process pool of `workers` processes (default: the CPUs this process may use)."""

    def __init__(self, workers: int | None = None):
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.workers = workers or usable
        self._pool: ProcessPoolExecutor | None = None

    def _get(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: workers start from a clean interpreter, never a fork of a process holding torch's threads.
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method))
        return self._pool

    def map(self, fn: Callable, tasks: Sequence) -> Iterator[tuple[int, Any]]:
        pending = dict(enumerate(tasks))
        failures = 0
        while pending:
            pool = self._get()
            futures = {pool.submit(fn, task): index for index, task in pending.items()}
            try:
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        index = futures.pop(future)
                        result = future.result()
                        del pending[index]
                        yield index, result
            except BrokenProcessPool:
                failures += 1
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                if failures > MAX_RETRIES:
                    raise
            finally:
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Tasks as Ray remote calls: a local Ray of `workers` CPUs, or the cluster at `address`."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        self._ray = require("ray", feature="--executor ray")
        self._owned = not self._ray.is_initialized()
        if self._owned:
            options = {"address": address} if address else {"num_cpus": workers or os.cpu_count()}
            self._ray.init(**options, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        self.workers = int(self._ray.cluster_resources().get("CPU", 1))
        self._remotes: dict[Callable, Any] = {}

    def map(self, fn: Callable, tasks: Sequence) -> Iterator[tuple[int, Any]]:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = self._ray.remote(max_retries=MAX_RETRIES)(fn)
        refs = {remote.remote(task): index for index, task in enumerate(tasks)}
        try:
            while refs:
                done, _ = self._ray.wait(list(refs), num_returns=1)
                for ref in done:
                    yield refs.pop(ref), self._ray.get(ref)
        finally:
            for ref in refs:
                self._ray.cancel(ref)

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()


def make_executor(name: str, *, workers: int | None = None, address: str | None = None):
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {name!r}")
    if address is not None and name != "ray":
        raise ValueError("address applies to the ray executor only")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if name == "serial":
        return SerialExecutor()
    if name == "ray":
        return RayExecutor(workers, address)
    return PoolExecutor(workers)
