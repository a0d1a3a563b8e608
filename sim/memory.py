"""Native mode's memory model: double-buffered operand SRAMs in front of ONE shared DRAM channel, in closed form.

Each fold needs one tile per operand (rows x cols of the array's share of A, B and C). While fold i computes, the
tiles of fold i + 1 stream in and the outputs of fold i - 1 stream out, all over one DRAM channel of
`Hardware.dram_bw_words_per_cycle` words per cycle in total (SCALE-Sim gives each operand its own channel of that
bandwidth; compat mode keeps that). A fold waits until everything around it has moved:

    stall_i = max(0, ceil((ifmap_i + filter_i + psum_reads_i + drain_{i-1}) / bw) - cycles_per_fold)

Fold 0's tiles are prefetched before cycle 0 and the last outputs drain after the last fold; both count in
`total_cycles_incl_prefetch`, not in stalls. The groups of a convolution run back to back as one fold sequence:
group g + 1's first tiles load while group g's last fold computes. So the channel never moves more than
bw x `total_cycles_incl_prefetch` words.

A tile is fetched again only when the previous fold used a different one, unless the whole operand fits in half
its SRAM (the other half is the prefetch buffer), in which case every word the layer reads crosses DRAM once (input
pixels that no window covers, such as those a stride larger than the filter skips, are never fetched). Without
on-chip accumulation, the partial sums of every K-fold go to DRAM and come back for the next K-fold; with it (and
an output tile that fits in half the OFMAP SRAM) each output is written once.

Closed form: a fold's traffic depends only on whether it is the first, second, last or an interior fold along each
fold axis (tiles shrink only in the last fold, reuse changes only at the first), so the row_folds x col_folds folds
fall into at most 5 x 5 classes of identical folds. Each class is evaluated once, in exact Python integers and
fractions, and weighted by its multiplicity: a GEMM of 2^40 x 2^20 x 2^20 costs what a small one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from accelkit.sim.compute import ComputeStats, fold_counts, native_compute_stats, spatial_dims, used
from accelkit.sim.engine import LayerStats
from accelkit.sim.hardware import Hardware
from accelkit.sim.workloads import Conv, Gemm


@dataclass(frozen=True)
class FoldWords:
    """DRAM words around one fold: fetched before it (IFMAP and filter tiles, partial sums read back) and drained
    after it. `ifmap` is before the resident-input correction (see `GroupTraffic`)."""

    ifmap: int
    filter: int
    psum_reads: int
    drain: int


@dataclass(frozen=True)
class Plan:
    """What every fold of one group's GEMM shares: the fold grid and the SRAM decisions."""

    dataflow: str
    rows: int
    cols: int
    sr: int
    sc: int
    t: int
    half_ifmap: int
    half_filter: int
    resident_ifmap: bool
    resident_filter: bool
    keep_psums: bool

    @property
    def folds(self) -> tuple[int, int]:
        return fold_counts(self.sr, self.sc, self.rows, self.cols)


def fold_classes(count: int) -> list[tuple[int, int]]:
    """(representative fold index, multiplicity) covering folds 0 .. count-1 along one axis: folds 0, 1, count-2
    and count-1 alone, and fold 2 for the interior 2 .. count-3, whose folds (and their predecessors) are full
    tiles that are neither first nor last."""
    edges = sorted({i for i in (0, 1, count - 2, count - 1) if 0 <= i < count})
    classes = [(i, 1) for i in edges]
    if count > len(edges):
        classes.append((2, count - len(edges)))
    return classes


def previous_fold(plan: Plan, fr: int, fc: int) -> tuple[int, int] | None:
    """The fold before (fr, fc): column folds are outermost, row folds inner (SCALE-Sim's order)."""
    if fr > 0:
        return fr - 1, fc
    return (plan.folds[0] - 1, fc - 1) if fc > 0 else None


def _fetched(plan: Plan, words: int, key: str, fr: int, fc: int, resident: bool, half: int) -> int:
    """Words of one operand tile fetched before fold (fr, fc). `key` says which fold index names the tile
    ("row", "col" or "pair"); a resident operand fetches a tile the first time it is used, a streamed one
    whenever the previous fold used another tile or the tile overflows half the SRAM."""
    if resident:
        new = {"row": fc == 0, "col": fr == 0, "pair": True}[key]
        return words if new else 0
    if key == "pair" or (fr, fc) == (0, 0):
        changed = True
    elif key == "row":
        changed = fr > 0 or plan.folds[0] > 1
    else:
        changed = fr == 0
    return words if changed or words > half else 0


def fold_words(plan: Plan, fr: int, fc: int) -> FoldWords:
    """DRAM traffic of fold (fr, fc): row fold fr of Sr, column fold fc of Sc."""
    ur, uc, t = used(plan.sr, plan.rows, fr), used(plan.sc, plan.cols, fc), plan.t
    first, last = True, True
    if plan.dataflow == "os":
        ifmap, filt, out = (t * ur, "row"), (t * uc, "col"), ur * uc
    else:
        first, last = fr == 0, fr == plan.folds[0] - 1
        streamed, stationary = (t * ur, "row"), (ur * uc, "pair")
        ifmap, filt = (streamed, stationary) if plan.dataflow == "ws" else (stationary, streamed)
        out = t * uc
    return FoldWords(
        ifmap=_fetched(plan, *ifmap, fr, fc, plan.resident_ifmap, plan.half_ifmap),
        filter=_fetched(plan, *filt, fr, fc, plan.resident_filter, plan.half_filter),
        psum_reads=0 if plan.keep_psums or first else out,
        drain=out if not plan.keep_psums or last else 0,
    )


