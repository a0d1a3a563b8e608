"""The design space: explorable Hardware knobs, constraints on a design and the objectives a sweep reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from accelkit.sim.dse.area import AreaTable
from accelkit.sim.hardware import Hardware

# spec name -> (Hardware field, multiplier from the spec's unit to the field's unit)
PARAMETERS: dict[str, tuple[str, int]] = {
    "rows": ("rows", 1),
    "cols": ("cols", 1),
    "dataflow": ("dataflow", 1),
    "ifmap_sram_kib": ("ifmap_sram_bytes", 1024),
    "filter_sram_kib": ("filter_sram_bytes", 1024),
    "ofmap_sram_kib": ("ofmap_sram_bytes", 1024),
    "dram_bw_words_per_cycle": ("dram_bw_words_per_cycle", 1),
    "clock_mhz": ("clock_mhz", 1),
    "word_bytes": ("word_bytes", 1),
}

# objective -> (result column, +1 to minimise or -1 to maximise)
OBJECTIVES: dict[str, tuple[str, int]] = {
    "latency": ("latency_ms", 1),
    "energy": ("energy_mj", 1),
    "area": ("area_mm2", 1),
    "edp": ("edp_mj_ms", 1),
    "throughput_per_area": ("throughput_per_mm2", -1),
}


class SpecError(ValueError):
    """A spec that cannot be used; the message starts with `file:line: key:`."""


@dataclass(frozen=True)
class Parameter:
    name: str
    values: tuple


def hardware_for(base: Hardware, assignments: Iterable[tuple[str, object]]) -> Hardware:
    """`base` with each (spec parameter, value) applied; Hardware validates the result."""
    fields = {}
    for name, value in assignments:
        field, scale = PARAMETERS[name]
        if scale != 1:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be a whole number of KiB, got {value!r}")
            value = value * scale
        fields[field] = value
    return dataclasses.replace(base, **fields)


def sram_bytes(hw: Hardware) -> int:
    return hw.ifmap_sram_bytes + hw.filter_sram_bytes + hw.ofmap_sram_bytes


@dataclass(frozen=True)
class Constraints:
    """Limits a design must meet to be evaluated; None = no limit."""

    min_pes: float | None = None
    max_pes: float | None = None
    max_sram_kib: float | None = None
    max_area_mm2: float | None = None

    def violation(self, hw: Hardware, area: AreaTable) -> str | None:
        """Why `hw` breaks a limit, or None when it meets them all."""
        if self.min_pes is not None and hw.pes < self.min_pes:
            return f"{hw.pes} PEs < min_pes {self.min_pes:g}"
        if self.max_pes is not None and hw.pes > self.max_pes:
            return f"{hw.pes} PEs > max_pes {self.max_pes:g}"
        kib = sram_bytes(hw) / 1024
        if self.max_sram_kib is not None and kib > self.max_sram_kib:
            return f"{kib:g} KiB of SRAM > max_sram_kib {self.max_sram_kib:g}"
        mm2 = area.area_mm2(hw.pes, sram_bytes(hw), hw.word_bytes)
        if self.max_area_mm2 is not None and mm2 > self.max_area_mm2:
            return f"{mm2:.3g} mm^2 > max_area_mm2 {self.max_area_mm2:g}"
        return None
