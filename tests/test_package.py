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
