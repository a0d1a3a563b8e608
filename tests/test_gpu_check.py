"""`make gpu-check` (bench/gpu_check.py): without a CUDA device one line and exit 0; its cases at tiny CPU sizes."""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


def test_gpu_check_without_cuda_says_so_and_exits_0():
    # An empty CUDA_VISIBLE_DEVICES hides any GPU, so the test checks the same path on every machine.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "no CUDA device\n"
    assert "pytest" not in res.stderr


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wall_ms(fn, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) * 1e3 / repeats


def test_gpu_check_cases_run_on_cpu_at_tiny_sizes():
    """The figure-gathering code paths (ours and SDPA, forward, backward through autograd, decode with GQA), on the
    CPU in float32 with a wall-clock timer, so a typo there shows here rather than on the one GPU run."""
    gpu_check = _load()
    row = gpu_check.flash_case(32, 16, True, 1, tokens=64, hidden=32, device="cpu", dtype=torch.float32, timer=_wall_ms)
    assert (row["B"], row["H"], row["causal"]) == (2, 2, True)
    keys = ("ours_fwd_tflops", "ours_bwd_tflops", "sdpa_fwd_tflops", "sdpa_bwd_tflops")
    assert all(row[key] > 0 for key in keys), row
    dec = gpu_check.decode_case(64, 1, device="cpu", dtype=torch.float32, timer=_wall_ms)
    assert dec["T"] == 64 and all(dec[key] > 0 for key in ("lean_ms", "split_kv_ms", "sdpa_ms")), dec