@dataclass(frozen=True)
class GroupTraffic:
    """One group's GEMM on the shared channel. Stalls exclude fold 0 (its tiles are the prefetch); `boundary_stall`
    is what fold 0 of the next group stalls while the last drain of this one shares the channel with it."""

    ifmap: int
    filter: int
    psum_reads: int
    drains: int
    stalls: int
    prefetch: int
    tail: int
    boundary_stall: int


def _cycles(words: Fraction | int, bw: Fraction | None) -> int:
    """Cycles to move `words` at `bw` words/cycle, rounded up (exact: no float rounding for huge counts)."""
    return 0 if bw is None else math.ceil(words / bw)


def group_traffic(plan: Plan, ifmap_footprint: int, bw: float | None, per_fold: int) -> GroupTraffic:
    """DRAM words and stalls of one group, summed over the fold classes with their multiplicities."""
    row_folds, col_folds = plan.folds
    classes = [(fr, fc, a * b) for fr, a in fold_classes(row_folds) for fc, b in fold_classes(col_folds)]
    words: dict[tuple[int, int], FoldWords] = {}

    def at(fr: int, fc: int) -> FoldWords:
        if (fr, fc) not in words:
            words[fr, fc] = fold_words(plan, fr, fc)
        return words[fr, fc]

    fetched_ifmap = sum(n * at(fr, fc).ifmap for fr, fc, n in classes)
    # Resident input: DRAM delivers each word some window reads once (a 3x3 conv's im2col tiles repeat each word
    # ~9 times; a 1x1 filter at stride 2 reads 1 word in 4), spread over the folds that first touch it.
    scale = Fraction(ifmap_footprint, max(fetched_ifmap, 1)) if plan.resident_ifmap else Fraction(1)
    rate = None if bw is None else Fraction(bw)

    def incoming(w: FoldWords) -> Fraction:
        return w.ifmap * scale + w.filter + w.psum_reads

    def stall(fr: int, fc: int) -> int:
        prev = previous_fold(plan, fr, fc)
        load = _cycles(incoming(at(fr, fc)) + at(*prev).drain, rate)
        return max(0, load - per_fold)

    last = at(row_folds - 1, col_folds - 1)
    first = at(0, 0)
    return GroupTraffic(
        ifmap=ifmap_footprint if plan.resident_ifmap else fetched_ifmap,
        filter=sum(n * at(fr, fc).filter for fr, fc, n in classes),
        psum_reads=sum(n * at(fr, fc).psum_reads for fr, fc, n in classes),
        drains=sum(n * at(fr, fc).drain for fr, fc, n in classes),
        stalls=sum(n * stall(fr, fc) for fr, fc, n in classes if (fr, fc) != (0, 0)),
        prefetch=_cycles(incoming(first), rate),
        tail=_cycles(last.drain, rate),
        boundary_stall=max(0, _cycles(incoming(first) + last.drain, rate) - per_fold),
    )


