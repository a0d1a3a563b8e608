"""Every ResNet-50 layer (batch 1, 224x224, 54 layers) on a 128x128 weight-stationary array: the TPU-v1-like
preset (6 MiB IFMAP and filter SRAMs, 2 MiB OFMAP, 700 MHz) resized from 256x256, in CALC mode (no DRAM stalls)
unless --bandwidth gives words/cycle.

Measures the whole-process wall time of `accelkit sim --network resnet50 ...` (interpreter start, imports, the
simulation and printing the totals) and the in-process time of `simulate`. Goal: under 2 s wall.

The goal is an absolute budget, not a ratio, and SCALE-Sim cannot run these padded layers (it has no padding) nor
finish ~10^6 cycles in reasonable time here, so no peer is run: `peer` and `ratio` are null. For scale only,
`peer_model_s` estimates SCALE-Sim's time as the cycle count divided by 1,157 cycles/s, the rate a SCALE-Sim user
measured for 112,284 cycles in 97 s on a 32x32 array (reference/simulators.md §1.10,
https://github.com/scalesim-project/SCALE-Sim/issues/4); it is a model, never a measurement. The measured
comparison with SCALE-Sim is `python bench/run.py sim_vs_scalesim`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from accelkit.timing import sample_seconds

SCALESIM_CYCLES_PER_S = 112_284 / 97


def _cli_command(bandwidth: str) -> list[str]:
    exe = shutil.which("accelkit", path=str(Path(sys.executable).parent))
    prefix = [exe] if exe else [sys.executable, "-m", "accelkit"]
    array = ["--preset", "tpu_v1", "--rows", "128", "--cols", "128", "--dataflow", "ws", "--bandwidth", bandwidth]
    return [*prefix, "sim", "--network", "resnet50", *array, "--quiet"]


def _wall(command: list[str], repeats: int) -> tuple[float, str]:
    done: list[subprocess.CompletedProcess] = []
    times = sample_seconds(
        lambda: done.append(subprocess.run(command, capture_output=True, text=True, check=True)), repeats
    )
    return statistics.median(times), done[-1].stdout.strip()


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench sim_resnet50")
    parser.add_argument("--bandwidth", default="calc", help="DRAM words/cycle, or 'calc' (default: stall-free)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the median is reported")
    args = parser.parse_args(argv)

    from accelkit.roofline.points import simulated_record
    from accelkit.sim.api import simulate
    from accelkit.sim.hardware import tpu_v1_like

    bandwidth = None if args.bandwidth == "calc" else float(args.bandwidth)
    # The same hardware the CLI builds from `--preset tpu_v1` (its default) and the overrides in _cli_command.
    hw = dataclasses.replace(tpu_v1_like(), rows=128, cols=128, dataflow="ws", dram_bw_words_per_cycle=bandwidth)
    reports = []
    in_process = sample_seconds(lambda: reports.append(simulate("resnet50", hw)), args.repeats)
    report = reports[-1]
    wall, line = _wall(_cli_command(args.bandwidth), args.repeats)
    print(line)
    cycles = report.totals.total_cycles
    if f"{cycles:,} cycles" not in line:
        raise RuntimeError(f"the CLI and in-process runs disagree: {cycles:,} cycles vs {line!r}")
    return {
        "name": "sim_resnet50",
        "metric": "seconds to simulate all 54 ResNet-50 layers, 128x128 WS (lower is better)",
        "memory": "CALC (stall-free)" if bandwidth is None else f"USER, {bandwidth:g} words/cycle",
        "ours": round(wall, 4),
        "ours_kind": "whole-process wall time of the accelkit sim CLI (median)",
        "in_process_s": round(statistics.median(in_process), 4),
        "cycles": cycles,
        "peer": None,
        "ratio": None,
        "peer_model_s": round(cycles / SCALESIM_CYCLES_PER_S, 1),
        "peer_model": "cycles / 1,157 cycles/s, a SCALE-Sim rate reported by a user (simulators.md §1.10); not run",
        "goal_s": 2.0,
        "goal_met": wall < 2.0,
        # The roofline point of the simulated accelerator running ResNet-50 (not of this machine).
        **simulated_record(report),
    }
