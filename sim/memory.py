"""Native mode's memory model: double-buffered operand SRAMs in front of DRAM, evaluated per fold with NumPy.

Each fold needs one tile per operand (rows x cols of the array's share of A, B and C). While fold i computes,
the tiles of fold i + 1 stream in and the outputs of fold i - 1 stream out, each operand on its own DRAM channel
(as in SCALE-Sim). A fold waits for the slowest of the three:

    stall_i = max(0, ceil(max(ifmap_words_i / bw_ifmap, filter_words_i / bw_filter,
                              (ofmap_out_{i-1} + ofmap_in_i) / bw_ofmap)) - cycles_per_fold)

Fold 0's tiles are prefetched before cycle 0 and the last outputs drain after the last fold; both count in
`total_cycles_incl_prefetch`, not in stalls. A tile is fetched again only when the previous fold used a different
one, unless the whole operand fits in half its SRAM (the other half is the prefetch buffer), in which case every
word the layer reads crosses DRAM once (input pixels that no window covers, such as those a stride larger than the
filter skips, are never fetched). Without on-chip accumulation, the partial sums of every K-fold go to DRAM and come
back for the next K-fold; with it (and an output tile that fits in half the OFMAP SRAM) each output is written once.
"""

from __future__ import annotations

import numpy as np

from accelkit.sim.compute import compute_stats, fold_cycles, fold_grid, spatial_dims
from accelkit.sim.engine import LayerStats
from accelkit.sim.hardware import Hardware
from accelkit.sim.workloads import Conv, Gemm


def _tiles(grid, dataflow: str):
    """Per fold: (ifmap words, ifmap tile key), (filter words, key), ofmap words, first K-fold?, last K-fold?."""
    ur, uc, t = grid.used_rows, grid.used_cols, grid.t
    fr, fc = grid.row_start // grid.rows, grid.col_start // grid.cols
    pair = fr * grid.col_folds + fc
    if dataflow == "os":
        ones = np.ones(grid.count, dtype=bool)
        return (t * ur, fr), (t * uc, fc), ur * uc, ones, ones
    first, last = fr == 0, fr == grid.row_folds - 1
    if dataflow == "ws":
        return (t * ur, fr), (ur * uc, pair), t * uc, first, last
    return (ur * uc, pair), (t * ur, fr), t * uc, first, last


def _fetched(words: np.ndarray, key: np.ndarray, footprint: int, half_sram: int) -> np.ndarray:
    """Words fetched from DRAM before each fold for one operand."""
    if footprint <= half_sram:
        seen = np.zeros(words.size, dtype=bool)
        _, first = np.unique(key, return_index=True)
        seen[first] = True
        return np.where(seen, words, 0)
    changed = np.ones(words.size, dtype=bool)
    changed[1:] = key[1:] != key[:-1]
    return np.where(changed | (words > half_sram), words, 0)


def _ceil_div(words: np.ndarray, bw: float | None) -> np.ndarray:
    if bw is None:
        return np.zeros(words.shape, dtype=np.int64)
    return np.ceil(words / bw).astype(np.int64)


def _touched(size: int, kernel: int, stride: int, pad: int, out: int) -> int:
    """Input rows (or columns) that some window reads: a stride larger than the kernel skips the rows between
    windows, and padding rows are zeros made on chip, not words in DRAM."""
    rows = np.arange(out)[:, None] * stride - pad + np.arange(kernel)[None, :]
    return int(np.unique(rows[(rows >= 0) & (rows < size)]).size)


def _footprints(layer: Gemm | Conv) -> tuple[int, int]:
    """Distinct IFMAP and filter words one group's GEMM reads (the real input, not its im2col expansion)."""
    if isinstance(layer, Gemm):
        return layer.m * layer.k, layer.k * layer.n
    rows = _touched(layer.ifmap_h, layer.filter_h, layer.stride_h, layer.pad_h, layer.ofmap_h)
    cols = _touched(layer.ifmap_w, layer.filter_w, layer.stride_w, layer.pad_w, layer.ofmap_w)
    ifmap = layer.batch * rows * cols * layer.channels // layer.groups
    return ifmap, layer.gemm_k * layer.gemm_n


