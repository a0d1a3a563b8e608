"""Accelerator descriptions: a systolic array, its three operand SRAMs, DRAM bandwidth and an energy table.

Everything is a frozen dataclass validated on construction, so a bad description fails where it is written, with
the field named, instead of deep inside a simulation.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass, field

from accelkit.sim.workloads import MAX_SIZE, check_int, show_int

DATAFLOWS = ("os", "ws", "is")


# Lower bounds that keep every count a float can hold (sizes are at most 2^63 - 1, sim/workloads.py): below one
# word per 10^6 cycles a layer's cycle count grows past 10^6 x its words, and a clock under 1 Hz makes latencies
# overflow. Neither describes real hardware (SCALE-Sim's bandwidths are whole words per cycle, >= 1).
MIN_DRAM_BW_WORDS_PER_CYCLE = 1e-6
MIN_CLOCK_MHZ = 1e-6
# An action costing more than 1 J (10^12 pJ) is a unit mistake, and MACs x pJ must stay a finite float.
MAX_ENERGY_PJ = 1e12


def _number(obj: object, name: str, *, integer: bool) -> int | float:
    """A field's value as a plain int (NumPy integers accepted) or, unless `integer`, a float; bools refused."""
    value = getattr(obj, name)
    owner = type(obj).__name__
    if isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be {'an int' if integer else 'a number'}, got {value!r}")
    if isinstance(value, numbers.Integral):
        return operator.index(value)
    if not integer and isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{owner}.{name} must be a finite number, got one too large for a float") from None
    kind = "an int" if integer else "a number"
    raise TypeError(f"{owner}.{name} must be {kind}, got {type(value).__name__} {value!r}")


def _check_positive(obj: object, names: tuple[str, ...], *, integer: bool, minimum: float = 0, maximum=None) -> None:
    for name in names:
        value = _number(obj, name, integer=integer)
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"{type(obj).__name__}.{name} must be positive and finite, got {value!r}")
        top = maximum if maximum is not None else (MAX_SIZE if integer else math.inf)
        if not minimum <= value <= top:
            low = 1 if integer else f"{minimum:g}"
            got = show_int(value) if isinstance(value, int) else repr(value)
            raise ValueError(f"{type(obj).__name__}.{name} must be in [{low}, {top}], got {got}")
        object.__setattr__(obj, name, value)


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
            self,
            ("mac_pj", "sram_read_pj_per_word", "sram_write_pj_per_word", "dram_pj_per_word"),
            integer=False,
            maximum=MAX_ENERGY_PJ,
        )


def words_per_cycle(bytes_per_s: float, clock_mhz: float, word_bytes: int = 1) -> float:
    """A datasheet bandwidth in bytes per second as words per cycle of a `clock_mhz` clock."""
    return bytes_per_s / (clock_mhz * 1e6 * word_bytes)


