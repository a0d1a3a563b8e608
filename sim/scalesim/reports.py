"""SCALE-Sim 3.0.0's three CSV reports, byte for byte: same headers, trailing commas and number formatting.

SCALE-Sim prints Python's str() of each value, so the type decides the text: cycle columns of the detailed report
come out of float matrices ("29.0"), counts are ints ("1040"), utilizations and bandwidths are floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from accelkit.sim.engine import LayerStats

COMPUTE_HEADER = (
    "LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, Overall Util %, "
    "Mapping Efficiency %, Compute Util %,\n"
)
BANDWIDTH_HEADER = (
    "LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, Avg IFMAP DRAM BW, "
    "Avg FILTER DRAM BW, Avg OFMAP DRAM BW,\n"
)
DETAIL_HEADER = (
    "LayerID, "
    "SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, "
    "SRAM Filter Start Cycle, SRAM Filter Stop Cycle, SRAM Filter Reads, "
    "SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, SRAM OFMAP Writes, "
    "DRAM IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, "
    "DRAM Filter Start Cycle, DRAM Filter Stop Cycle, DRAM Filter Reads, "
    "DRAM OFMAP Start Cycle, DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,\n"
)


def _row(layer_id: int, items: Sequence[object]) -> str:
    return f"{layer_id}, " + ", ".join(str(x) for x in items) + ",\n"


def compute_items(s: LayerStats) -> list[object]:
    return [
        int(s.total_cycles_incl_prefetch),
        int(s.total_cycles),
        int(s.stall_cycles),
        float(s.overall_util_pct),
        float(s.mapping_efficiency_pct),
        float(s.compute_util_pct),
    ]


def bandwidth_items(s: LayerStats) -> list[object]:
    return [
        float(x)
        for x in (
            s.avg_ifmap_sram_bw,
            s.avg_filter_sram_bw,
            s.avg_ofmap_sram_bw,
            s.avg_ifmap_dram_bw,
            s.avg_filter_dram_bw,
            s.avg_ofmap_dram_bw,
        )
    ]


def detail_items(s: LayerStats) -> list[object]:
    items: list[object] = []
    for prefix, count in (
        ("ifmap_sram", s.ifmap_sram_reads),
        ("filter_sram", s.filter_sram_reads),
        ("ofmap_sram", s.ofmap_sram_writes),
        ("ifmap_dram", s.ifmap_dram_reads),
        ("filter_dram", s.filter_dram_reads),
        ("ofmap_dram", s.ofmap_dram_writes),
    ):
        start = getattr(s, f"{prefix}_start_cycle")
        stop = getattr(s, f"{prefix}_stop_cycle")
        items += [float(start), float(stop), int(count)]
    return items


def write_reports(stats: Sequence[LayerStats], folder: Path) -> None:
    """Write COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and DETAILED_ACCESS_REPORT.csv into `folder`."""
    files = (
        ("COMPUTE_REPORT.csv", COMPUTE_HEADER, compute_items),
        ("BANDWIDTH_REPORT.csv", BANDWIDTH_HEADER, bandwidth_items),
        ("DETAILED_ACCESS_REPORT.csv", DETAIL_HEADER, detail_items),
    )
    for name, header, items in files:
        text = header + "".join(_row(i, items(s)) for i, s in enumerate(stats))
        (folder / name).write_text(text)