def simulate_native(layer: Gemm | Conv, hw: Hardware, *, accumulate_on_chip: bool = False) -> LayerStats:
    dims = layer.gemms()
    sr, sc, t = spatial_dims(dims.m, dims.n, dims.k, hw.dataflow)
    grid = fold_grid(sr, sc, t, hw.rows, hw.cols)
    comp = compute_stats(grid, hw.dataflow, compat=False)
    per_fold = fold_cycles(grid, hw.dataflow, compat=False)
    (if_words, if_key), (fl_words, fl_key), out_words, first_k, last_k = _tiles(grid, hw.dataflow)
    if_foot, fl_foot = _footprints(layer)
    if_fetch = _fetched(if_words, if_key, if_foot, hw.sram_words("ifmap") // 2)
    if if_foot <= hw.sram_words("ifmap") // 2:
        # Resident: DRAM delivers each input word some window reads once (a 3x3 conv's im2col tiles repeat each
        # word ~9 times; a 1x1 filter at stride 2 reads 1 word in 4), spread over the folds that first touch it.
        if_fetch = if_fetch * (if_foot / max(int(if_fetch.sum()), 1))
    fl_fetch = _fetched(fl_words, fl_key, fl_foot, hw.sram_words("filter") // 2)
    keep = accumulate_on_chip and int(out_words.max()) <= hw.sram_words("ofmap") // 2
    out_w = np.where(last_k, out_words, 0) if keep else out_words
    out_r = np.zeros_like(out_words) if keep else np.where(first_k, 0, out_words)
    load = np.maximum.reduce(
        [
            _ceil_div(if_fetch, hw.read_bw("ifmap")),
            _ceil_div(fl_fetch, hw.read_bw("filter")),
            _ceil_div(out_r + np.concatenate(([0], out_w[:-1])), hw.dram_bw_words_per_cycle),
        ]
    )
    stalls = np.maximum(load - per_fold, 0)
    stalls[0] = 0
    starts = np.arange(grid.count) * per_fold + np.cumsum(stalls)
    single = _Timeline(per_fold, starts, int(load[0]), int(_ceil_div(out_w[-1:], hw.dram_bw_words_per_cycle)[0]))
    counts = {
        "ifmap": int(round(if_fetch.sum())),
        "filter": int(fl_fetch.sum()),
        "ofmap_w": int(out_w.sum()),
        "ofmap_r": int(out_r.sum()),
    }
    return _stats(layer, hw, comp, single, int(stalls.sum()), counts, dims.count)


class _Timeline:
    def __init__(self, per_fold: int, starts: np.ndarray, prefetch: int, tail: int):
        self.per_fold, self.starts, self.prefetch, self.tail = per_fold, starts, prefetch, tail
        self.total = int(starts[-1]) + per_fold


def _stats(layer, hw: Hardware, comp, tl: _Timeline, stall: int, counts: dict, groups: int) -> LayerStats:
    total = tl.total * groups
    sram = {
        "ifmap": comp.ifmap_sram_reads * groups,
        "filter": comp.filter_sram_reads * groups,
        "ofmap": comp.ofmap_sram_writes * groups,
    }
    dram = {k: v * groups for k, v in counts.items()}
    last_start = int(tl.starts[-1]) + tl.total * (groups - 1)
    ofmap_stop = total + tl.tail - 1
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
        compute_cycles=comp.folds * comp.cycles_per_fold * groups,
        total_cycles=total,
        stall_cycles=stall * groups,
        total_cycles_incl_prefetch=tl.prefetch + total + tl.tail,
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
        ifmap_dram_start_cycle=-tl.prefetch,
        ifmap_dram_stop_cycle=last_start - 1,
        filter_dram_start_cycle=-tl.prefetch,
        filter_dram_stop_cycle=last_start - 1,
        ofmap_dram_start_cycle=tl.per_fold,
        ofmap_dram_stop_cycle=ofmap_stop,
        avg_ifmap_sram_bw=sram["ifmap"] / total,
        avg_filter_sram_bw=sram["filter"] / total,
        avg_ofmap_sram_bw=sram["ofmap"] / total,
        avg_ifmap_dram_bw=dram["ifmap"] / max(last_start + tl.prefetch, 1),
        avg_filter_dram_bw=dram["filter"] / max(last_start + tl.prefetch, 1),
        avg_ofmap_dram_bw=(dram["ofmap_w"] + dram["ofmap_r"]) / max(ofmap_stop - tl.per_fold + 1, 1),
        mac_energy_pj=layer.macs * e.mac_pj,
        ifmap_energy_pj=energy["ifmap"],
        filter_energy_pj=energy["filter"],
        ofmap_energy_pj=energy["ofmap"],
    )
