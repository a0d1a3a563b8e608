"""Accelerator descriptions: a systolic array, its three operand SRAMs, DRAM bandwidth and an energy table.

Everything is a frozen dataclass validated on construction, so a bad description fails where it is written, with
the field named, instead of deep inside a simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DATAFLOWS = ("os", "ws", "is")


def _check_positive(obj: object, names: tuple[str, ...], *, integer: bool) -> None:
    for name in names:
        value = getattr(obj, name)
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(
                f"{type(obj).__name__}.{name} must be {'an int' if integer else 'a number'}, got {value!r}"
            )
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{type(obj).__name__}.{name} must be positive and finite, got {value!r}")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action in picojoules, for 8-bit words (SCALE-Sim's word is one byte).

    Defaults are from M. Horowitz, "Computing's Energy Problem (and what we can do about it)", ISSCC 2014,
    45 nm, 0.9 V:
    - mac_pj = 0.2 (8-bit integer multiply) + 0.03 (8-bit integer add) = 0.23 pJ.
    - sram_read_pj_per_word = 20 pJ per 64-bit read of a 32 KB SRAM / 8 words = 2.5 pJ. The talk gives reads
      only; writes are assumed to cost the same.
    - dram_pj_per_word = 2.6 nJ per 64-bit DRAM access (the upper end of the quoted 1.3-2.6 nJ) / 8 = 325 pJ.
    """

    mac_pj: float = 0.23
    sram_read_pj_per_word: float = 2.5
    sram_write_pj_per_word: float = 2.5
    dram_pj_per_word: float = 325.0

    def __post_init__(self) -> None:
        _check_positive(
            self, ("mac_pj", "sram_read_pj_per_word", "sram_write_pj_per_word", "dram_pj_per_word"), integer=False
        )


@dataclass(frozen=True)
class Hardware:
    """A rows x cols systolic array with double-buffered IFMAP, filter and OFMAP SRAMs in front of DRAM.

    `dram_bw_words_per_cycle=None` is SCALE-Sim's CALC mode: memory never stalls and the reports give the
    bandwidth a stall-free run needs. A number is USER mode: prefetches and drains move that many words per cycle
    and the array stalls when they fall behind. SCALE-Sim 3.0.0 takes the IFMAP and filter read bandwidths from
    its [layout] section (`IfmapSRAMBankBandwidth`, `FilterSRAMBankBandwidth`); set them with the two
    per-operand fields, which default to `dram_bw_words_per_cycle`.

    Offsets are the base word addresses of each operand in the traces, as in SCALE-Sim's configs.
    """

    rows: int
    cols: int
    dataflow: str = "ws"
    ifmap_sram_bytes: int = 64 * 1024
    filter_sram_bytes: int = 64 * 1024
    ofmap_sram_bytes: int = 64 * 1024
    word_bytes: int = 1
    dram_bw_words_per_cycle: float | None = None
    ifmap_dram_bw_words_per_cycle: float | None = None
    filter_dram_bw_words_per_cycle: float | None = None
    clock_mhz: float = 1000.0
    energy: EnergyTable = field(default_factory=EnergyTable)
    ifmap_offset: int = 0
    filter_offset: int = 10_000_000
    ofmap_offset: int = 20_000_000
    run_name: str = "accelkit_run"

    def __post_init__(self) -> None:
        _check_positive(
            self,
            ("rows", "cols", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "word_bytes"),
            integer=True,
        )
        _check_positive(self, ("clock_mhz",), integer=False)
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"Hardware.dataflow must be one of {DATAFLOWS}, got {self.dataflow!r}")
        for name in ("dram_bw_words_per_cycle", "ifmap_dram_bw_words_per_cycle", "filter_dram_bw_words_per_cycle"):
            if getattr(self, name) is not None:
                _check_positive(self, (name,), integer=False)
        if self.dram_bw_words_per_cycle is None and (
            self.ifmap_dram_bw_words_per_cycle is not None or self.filter_dram_bw_words_per_cycle is not None
        ):
            raise ValueError("Hardware.dram_bw_words_per_cycle must be set when a per-operand bandwidth is set")
        for name in ("ifmap_offset", "filter_offset", "ofmap_offset"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Hardware.{name} must be a non-negative int, got {value!r}")
        if not isinstance(self.energy, EnergyTable):
            raise ValueError(f"Hardware.energy must be an EnergyTable, got {type(self.energy).__name__}")
        if not isinstance(self.run_name, str) or not self.run_name.strip():
            raise ValueError(f"Hardware.run_name must be a non-empty string, got {self.run_name!r}")

    @property
    def calc_mode(self) -> bool:
        """True in CALC (estimate-bandwidth) mode: no DRAM bandwidth given, no memory stalls."""
        return self.dram_bw_words_per_cycle is None

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    def sram_words(self, operand: str) -> int:
        """Capacity of one operand SRAM in words (both halves of the double buffer)."""
        return getattr(self, f"{operand}_sram_bytes") // self.word_bytes

    def read_bw(self, operand: str) -> float | None:
        """DRAM words per cycle feeding the `ifmap` or `filter` SRAM; None in CALC mode."""
        own = getattr(self, f"{operand}_dram_bw_words_per_cycle")
        return own if own is not None else self.dram_bw_words_per_cycle


def tpu_v1_like() -> Hardware:
    """A 256x256 weight-stationary array at 700 MHz with 34 GB/s of DRAM (N. Jouppi et al., "In-Datacenter
    Performance Analysis of a Tensor Processing Unit", ISCA 2017, Table 2), with the SRAM split of SCALE-Sim's
    configs/google.cfg (6144 KiB IFMAP, 6144 KiB filter, 2048 KiB OFMAP). 34e9 B/s / 700e6 Hz = 48.6 bytes/cycle.
    """
    return Hardware(
        rows=256,
        cols=256,
        dataflow="ws",
        ifmap_sram_bytes=6144 * 1024,
        filter_sram_bytes=6144 * 1024,
        ofmap_sram_bytes=2048 * 1024,
        dram_bw_words_per_cycle=34e9 / 700e6,
        clock_mhz=700.0,
        run_name="tpu_v1_like",
    )


def eyeriss_like() -> Hardware:
    """A 12x14 array at 200 MHz (Y.-H. Chen et al., "Eyeriss: An Energy-Efficient Reconfigurable Accelerator for
    Deep Convolutional Neural Networks", JSSC 2017: 168 PEs, 108 KB global buffer, 200 MHz), with the 3 x 36 KiB
    split and weight-stationary dataflow of SCALE-Sim's configs/eyeriss.cfg. No DRAM bandwidth: CALC mode.
    """
    return Hardware(
        rows=12,
        cols=14,
        dataflow="ws",
        ifmap_sram_bytes=36 * 1024,
        filter_sram_bytes=36 * 1024,
        ofmap_sram_bytes=36 * 1024,
        clock_mhz=200.0,
        run_name="eyeriss_like",
    )
