"""Package-level contracts: lazy imports, the command line, the demo."""

import subprocess
import sys

import pytest

from accelkit.cli import COMMANDS, main


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("code", ["import accelkit", "import accelkit.sim", "import accelkit.cli"])
def test_import_does_not_load_torch_or_triton(code):
    loaded = _modules_after(code)
    assert "torch" not in loaded and "triton" not in loaded


def test_cli_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_cli_unknown_command_exits_2(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_every_command_module_has_main():
    import importlib

    for module, _ in COMMANDS.values():
        assert callable(importlib.import_module(module).main)


@pytest.mark.slow
def test_demo_runs_green():
    res = subprocess.run(
        [sys.executable, "-m", "accelkit", "demo", "--size", "256"], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "binary_matmul fwd" in res.stdout and "FAIL" not in res.stdout
    assert "lean_attention (Triton)" in res.stdout and "== Decode attention" in res.stdout


ATTENTION_ROWS = (
    "flash_attention fwd",
    "flash_attention dq",
    "flash_attention dk",
    "flash_attention dv",
    "lean_attention",
    "split_kv_attention",
    "flash_attention fwd (Triton)",
    "lean_attention (Triton)",
)


def test_demo_attention_rows_pass():
    from accelkit.demo import _check
    from accelkit.demo_attention import attention_checks

    rows = {name: (err, good) for name, _, (err, good) in attention_checks(_check)}
    assert set(rows) == set(ATTENTION_ROWS)
    assert all(good for _, good in rows.values()), rows


def test_demo_check_row_fails_on_wrong_output():
    """The demo's check must be able to fail: the oracle of one op against another op's output."""
    import numpy as np
    import torch

    from accelkit.demo import _check

    err, good = _check(np.zeros(4), torch.full((4,), 1e-3))
    assert err == pytest.approx(1e-3) and not good


def test_demo_prints_decode_section():
    from accelkit.demo_attention import decode_bench

    rows = dict(decode_bench(t=256, repeats=1))
    assert "full size: python bench/run.py decode_attention" in rows["ratio (SDPA / ours)"]
    assert rows["ops.lean_attention"].strip().endswith("ms") and rows["torch SDPA"].strip().endswith("ms")


def test_demo_without_triton_leaves_out_the_triton_rows_and_passes(monkeypatch):
    """`pip install .` after torch, without the kernels extra, has no triton: the CPU rows must still run."""
    from accelkit import demo, demo_attention, demo_fft_rpe, demo_spike_attention, demo_spiking

    def no_triton(module: str) -> bool:
        return module != "triton"

    monkeypatch.setattr(demo, "available", no_triton)
    monkeypatch.setattr(demo_attention, "available", no_triton)
    monkeypatch.setattr(demo_spike_attention, "available", no_triton)
    monkeypatch.setattr(demo_spiking, "available", no_triton)
    monkeypatch.setattr(demo_fft_rpe, "available", no_triton)
    rows = demo._op_checks()
    assert not [row for row in rows if row[1] == "triton"]
    assert {"binary_matmul fwd", "BinaryLinear eval"} <= {row[0] for row in rows}
    assert all(row[-1] == "ok" for row in rows), rows
