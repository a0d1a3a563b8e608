"""`make gpu-check` (bench/gpu_check.py) without a CUDA device: one line, exit 0, nothing else run."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


def test_gpu_check_without_cuda_says_so_and_exits_0():
    # An empty CUDA_VISIBLE_DEVICES hides any GPU, so the test checks the same path on every machine.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "no CUDA device\n"
    assert "pytest" not in res.stderr