def touched(size: int, kernel: int, stride: int, pad: int, out: int) -> int:
    """Input rows (or columns) that some window reads, in closed form: a stride larger than the kernel skips the
    rows between windows, and padding rows are zeros made on chip, not words in DRAM. Window o covers padded rows
    [o*stride, o*stride + kernel); input row x is padded row x + pad."""

    def covered(y: int) -> int:
        # Padded rows in [0, y) that some window covers. Below out*stride, row r is covered iff r % stride <
        # kernel (its own window, or an earlier one when kernel > stride, which then covers whole strides);
        # above, only the last window reaches, up to (out - 1)*stride + kernel.
        inside = min(y, out * stride)
        per = min(kernel, stride)
        head = (inside // stride) * per + min(inside % stride, per)
        return head + max(0, min(y, (out - 1) * stride + kernel) - out * stride)

    return covered(pad + size) - covered(pad)


def footprints(layer: Gemm | Conv) -> tuple[int, int]:
    """Distinct IFMAP and filter words one group's GEMM reads (the real input, not its im2col expansion)."""
    if isinstance(layer, Gemm):
        return layer.m * layer.k, layer.k * layer.n
    rows = touched(layer.ifmap_h, layer.filter_h, layer.stride_h, layer.pad_h, layer.ofmap_h)
    cols = touched(layer.ifmap_w, layer.filter_w, layer.stride_w, layer.pad_w, layer.ofmap_w)
    ifmap = layer.batch * rows * cols * layer.channels // layer.groups
    return ifmap, layer.gemm_k * layer.gemm_n


def plan_for(layer: Gemm | Conv, hw: Hardware, accumulate_on_chip: bool) -> Plan:
    dims = layer.gemms()
    sr, sc, t = spatial_dims(dims.m, dims.n, dims.k, hw.dataflow)
    if_foot, fl_foot = footprints(layer)
    half_ifmap, half_filter = hw.sram_words("ifmap") // 2, hw.sram_words("filter") // 2
    biggest_out = min(hw.rows, sr) * min(hw.cols, sc) if hw.dataflow == "os" else t * min(hw.cols, sc)
    return Plan(
        dataflow=hw.dataflow,
        rows=hw.rows,
        cols=hw.cols,
        sr=sr,
        sc=sc,
        t=t,
        half_ifmap=half_ifmap,
        half_filter=half_filter,
        resident_ifmap=if_foot <= half_ifmap,
        resident_filter=fl_foot <= half_filter,
        keep_psums=accumulate_on_chip and biggest_out <= hw.sram_words("ofmap") // 2,
    )


def simulate_native(layer: Gemm | Conv, hw: Hardware, *, accumulate_on_chip: bool = False) -> LayerStats:
    plan = plan_for(layer, hw, accumulate_on_chip)
    comp = native_compute_stats(plan.sr, plan.sc, plan.t, hw.rows, hw.cols, hw.dataflow)
    traffic = group_traffic(plan, footprints(layer)[0], hw.dram_bw_words_per_cycle, comp.cycles_per_fold)
    return _stats(layer, hw, comp, traffic, layer.gemms().count)


def _stats(layer: Gemm | Conv, hw: Hardware, comp: ComputeStats, g: GroupTraffic, groups: int) -> LayerStats:
    stall = groups * g.stalls + (groups - 1) * g.boundary_stall
    compute = groups * comp.folds * comp.cycles_per_fold
    total = compute + stall
    sram = {
        "ifmap": comp.ifmap_sram_reads * groups,
        "filter": comp.filter_sram_reads * groups,
        "ofmap": comp.ofmap_sram_writes * groups,
    }
    dram = {"ifmap": g.ifmap * groups, "filter": g.filter * groups, "ofmap_w": g.drains * groups}
    dram["ofmap_r"] = g.psum_reads * groups
    last_start = total - comp.cycles_per_fold
    ofmap_stop = total + g.tail - 1
    read_window = max(last_start + g.prefetch, 1)
    e = hw.energy
    energy = {
        "ifmap": sram["ifmap"] * e.sram_read_pj_per_word + dram["ifmap"] * e.dram_pj_per_word,
        "filter": sram["filter"] * e.sram_read_pj_per_word + dram["filter"] * e.dram_pj_per_word,
        "ofmap": sram["ofmap"] * e.sram_write_pj_per_word + (dram["ofmap_w"] + dram["ofmap_r"]) * e.dram_pj_per_word,
    }
    return LayerStats(
        name=layer.name,
        dataflow=hw.dataflow,
        mode="native",
        macs=layer.macs,
        folds=comp.folds * groups,
        compute_cycles=compute,
        total_cycles=total,
        stall_cycles=stall,
        total_cycles_incl_prefetch=g.prefetch + total + g.tail,
        overall_util_pct=layer.macs * 100 / (total * hw.pes),
        mapping_efficiency_pct=comp.mapping_efficiency_pct,
        compute_util_pct=comp.compute_util_pct,
        ifmap_sram_reads=sram["ifmap"],
        filter_sram_reads=sram["filter"],
        ofmap_sram_writes=sram["ofmap"],
        ifmap_sram_start_cycle=0,
        ifmap_sram_stop_cycle=total - 1,
        filter_sram_start_cycle=0,
        filter_sram_stop_cycle=total - 1,
        ofmap_sram_start_cycle=0,
        ofmap_sram_stop_cycle=total - 1,
        ifmap_dram_reads=dram["ifmap"],
        filter_dram_reads=dram["filter"],
        ofmap_dram_writes=dram["ofmap_w"],
        ofmap_dram_reads=dram["ofmap_r"],
        ifmap_dram_start_cycle=-g.prefetch,
        ifmap_dram_stop_cycle=last_start - 1,
        filter_dram_start_cycle=-g.prefetch,
        filter_dram_stop_cycle=last_start - 1,
        ofmap_dram_start_cycle=comp.cycles_per_fold,
        ofmap_dram_stop_cycle=ofmap_stop,
        avg_ifmap_sram_bw=sram["ifmap"] / total,
        avg_filter_sram_bw=sram["filter"] / total,
        avg_ofmap_sram_bw=sram["ofmap"] / total,
        avg_ifmap_dram_bw=dram["ifmap"] / read_window,
        avg_filter_dram_bw=dram["filter"] / read_window,
        avg_ofmap_dram_bw=(dram["ofmap_w"] + dram["ofmap_r"]) / max(ofmap_stop - comp.cycles_per_fold + 1, 1),
        mac_energy_pj=layer.macs * e.mac_pj,
        ifmap_energy_pj=energy["ifmap"],
        filter_energy_pj=energy["filter"],
        ofmap_energy_pj=energy["ofmap"],
    )
