"""One layer through one accelerator: `simulate_layer` and the fold schedule it is built on.

Two modes share the fold geometry of sim/compute.py:
- "compat" reproduces scalesim 3.0.0 number for number (sim/scalesim/memory.py), quirks included;
- "native" fixes what SCALE-Sim gets wrong or lacks (sim/memory.py): the paper's 2R + C + T - 2 cycles for OS,
  no phantom OFMAP writes, optional on-chip accumulation of partial sums, batch, padding and grouped convolution.
sim/README.md lists every difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from accelkit.sim.compute import cycles_per_fold, fold_counts, spatial_dims
from accelkit.sim.hardware import Hardware, resolve_hardware
from accelkit.sim.workloads import Conv, Gemm, check_int

MODES = ("native", "compat")


@dataclass(frozen=True)
class Fold:
    """One fold of C[M,N] = A[M,K] B[K,N]: the PEs compute C[m0:m1, n0:n1] += A[m0:m1, k0:k1] B[k0:k1, n0:n1].

    `cycles` is the fold's stall-free duration; `first` is True for the first fold of a new output tile (the
    partial sums in C[m0:m1, n0:n1] start from zero there), `last` for the fold that completes it.
    """

    index: int
    m0: int
    m1: int
    n0: int
    n1: int
    k0: int
    k1: int
    cycles: int
    first: bool
    last: bool


def fold_schedule(m: int, n: int, k: int, hw: Hardware | str, *, mode: str = "native") -> Iterator[Fold]:
    """The folds of GEMM C[m,n] = A[m,k] B[k,n] on `hw`, in execution order.

    Contract: the folds partition the (m, n, k) iteration space exactly once, so accumulating
    `C[f.m0:f.m1, f.n0:f.n1] += A[f.m0:f.m1, f.k0:f.k1] @ B[f.k0:f.k1, f.n0:f.n1]` over all folds gives A @ B.
    Column folds are outermost and row folds inner (SCALE-Sim's order). The dimension that streams through time
    (K for os, M for ws, N for is) is never split, so its range is the full [0, dim). Each fold's `cycles` is
    what `simulate_layer` charges for it. For a GEMM, `LayerStats.compute_cycles` is sum(f.cycles) in native mode
    and sum(f.cycles) - 1 in compat mode (SCALE-Sim reports the index of its last demand row, not a count).
    """
    _check_mode(mode)
    m, n, k = (check_int("fold_schedule", name, value, minimum=1) for name, value in zip("mnk", (m, n, k), strict=True))
    if not isinstance(hw, (Hardware, str)):
        raise TypeError(f"hw must be a Hardware or a preset name, got {type(hw).__name__}")
    # Checked here, not at the first next(): the folds themselves come from a generator.
    return _folds(m, n, k, resolve_hardware(hw), mode)


def _folds(m: int, n: int, k: int, hw: Hardware, mode: str) -> Iterator[Fold]:
    sr, sc, t = spatial_dims(m, n, k, hw.dataflow)
    row_folds, col_folds = fold_counts(sr, sc, hw.rows, hw.cols)
    cycles = cycles_per_fold(hw.rows, hw.cols, t, hw.dataflow, mode == "compat")
    # Generated fold by fold (no arrays): a huge layer's schedule costs memory only for the folds consumed.
    for i in range(row_folds * col_folds):
        r0, c0 = (i % row_folds) * hw.rows, (i // row_folds) * hw.cols
        r1, c1 = min(r0 + hw.rows, sr), min(c0 + hw.cols, sc)
        if hw.dataflow == "os":
            box = (r0, r1, c0, c1, 0, k)
        elif hw.dataflow == "ws":
            box = (0, m, c0, c1, r0, r1)
        else:
            box = (c0, c1, 0, n, r0, r1)
        k_split = hw.dataflow != "os"
        first = not k_split or r0 == 0
        last = not k_split or r1 == sr
        yield Fold(i, *box, cycles=cycles, first=first, last=last)


@dataclass(frozen=True)
class LayerStats:
    """Everything SCALE-Sim's COMPUTE, BANDWIDTH and DETAILED_ACCESS reports carry for one layer, plus energy.

    Cycles count from the first demand at cycle 0; DRAM start cycles are negative when data is prefetched before
    compute starts. Counts are words. Bandwidths are words per cycle. Energies are picojoules.
    """

    name: str
    dataflow: str
    mode: str
    macs: int
    folds: int
    compute_cycles: int
    total_cycles: int
    stall_cycles: int
    total_cycles_incl_prefetch: int
    overall_util_pct: float
    mapping_efficiency_pct: float
    compute_util_pct: float
    ifmap_sram_reads: int
    filter_sram_reads: int
    ofmap_sram_writes: int
    ifmap_sram_start_cycle: int
    ifmap_sram_stop_cycle: int
    filter_sram_start_cycle: int
    filter_sram_stop_cycle: int
    ofmap_sram_start_cycle: int
    ofmap_sram_stop_cycle: int
    ifmap_dram_reads: int
    filter_dram_reads: int
    ofmap_dram_writes: int
    ofmap_dram_reads: int
    ifmap_dram_start_cycle: int
    ifmap_dram_stop_cycle: int
    filter_dram_start_cycle: int
    filter_dram_stop_cycle: int
    ofmap_dram_start_cycle: int
    ofmap_dram_stop_cycle: int
    avg_ifmap_sram_bw: float
    avg_filter_sram_bw: float
    avg_ofmap_sram_bw: float
    avg_ifmap_dram_bw: float
    avg_filter_dram_bw: float
    avg_ofmap_dram_bw: float
    mac_energy_pj: float
    ifmap_energy_pj: float
    filter_energy_pj: float
    ofmap_energy_pj: float

    @property
    def total_energy_pj(self) -> float:
        return self.mac_energy_pj + self.ifmap_energy_pj + self.filter_energy_pj + self.ofmap_energy_pj


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def simulate_layer(
    layer: Gemm | Conv, hw: Hardware | str, *, mode: str = "native", accumulate_on_chip: bool = False
) -> LayerStats:
    """Simulate one layer on `hw`, a Hardware or a preset name ("tpu_v1", "eyeriss"), as `simulate` takes.

    compat: the layer must be expressible in SCALE-Sim 3.0.0 (batch 1, no padding, no groups; see
    `scalesim.engine.to_compat_layer`) and `hw` must use whole-number bandwidths and 1-byte words; the result equals
    scalesim 3.0.0's reports, column for column.
    native: any layer; `accumulate_on_chip=True` keeps partial sums of K-folds in the OFMAP SRAM when a fold's
    output tile fits in half of it, instead of spilling them to DRAM and reading them back.
    """
    _check_mode(mode)
    if not isinstance(layer, (Gemm, Conv)):
        raise TypeError(f"layer must be a Gemm or Conv, got {type(layer).__name__}")
    if not isinstance(hw, (Hardware, str)):
        raise TypeError(f"hw must be a Hardware or a preset name, got {type(hw).__name__}")
    hw = resolve_hardware(hw)
    if not isinstance(accumulate_on_chip, bool):
        raise TypeError(f"accumulate_on_chip must be a bool, got {type(accumulate_on_chip).__name__}")
    if mode == "compat":
        if accumulate_on_chip:
            raise ValueError("accumulate_on_chip is a native-mode feature; SCALE-Sim always spills partial sums")
        from accelkit.sim.scalesim.engine import simulate_compat

        return simulate_compat(layer, hw)
    from accelkit.sim.memory import simulate_native

    return simulate_native(layer, hw, accumulate_on_chip=accumulate_on_chip)
