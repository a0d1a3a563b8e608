"""bench/gpu_check.py's LIF case at a tiny size on the CPU: every column present, and SpikingJelly's grads agree
with ours."""

import importlib.util
import time
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


def _wall_ms(fn, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) * 1e3 / repeats


def test_lif_case_runs_on_cpu():
    spec = importlib.util.spec_from_file_location("bench_gpu_check_spiking", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    row = gpu_check.lif_case(4, 300, 1, device="cpu", dtype=torch.float32, timer=_wall_ms)
    assert row["T"] == 4 and row["N"] == 300
    assert row["accelkit_auto_ms"] > 0 and row["spikingjelly_ms"] > 0
    assert row["spikingjelly_max_dgrad"] <= 1e-5
