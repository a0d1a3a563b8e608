"""Evaluating designs: the worker task (simulate the layers a design still lacks) and the per-design metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accelkit.sim.dse.area import AreaTable
from accelkit.sim.dse.cache import LAYER_COLUMNS, hardware_key, layer_key
from accelkit.sim.dse.layers import Workload
from accelkit.sim.dse.space import sram_bytes
from accelkit.sim.engine import simulate_layer
from accelkit.sim.hardware import Hardware
from accelkit.sim.report import dram_words, sram_words
from accelkit.sim.workloads import Conv, Gemm

_COLUMN = {name: index for index, name in enumerate(LAYER_COLUMNS)}
ENERGY_COLUMNS = tuple(name for name in LAYER_COLUMNS if name.endswith("_energy_pj"))


@dataclass(frozen=True)
class Shapes:
    """The workloads' layers reduced to unique shapes: `unique` maps a layer key to one layer of that shape, and
    `keys[w]` lists workload w's layer keys in order (repeats included)."""

    unique: dict[str, Gemm | Conv]
    keys: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, workloads: Sequence[Workload]) -> Shapes:
        unique: dict[str, Gemm | Conv] = {}
        keys = []
        for workload in workloads:
            names = []
            for layer in workload.layers:
                key = layer_key(layer)
                unique.setdefault(key, layer)
                names.append(key)
            keys.append((workload.name, tuple(names)))
        return cls(unique, tuple(keys))


# A task: the mode and, per design, (hardware, its key, the (layer key, layer) pairs it still lacks).
Task = tuple[str, tuple[tuple[Hardware, str, tuple[tuple[str, Gemm | Conv], ...]], ...]]


def simulate_task(task: Task) -> list[tuple[str, str, tuple]]:
    """Run in a worker: simulate every missing layer of every design in the task; (hw key, layer key, row)."""
    mode, designs = task
    out = []
    for hw, hw_key, layers in designs:
        for key, layer in layers:
            stats = simulate_layer(layer, hw, mode=mode)
            row = (
                stats.macs,
                stats.total_cycles,
                stats.compute_cycles,
                stats.stall_cycles,
                dram_words(stats),
                sram_words(stats),
                stats.mac_energy_pj,
                stats.ifmap_energy_pj,
                stats.filter_energy_pj,
                stats.ofmap_energy_pj,
            )
            out.append((hw_key, key, row))
    return out


def design_metrics(
    hw: Hardware, shapes: Shapes, rows: dict[tuple[str, str], tuple], area: AreaTable
) -> dict[str, float]:
    """A design's objectives and totals from its layer rows. Workloads run one after another, so latency and
    energy add up over them; throughput per area is complete passes over all workloads per second per mm^2."""
    hw_key = hardware_key(hw)
    out: dict[str, float] = {}
    cycles = energy = macs = stalls = dram = 0.0
    for name, keys in shapes.keys:
        w_cycles = w_energy = 0.0
        for key in keys:
            row = rows[hw_key, key]
            w_cycles += row[_COLUMN["total_cycles"]]
            w_energy += sum(row[_COLUMN[c]] for c in ENERGY_COLUMNS)
            macs += row[_COLUMN["macs"]]
            stalls += row[_COLUMN["stall_cycles"]]
            dram += row[_COLUMN["dram_words"]]
        out[f"{name}.latency_ms"] = w_cycles / (hw.clock_mhz * 1e3)
        out[f"{name}.energy_mj"] = w_energy / 1e9
        cycles += w_cycles
        energy += w_energy
    mm2 = area.area_mm2(hw.pes, sram_bytes(hw), hw.word_bytes)
    latency_ms = cycles / (hw.clock_mhz * 1e3)
    out.update(
        pes=hw.pes,
        sram_kib=sram_bytes(hw) / 1024,
        area_mm2=mm2,
        latency_ms=latency_ms,
        energy_mj=energy / 1e9,
        edp_mj_ms=energy / 1e9 * latency_ms,
        throughput_per_mm2=1e3 / latency_ms / mm2,
        util_pct=100.0 * macs / (cycles * hw.pes),
        stall_pct=100.0 * stalls / cycles,
        dram_mb=dram * hw.word_bytes / 1e6,
    )
    return out


def layer_breakdown(hw: Hardware, workloads: Sequence[Workload], rows: dict[tuple[str, str], tuple]) -> list[dict]:
    """One dict per layer of every workload on `hw`: cycles (compute and stalls) and energy by component."""
    hw_key = hardware_key(hw)
    out = []
    for workload in workloads:
        for layer in workload.layers:
            row = rows[hw_key, layer_key(layer)]
            entry = {"workload": workload.name, "layer": layer.name}
            entry.update({name: row[index] for index, name in enumerate(LAYER_COLUMNS)})
            out.append(entry)
    return out
