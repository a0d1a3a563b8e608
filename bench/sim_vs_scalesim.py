"""`accelkit scalesim` vs scalesim 3.0.0 on the same config and layers, as whole processes (wall seconds).

    SCALESIM_PYTHON=/tmp/scalesim-venv/bin/python python bench/run.py sim_vs_scalesim [--quick]

The layers are the four GEMMs of a transformer block (d_model 512, 4096 tokens) on a 128x128 weight-stationary
array in CALC mode: 860k cycles, about ten minutes of scalesim (570 s here against 0.16 s for accelkit, 3500x),
so that our fixed cost (Python start-up plus the NumPy import, ~0.1 s) does not hide the simulator. `--quick`
runs one small layer (seconds) as a smoke test. scalesim's command line always writes per-cycle traces (its -s
flag is ignored, see sim/README.md); ours writes none unless asked. Both must report identical cycles for every
layer, or the benchmark fails; `identical_reports` says whether all three reports match byte for byte. Ours is
the best of three runs, scalesim's a single run; CPU seconds are reported next to wall seconds because other jobs
may share the machine.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from accelkit.sim.hardware import Hardware
from accelkit.sim.scalesim.config import config_text

FULL = ["qkv, 4096, 1536, 512,", "proj, 4096, 512, 512,", "fc1, 4096, 2048, 512,", "fc2, 4096, 512, 2048,"]
QUICK = ["proj, 1024, 256, 256,"]
REPORTS = ("COMPUTE_REPORT", "BANDWIDTH_REPORT", "DETAILED_ACCESS_REPORT")


# Both simulators run this accelerator: 128x128 WS with 256/256/128 KiB SRAMs in CALC mode.
HARDWARE = Hardware(128, 128, "ws", 256 * 1024, 256 * 1024, 128 * 1024, run_name="bench")


def _ours_command() -> list[str]:
    script = Path(sys.executable).with_name("accelkit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "accelkit.cli"]


def _timed(cmd: list[str], out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process; CPU time is robust to other jobs sharing the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd + ["-p", str(out)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cycles(folder: Path) -> list[tuple[str, str]]:
    rows = (folder / "COMPUTE_REPORT.csv").read_text().splitlines()[1:]
    return [tuple(v.strip() for v in row.split(",")[2:4]) for row in rows]


def _roofline(rows: list[str]) -> dict:
    from accelkit.roofline.points import simulated_record
    from accelkit.sim.api import simulate
    from accelkit.sim.workloads import Gemm

    layers = [Gemm(name, int(m), int(n), int(k)) for name, m, n, k, _ in (row.split(",") for row in rows)]
    return simulated_record(simulate(layers, HARDWARE))


def run(argv: list[str]) -> dict:
    rows = QUICK if "--quick" in argv else FULL
    work = Path(tempfile.mkdtemp(prefix="sim_vs_scalesim."))
    try:
        (work / "bench.cfg").write_text(config_text(HARDWARE))
        (work / "topo.csv").write_text("Layer, M, N, K,\n" + "\n".join(rows) + "\n")
        (work / "layout.csv").write_text("Layer name,\n")
        args = ["-c", str(work / "bench.cfg"), "-t", str(work / "topo.csv"), "-i", "gemm"]
        ours, ours_cpu = min(_timed(_ours_command() + ["scalesim", *args], work / f"ours{i}") for i in range(3))
        ours_cycles = _cycles(work / "ours0" / "bench")
        result = {
            "name": "sim_vs_scalesim",
            "metric": "wall seconds (whole process)",
            "ours": round(ours, 4),
            "ours_cpu": round(ours_cpu, 4),
            "layers": len(rows),
            "total_cycles": sum(int(c[0]) for c in ours_cycles),
            "config": "128x128 ws CALC, 256/256/128 KiB SRAM",
            "peer_writes_traces": True,
            # The roofline point of the simulated accelerator on these GEMMs (CALC mode: no memory roof).
            **_roofline(rows),
        }
        python = os.environ.get("SCALESIM_PYTHON")
        if not python:
            print("SCALESIM_PYTHON is not set: skipping the scalesim peer (set it to a Python with scalesim==3.0.0)")
            return {
                **result,
                "peer": None,
                "ratio": None,
                "peer_cpu": None,
                "cpu_ratio": None,
                "identical_cycles": None,
            }
        print(f"running scalesim on {result['total_cycles']} cycles; this takes a while", flush=True)
        peer_cmd = [python, "-m", "scalesim.scale", *args, "-l", str(work / "layout.csv")]
        peer, peer_cpu = _timed(peer_cmd, work / "peer")
        peer_cycles = _cycles(work / "peer" / "bench")
        if peer_cycles != ours_cycles:
            raise RuntimeError(f"cycles differ: ours {ours_cycles}, scalesim {peer_cycles}")
        same = all(
            (work / "ours0" / "bench" / f"{r}.csv").read_text() == (work / "peer" / "bench" / f"{r}.csv").read_text()
            for r in REPORTS
        )
        return {
            **result,
            "peer": round(peer, 2),
            "ratio": round(peer / ours, 1),
            "peer_cpu": round(peer_cpu, 2),
            "cpu_ratio": round(peer_cpu / ours_cpu, 1),
            "identical_cycles": True,
            "identical_reports": same,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
