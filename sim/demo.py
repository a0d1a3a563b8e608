"""The simulator's part of `accelkit demo`: ResNet-50 and BERT-base on the TPU-v1-like and Eyeriss-like presets,
side by side."""

from __future__ import annotations

import time
from collections.abc import Callable

from accelkit.sim.api import simulate

NETWORKS = ("resnet50", "bert_base")
PRESETS = ("tpu_v1", "eyeriss")
_HEADER = ("network", "preset", "array", "cycles", "latency ms", "util %", "energy mJ", "DRAM MB")


def _row(network: str, preset: str) -> tuple[str, ...]:
    report = simulate(network, preset)
    t, hw = report.totals, report.hardware
    return (
        network,
        preset,
        f"{hw.rows}x{hw.cols} {hw.dataflow.upper()}",
        f"{t.total_cycles:,}",
        f"{t.latency_ms:,.2f}",
        f"{t.overall_util_pct:.1f}",
        f"{t.energy_pj / 1e9:,.2f}",
        f"{t.dram_bytes / 1e6:,.1f}",
    )


def _format(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    # Text columns (the first three) read left-aligned, numbers right-aligned.
    return [
        "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]


def run(echo: Callable[[str], None]) -> None:
    """Simulate both networks on both presets (native mode, batch 1, BERT at 512 tokens) and echo a table."""
    start = time.perf_counter()
    rows = [_HEADER, *(_row(network, preset) for network in NETWORKS for preset in PRESETS)]
    elapsed = time.perf_counter() - start
    echo("accelkit.sim: cycle-level systolic-array simulation (native mode, batch 1, BERT seq 512)")
    for line in _format(rows):
        echo(line)
    echo(f"{len(NETWORKS) * len(PRESETS)} simulations in {elapsed:.2f} s")