@dataclass(frozen=True)
class Hardware:
    """A rows x cols systolic array with double-buffered IFMAP, filter and OFMAP SRAMs in front of DRAM.

    `dram_bw_words_per_cycle=None` is SCALE-Sim's CALC mode: memory never stalls and the reports give the
    bandwidth a stall-free run needs. A number is USER mode, and what it means depends on the mode:

    - native: the total bandwidth of ONE DRAM channel that the IFMAP and filter prefetches, the OFMAP drains and
      the partial-sum reads share; words moved never exceed `dram_bw_words_per_cycle` x cycles.
    - compat: SCALE-Sim 3.0.0's `Bandwidth`, given to each operand separately (a GEMM can move up to 3x it).
      SCALE-Sim 3.0.0 takes the IFMAP and filter read bandwidths from its [layout] section
      (`IfmapSRAMBankBandwidth`, `FilterSRAMBankBandwidth`): `ifmap_dram_bw_words_per_cycle` and
      `filter_dram_bw_words_per_cycle` hold them (default: `dram_bw_words_per_cycle`); native mode ignores them.

    `words_per_cycle(bytes_per_s, clock_mhz, word_bytes)` converts a datasheet figure. Offsets are the base word
    addresses of each operand in the traces, as in SCALE-Sim's configs.
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
        _check_positive(self, ("clock_mhz",), integer=False, minimum=MIN_CLOCK_MHZ)
        if not isinstance(self.dataflow, str) or self.dataflow not in DATAFLOWS:
            raise ValueError(f"Hardware.dataflow must be one of {DATAFLOWS}, got {self.dataflow!r}")
        self._check_bandwidths()
        for name in ("ifmap_offset", "filter_offset", "ofmap_offset"):
            object.__setattr__(self, name, check_int("Hardware", name, getattr(self, name), minimum=0))
        if not isinstance(self.energy, EnergyTable):
            raise TypeError(f"Hardware.energy must be an EnergyTable, got {type(self.energy).__name__}")
        if not isinstance(self.run_name, str) or not self.run_name.strip():
            raise ValueError(f"Hardware.run_name must be a non-empty string, got {self.run_name!r}")

    def _check_bandwidths(self) -> None:
        names = ("dram_bw_words_per_cycle", "ifmap_dram_bw_words_per_cycle", "filter_dram_bw_words_per_cycle")
        for name in names:
            if getattr(self, name) is not None:
                _check_positive(self, (name,), integer=False, minimum=MIN_DRAM_BW_WORDS_PER_CYCLE)
        if self.dram_bw_words_per_cycle is None and (
            self.ifmap_dram_bw_words_per_cycle is not None or self.filter_dram_bw_words_per_cycle is not None
        ):
            raise ValueError("Hardware.dram_bw_words_per_cycle must be set when a per-operand bandwidth is set")

    @property
    def calc_mode(self) -> bool:
        """True in CALC (estimate-bandwidth) mode: no DRAM bandwidth given, no memory stalls."""
        return self.dram_bw_words_per_cycle is None

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def dram_bw_bytes_per_s(self) -> float | None:
        """`dram_bw_words_per_cycle` in bytes per second at `clock_mhz` (None in CALC mode)."""
        if self.dram_bw_words_per_cycle is None:
            return None
        return self.dram_bw_words_per_cycle * self.word_bytes * self.clock_mhz * 1e6

    def sram_words(self, operand: str) -> int:
        """Capacity of one operand SRAM in words (both halves of the double buffer)."""
        return getattr(self, f"{operand}_sram_bytes") // self.word_bytes

    def read_bw(self, operand: str) -> float | None:
        """Compat mode: DRAM words per cycle feeding the `ifmap` or `filter` SRAM; None in CALC mode."""
        own = getattr(self, f"{operand}_dram_bw_words_per_cycle")
        return own if own is not None else self.dram_bw_words_per_cycle


# N. Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing Unit", ISCA 2017, Table 2:
# 700 MHz, 34 GB/s of DDR3 in total (two DDR3-2133 channels), 256x256 8-bit MACs.
TPU_V1_DRAM_BYTES_PER_S = 34e9
TPU_V1_CLOCK_MHZ = 700.0


def tpu_v1_like() -> Hardware:
    """A 256x256 weight-stationary array at 700 MHz with 34 GB/s of DRAM in total (Jouppi et al., ISCA 2017,
    Table 2), with the SRAM split of SCALE-Sim's configs/google.cfg (6144 KiB IFMAP, 6144 KiB filter, 2048 KiB
    OFMAP). 34e9 B/s / 700e6 Hz = 48.6 one-byte words per cycle, shared by all operands in native mode. (On the
    real chip that DRAM holds the weights and activations arrive over PCIe; one shared channel is the model.)
    Compat mode reads the same figure as SCALE-Sim's per-operand `Bandwidth` and needs a whole number.
    """
    return Hardware(
        rows=256,
        cols=256,
        dataflow="ws",
        ifmap_sram_bytes=6144 * 1024,
        filter_sram_bytes=6144 * 1024,
        ofmap_sram_bytes=2048 * 1024,
        dram_bw_words_per_cycle=words_per_cycle(TPU_V1_DRAM_BYTES_PER_S, TPU_V1_CLOCK_MHZ),
        clock_mhz=TPU_V1_CLOCK_MHZ,
        run_name="tpu_v1_like",
    )


def eyeriss_like() -> Hardware:
    """A 12x14 array at 200 MHz (Y.-H. Chen et al., "Eyeriss: An Energy-Efficient Reconfigurable Accelerator for
    Deep Convolutional Neural Networks", JSSC 2017: 168 PEs, 108 KB global buffer, 200 MHz), with the 3 x 36 KiB
    split and weight-stationary dataflow of SCALE-Sim's configs/eyeriss.cfg. No DRAM bandwidth (CALC mode): no
    sourced total off-chip bandwidth was found to set it from.
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


PRESETS = {"tpu_v1": tpu_v1_like, "eyeriss": eyeriss_like}


def resolve_hardware(hardware: Hardware | str) -> Hardware:
    """A Hardware as given, or a preset by name ("tpu_v1", "eyeriss"; case, a "_like" suffix and "-" for "_"
    are accepted)."""
    if isinstance(hardware, Hardware):
        return hardware
    if isinstance(hardware, str):
        key = hardware.strip().lower().replace("-", "_").removesuffix("_like")
        if key in PRESETS:
            return PRESETS[key]()
        raise ValueError(f"hardware: unknown preset {hardware!r}; choose one of {', '.join(PRESETS)}")
    raise TypeError(f"hardware must be a Hardware or a preset name, got {type(hardware).__name__}")
