"""Wall-clock samples of a callable, shared by `bench/` and `accelkit demo`. Standard library only, so the
simulator benchmarks can use it without importing torch."""

import time
from collections.abc import Callable


def sample_seconds(fn: Callable[[], object], repeats: int, *, warmup: int = 0) -> list[float]:
    """Seconds taken by each of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
