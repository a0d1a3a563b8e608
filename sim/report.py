"""The result of a simulation: one `LayerResult` per layer in execution order, network totals and exports.

Every number comes from the engine's `LayerStats`; this module only sums and reshapes them. pandas (an optional
extra) is imported inside `to_pandas` and rich inside `__rich__`, so reading a report costs nothing but the
standard library. `str(report)` is a plain-text table; rich renders the same table (`rich.print(report)`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelkit.sim.engine import LayerStats
from accelkit.sim.hardware import Hardware
from accelkit.sim.workloads import Conv, Gemm

TABLE_HEADERS = ("layer", "cycles", "stalls", "util %", "map eff %", "energy uJ", "DRAM KB")


def write_files(contents: dict[Path, str]) -> None:
    """Write every file or none: each text goes to a temporary file beside its path first, and the temporaries are
    renamed into place only once all are written, so a failure leaves no partial file (and existing ones untouched).
    """
    # A unique name opened with "x" rather than mkstemp: the file gets the usual umask permissions, not 0600.
    temporaries = {Path(path): Path(path).with_name(f".{Path(path).name}.{uuid.uuid4().hex}.tmp") for path in contents}
    try:
        for path, tmp in temporaries.items():
            with tmp.open("x", newline="") as handle:
                handle.write(contents[path])
        for path, tmp in temporaries.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temporaries.values():
            tmp.unlink(missing_ok=True)
        raise


def dram_words(stats: LayerStats) -> int:
    """Words moved between DRAM and the SRAMs: operand fills, output drains and partial sums read back."""
    return stats.ifmap_dram_reads + stats.filter_dram_reads + stats.ofmap_dram_writes + stats.ofmap_dram_reads


def sram_words(stats: LayerStats) -> int:
    return stats.ifmap_sram_reads + stats.filter_sram_reads + stats.ofmap_sram_writes


@dataclass(frozen=True)
class LayerResult:
    """One simulated layer. `verified_folds` is the number of folds functional mode pushed real data through
    and checked against the NumPy oracle, or None when functional mode was off."""

    name: str
    layer: Gemm | Conv
    stats: LayerStats
    verified_folds: int | None = None


@dataclass(frozen=True)
class Totals:
    """Sums over a network; utilization is MACs over cycles x PEs of the whole run, not a mean of layers."""

    layers: int
    macs: int
    total_cycles: int
    compute_cycles: int
    stall_cycles: int
    overall_util_pct: float
    energy_pj: float
    dram_words: int
    sram_words: int
    latency_ms: float
    dram_bytes: int


def _layer_shape(layer: Gemm | Conv) -> dict[str, Any]:
    if isinstance(layer, Gemm):
        return {"kind": "gemm", "m": layer.m, "n": layer.n, "k": layer.k, "groups": 1}
    return {"kind": "conv", "m": layer.gemm_m, "n": layer.gemm_n, "k": layer.gemm_k, "groups": layer.groups}


@dataclass(frozen=True)
class Report:
    """Per-layer results of one run of `hardware` in `mode`, in execution order."""

    hardware: Hardware
    mode: str
    accumulate_on_chip: bool
    layers: tuple[LayerResult, ...]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def totals(self) -> Totals:
        stats = [result.stats for result in self.layers]
        macs = sum(s.macs for s in stats)
        cycles = sum(s.total_cycles for s in stats)
        words = sum(dram_words(s) for s in stats)
        return Totals(
            layers=len(stats),
            macs=macs,
            total_cycles=cycles,
            compute_cycles=sum(s.compute_cycles for s in stats),
            stall_cycles=sum(s.stall_cycles for s in stats),
            overall_util_pct=100.0 * macs / (cycles * self.hardware.pes) if cycles else 0.0,
            energy_pj=sum(s.total_energy_pj for s in stats),
            dram_words=words,
            sram_words=sum(sram_words(s) for s in stats),
            latency_ms=cycles / (self.hardware.clock_mhz * 1e3),
            dram_bytes=words * self.hardware.word_bytes,
        )

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per layer: name, GEMM shape, every LayerStats field, energy and DRAM traffic."""
        out = []
        for result in self.layers:
            row = {"layer": result.name, **_layer_shape(result.layer)}
            row.update(dataclasses.asdict(result.stats))
            row.pop("name")
            row["total_energy_pj"] = result.stats.total_energy_pj
            row["dram_words"] = dram_words(result.stats)
            row["verified_folds"] = result.verified_folds
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "hardware": dataclasses.asdict(self.hardware),
            "mode": self.mode,
            "accumulate_on_chip": self.accumulate_on_chip,
            "totals": dataclasses.asdict(self.totals),
            "layers": self.rows(),
        }

    def to_json(self, path: str | Path) -> Path:
        write_files({Path(path): self.json_text()})
        return Path(path)

    def json_text(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_csv(self, path: str | Path) -> Path:
        """Write one row per layer (the columns of `rows()`); totals are not a row, so the file sums cleanly."""
        write_files({Path(path): self.csv_text()})
        return Path(path)

    def csv_text(self) -> str:
        rows = self.rows()
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["layer"])
        writer.writeheader()
        writer.writerows(rows)
        return text.getvalue()

    def to_pandas(self):
        """The per-layer rows as a pandas DataFrame indexed by layer name (needs the `pandas` extra)."""
        from accelkit._optional import require

        pd = require("pandas", feature="Report.to_pandas()")
        return pd.DataFrame(self.rows()).set_index("layer")

    def summary(self) -> str:
        """One line: layers, array, mode, cycles, latency at the clock, stalls, utilization, energy, DRAM traffic."""
        t = self.totals
        hw = self.hardware
        return (
            f"{t.layers} layers on {hw.rows}x{hw.cols} {hw.dataflow.upper()} ({self.mode}): {t.total_cycles:,} "
            f"cycles ({t.latency_ms:,.3f} ms at {hw.clock_mhz:g} MHz), {t.stall_cycles:,} stalls, "
            f"util {t.overall_util_pct:.1f}%, {t.energy_pj / 1e9:,.3f} mJ, DRAM {t.dram_bytes / 1e6:,.2f} MB"
        )

    def table(self) -> tuple[list[str], list[list[str]], list[str]]:
        """(headers, one row of formatted cells per layer, totals row): what `str()` and rich both draw."""
        t = self.totals
        rows = []
        for result in self.layers:
            s = result.stats
            rows.append(
                [
                    result.name,
                    f"{s.total_cycles:,}",
                    f"{s.stall_cycles:,}",
                    f"{s.overall_util_pct:.1f}",
                    f"{s.mapping_efficiency_pct:.1f}",
                    f"{s.total_energy_pj / 1e6:,.1f}",
                    f"{dram_words(s) * self.hardware.word_bytes / 1e3:,.1f}",
                ]
            )
        totals = [
            "total",
            f"{t.total_cycles:,}",
            f"{t.stall_cycles:,}",
            f"{t.overall_util_pct:.1f}",
            "",
            f"{t.energy_pj / 1e6:,.1f}",
            f"{t.dram_bytes / 1e3:,.1f}",
        ]
        return list(TABLE_HEADERS), rows, totals

    def __str__(self) -> str:
        headers, rows, totals = self.table()
        widths = [max(len(row[i]) for row in (headers, *rows, totals)) for i in range(len(headers))]

        def line(cells: list[str]) -> str:
            # The layer name is left-aligned, numbers right-aligned, as in the rich table.
            padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
            return "  ".join(padded)

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(headers), rule, *map(line, rows), rule, line(totals), self.summary()])

    def __rich__(self):
        """`rich_table()` then the summary line, for `rich.print(report)`."""
        from rich.console import Group

        return Group(self.rich_table(), self.summary())

    def rich_table(self):
        """A rich Table of the layers with a totals footer (rich is imported only here)."""
        from rich.table import Table

        headers, rows, totals = self.table()
        table = Table(show_footer=True)
        for i, (header, footer) in enumerate(zip(headers, totals, strict=True)):
            table.add_column(header, footer=footer, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        return table
