"""Compat mode: one layer, scalesim 3.0.0's numbers for every column of its three reports."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from accelkit._native import available, native
from accelkit.sim.compute import compute_stats, native_compute_stats, spatial_dims
from accelkit.sim.engine import LayerStats
from accelkit.sim.hardware import Hardware
from accelkit.sim.scalesim.memory import (
    CalcRead,
    MemoryRun,
    UserRead,
    WriteBuffer,
    all_resident,
    calc_read,
    calc_read_by_fold,
    calc_read_dram,
    run_memory,
    user_read,
    user_read_resident,
    user_read_tiles,
)
from accelkit.sim.scalesim.streams import (
    CompatLayer,
    Geometry,
    Offsets,
    RowCounts,
    demand_stream,
    demand_tiles,
    fold_demand,
    fold_tiles,
    geometry,
    position_row,
    prefetch_counts,
    prefetch_sequence,
    unique_im2col,
)
from accelkit.sim.workloads import Conv, Gemm, show_int


def to_compat_layer(layer: Gemm | Conv) -> CompatLayer:
    """The SCALE-Sim layer for `layer`: a GEMM becomes IFMAP M x K, filter 1 x K, 1 channel, N filters (as
    scalesim's `-i gemm` loader does); a convolution must have batch 1, no padding and no groups."""
    if isinstance(layer, Gemm):
        return CompatLayer(layer.name, layer.m, layer.k, 1, layer.k, 1, layer.n, 1, 1)
    bad = [f for f in ("batch", "groups") if getattr(layer, f) != 1] + [
        f for f in ("pad_h", "pad_w") if getattr(layer, f)
    ]
    if bad:
        raise ValueError(
            f"compat mode cannot express {', '.join(bad)} of layer {layer.name!r}: SCALE-Sim 3.0.0 "
            "has no batch, padding or groups (use mode='native')"
        )
    return CompatLayer(
        layer.name,
        layer.ifmap_h,
        layer.ifmap_w,
        layer.filter_h,
        layer.filter_w,
        layer.channels,
        layer.num_filters,
        layer.stride_h,
        layer.stride_w,
    )


def _whole(value: float | None, name: str) -> int:
    if value is None or value != int(value):
        raise ValueError(f"compat mode needs a whole-number {name}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class CompatRun:
    """Internals of one compat simulation, kept for trace writing."""

    layer: CompatLayer
    geo: Geometry
    offsets: Offsets
    counts: RowCounts
    reads: dict
    edge_rows: dict
    memory: MemoryRun
    streams: dict | None


# Compat mode holds arrays that grow with the layer (native mode does not), so it refuses a layer before
# allocating more than a few GiB. Measured on this machine (GEMMs on WS arrays): per-fold paths use about 100 bytes
# and 0.9 us per fold (10^6 folds: 0.15 GB, 0.9 s) and about 150 bytes per demand row of one fold (10^6 rows:
# 0.15 GB); the word-level paths about 40 bytes and 0.16 us per SRAM read (17 M reads: 0.71 GB, 2.7 s).
COMPAT_MAX_FOLDS = 2**23
COMPAT_MAX_ROWS_PER_FOLD = 2**23
COMPAT_MAX_WORD_LEVEL_READS = 2**26
# Compat time grows with the demand rows it replays (folds x cycles per fold): about 13 ns a row on the machine
# that set these limits (BERT-base's FFN on a 2x1 OS array: 6.1e8 rows, 8.3 s). A workload, not only a layer, is
# held to 2^29 rows (about 7 s there), so a network of layers that each fit cannot run for minutes.
COMPAT_MAX_DEMAND_ROWS = 2**29
# Trace addresses are int64: an operand's base offset plus its size must stay below 2^63.
_MAX_ADDRESS = 2**62


def demand_rows(layer: Gemm | Conv | CompatLayer, hw: Hardware) -> int:
    """Rows of the demand matrices compat mode replays for `layer`: its folds times the cycles of each."""
    lay = layer if isinstance(layer, CompatLayer) else to_compat_layer(layer)
    comp = native_compute_stats(*spatial_dims(lay.m, lay.n, lay.k, hw.dataflow), hw.rows, hw.cols, hw.dataflow)
    return comp.folds * comp.cycles_per_fold


def check_compat_workload(layers: list, hw: Hardware) -> None:
    """Raise ValueError before a compat run whose distinct layers replay more than COMPAT_MAX_DEMAND_ROWS rows."""
    shapes = {replace(layer, name=""): layer for layer in layers}
    total = sum(demand_rows(layer, hw) for layer in shapes.values())
    if total > COMPAT_MAX_DEMAND_ROWS:
        raise ValueError(
            f"compat mode: {len(layers)} layers on {hw.rows}x{hw.cols} {hw.dataflow} replay {show_int(total)} demand "
            f"rows, over the {COMPAT_MAX_DEMAND_ROWS:,} a run is held to; use mode='native' (closed form, any size)"
        )


def check_compat_size(layer: CompatLayer, hw: Hardware, *, word_level: bool) -> None:
    """Raise ValueError naming the layer and the size when compat mode would allocate more than the limits."""
    sr, sc, t = spatial_dims(layer.m, layer.n, layer.k, hw.dataflow)
    comp = native_compute_stats(sr, sc, t, hw.rows, hw.cols, hw.dataflow)
    dims = f"layer {layer.name!r} (M={layer.m}, N={layer.n}, K={layer.k}) on {hw.rows}x{hw.cols} {hw.dataflow}"
    reads = comp.ifmap_sram_reads + comp.filter_sram_reads
    for what, value, limit in (
        ("folds", comp.folds, COMPAT_MAX_FOLDS),
        ("cycles per fold", comp.cycles_per_fold, COMPAT_MAX_ROWS_PER_FOLD),
        ("SRAM reads replayed word by word", reads if word_level else 0, COMPAT_MAX_WORD_LEVEL_READS),
    ):
        if value > limit:
            raise ValueError(
                f"compat mode: {dims} has {show_int(value)} {what}, over the {limit:,} it simulates in bounded "
                "memory; use mode='native' (closed form, any size)"
            )
    sizes = {"ifmap": layer.ifmap_h * layer.ifmap_w * layer.channels, "filter": layer.k * layer.n}
    sizes["ofmap"] = layer.m * layer.n
    for op, size in sizes.items():
        if getattr(hw, f"{op}_offset") + size >= _MAX_ADDRESS:
            raise ValueError(f"compat mode: {dims}: Hardware.{op}_offset + its {op} size must stay below 2^62")


# SCALE-Sim's read buffers work in sets of 1% of the SRAM (100 words make the first whole set); with a one-word
# OFMAP SRAM its write buffer drains an empty line and scalesim 3.0.0 raises IndexError.
_MIN_SRAM_WORDS = {"ifmap": 100, "filter": 100, "ofmap": 2}


def _check_sram_sizes(hw: Hardware) -> None:
    for op, least in _MIN_SRAM_WORDS.items():
        if hw.sram_words(op) < least:
            raise ValueError(
                f"compat mode: Hardware.{op}_sram_bytes={getattr(hw, f'{op}_sram_bytes')} holds "
                f"{hw.sram_words(op)} words; SCALE-Sim needs at least {least}"
            )


def run_compat(layer: CompatLayer, hw: Hardware, *, word_level: bool = False) -> CompatRun:
    """Simulate `layer`. In CALC mode, unless `word_level`, the filter and a GEMM's or non-overlapping conv's
    IFMAP are replayed per fold, and an overlapping conv's IFMAP is counted in closed form when all of its words fit
    one read-buffer segment; everything else is replayed word by word."""
    if hw.word_bytes != 1:
        raise ValueError("compat mode needs word_bytes=1 (SCALE-Sim hard-codes 1-byte words)")
    _check_sram_sizes(hw)
    calc = hw.calc_mode and not word_level
    unique = unique_im2col(layer)
    one_segment = calc and not unique and distinct_ifmap_words(layer) < 50 * (hw.sram_words("ifmap") // 100)
    check_compat_size(layer, hw, word_level=not (calc and (unique or one_segment)))
    geo = geometry(layer, hw.dataflow, hw.rows, hw.cols)
    offs = Offsets(hw.ifmap_offset, hw.filter_offset, hw.ofmap_offset)
    counts = RowCounts(geo)
    if not calc:
        tiled = _replay_user_tiled(geo, hw, offs, counts) if not (hw.calc_mode or word_level) and available() else None
        if tiled is not None:
            return CompatRun(layer, geo, offs, counts, *tiled, None)
        streams = {op: demand_stream(geo, op, offs) for op in ("ifmap", "filter")}
        rows = {op: streams[op][1][[0, -1]] for op in streams}
        reads, run = _replay(geo, hw, offs, streams, counts)
        return CompatRun(layer, geo, offs, counts, reads, rows, run, streams)
    rows = {"filter": _edge_rows(geo, "filter")}
    reads = {"filter": _calc_read_fast(geo, "filter", hw.sram_words("filter"))}
    streams = None
    if unique:
        rows["ifmap"], reads["ifmap"] = _edge_rows(geo, "ifmap"), _calc_read_fast(geo, "ifmap", hw.sram_words("ifmap"))
    elif one_segment:
        words = distinct_ifmap_words(layer)
        rows["ifmap"] = _valid_edge_rows(geo, offs)
        reads["ifmap"] = CalcRead(np.zeros(0, dtype=np.int64), words, words, hw.sram_words("ifmap") // 100)
    else:
        rows["ifmap"] = _valid_edge_rows(geo, offs)
        reads["ifmap"] = _calc_read_folds(geo, offs, hw.sram_words("ifmap"))
    run = run_memory(counts, WriteBuffer(hw.sram_words("ofmap"), hw.cols), ())
    return CompatRun(layer, geo, offs, counts, reads, rows, run, streams)


def _calc_read_folds(geo: Geometry, offs: Offsets, total_words: int, *, use_native: bool | None = None) -> CalcRead:
    """CALC IFMAP read buffer of an overlapping conv, fold by fold: a fold's new words are its first occurrences
    not yet seen in the current segment, and a segment ends at its 50 x set_words-th new word. Folds sharing a tile
    key read the same words in the same order, so a tile read whole within the current segment adds nothing and is
    skipped, and each tile is generated once. The C++ loop (accelkit._C) runs when the extension is built, unless
    `use_native` is False; otherwise one small sort per fold, not one over the whole stream."""
    set_words = total_words // 100
    cap = 50 * set_words
    if available() if use_native is None else use_native:
        return _calc_read_folds_native(geo, offs, set_words)
    keys, _ = fold_tiles(geo, "ifmap")
    lo = offs.ifmap
    segment = np.full(geo.layer.ifmap_h * geo.layer.ifmap_w * geo.layer.channels, -1, dtype=np.int64)
    current = used = reads = 0
    flushes: list[int] = []
    whole: set[int] = set()
    tiles: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    per = geo.rows_per_fold
    for f, key in enumerate(keys.tolist()):
        if key in whole:
            continue
        if key not in tiles:
            addr, rows = fold_demand(geo, "ifmap", f, offs)
            tiles[key] = (addr - lo, rows - f * per)
        addr, rows = tiles[key]
        pos = 0
        while True:
            words, first = _first_occurrences(addr[pos:])
            new = segment[words] != current
            firsts = np.sort(first[new])
            if used + firsts.size < cap:
                segment[words[new]] = current
                used += firsts.size
                if pos == 0:
                    whole.add(key)
                break
            q = pos + int(firsts[cap - used - 1])
            flushes.append(int(rows[q]) + f * per)
            reads += cap
            current, used, pos = current + 1, 0, q + 1
            whole.clear()
    return CalcRead(np.asarray(flushes, dtype=np.int64), reads + used, used, set_words)


def _calc_read_folds_native(geo: Geometry, offs: Offsets, set_words: int) -> CalcRead:
    tiles = demand_tiles(geo, "ifmap", offs, base=offs.ifmap)
    lay, t, cap = geo.layer, tiles, 50 * set_words
    words = lay.ifmap_h * lay.ifmap_w * lay.channels
    flushes, used = native().scalesim_calc_read_folds(
        t.fold_tile, t.tile_start, t.addr, t.row, t.rows_per_fold, words, cap
    )
    return CalcRead(flushes, cap * flushes.size + used, used, set_words)


def _first_occurrences(addr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(addr, return_index=True) for non-negative addresses: the (address, index) pairs packed into one
    int64 and sorted by value, which NumPy's vectorised sort does several times faster than the stable argsort
    np.unique needs for its indices."""
    bits = max(addr.size - 1, 1).bit_length()
    keys = np.sort((addr << bits) | np.arange(addr.size, dtype=np.int64))
    words = keys >> bits
    first = np.ones(keys.size, dtype=bool)
    first[1:] = words[1:] != words[:-1]
    return words[first], keys[first] & ((1 << bits) - 1)


def distinct_ifmap_words(layer: CompatLayer) -> int:
    """Words of the IFMAP some window reads: the rows any window covers x the columns x the channels (a window
    row and a window column are chosen independently, so the covered pixels are a product set)."""

    def covered(size: int, filt: int, stride: int, out: int) -> int:
        starts = np.arange(out, dtype=np.int64)[:, None] * stride + np.arange(filt, dtype=np.int64)[None, :]
        return int(np.unique(starts[starts < size]).size)

    rows = covered(layer.ifmap_h, layer.filter_h, layer.stride_h, layer.ofmap_h)
    return rows * covered(layer.ifmap_w, layer.filter_w, layer.stride_w, layer.ofmap_w) * layer.channels


def _valid_edge_rows(geo: Geometry, offs: Offsets) -> np.ndarray:
    """Demand rows of the IFMAP's first and last request that reads a word: the first request (pixel 0, which
    every window reads inside the input) and the last of the last fold that has one (a strided conv's extra
    output row or column may read nothing at all)."""
    first = position_row(geo, "ifmap", 0, 0)
    for f in range(geo.grid.count - 1, -1, -1):
        _, rows = fold_demand(geo, "ifmap", f, offs)
        if rows.size:
            return np.asarray([first, int(rows[-1])], dtype=np.int64)
    raise ValueError(f"compat mode: layer {geo.layer.name!r} reads no IFMAP word")


def simulate_compat(layer: Gemm | Conv | CompatLayer, hw: Hardware, *, word_level: bool = False) -> LayerStats:
    """scalesim 3.0.0's three report rows for `layer` on `hw`, as a LayerStats."""
    lay = layer if isinstance(layer, CompatLayer) else to_compat_layer(layer)
    res = run_compat(lay, hw, word_level=word_level)
    geo, counts, reads, rows, run = res.geo, res.counts, res.reads, res.edge_rows, res.memory
    comp = compute_stats(geo.grid, hw.dataflow, compat=True)
    wb = run.write_buffer
    total = run.last_ofmap_cycle
    if total == 0:
        # Only one fold of R + C + T - 2 = 1 cycle gets here (a 1x1x1 GEMM on a 1x1 OS array): SCALE-Sim's
        # `folds x per_fold - 1` is 0 and scalesim 3.0.0 itself stops with ZeroDivisionError on its utilization.
        raise ValueError(
            f"compat mode: layer {lay.name!r} takes 0 cycles in SCALE-Sim 3.0.0 (one fold of 1 cycle on a "
            f"{hw.rows}x{hw.cols} {hw.dataflow} array), which divides by zero there; use mode='native'"
        )
    sram = {}
    for i, op in enumerate(("ifmap", "filter")):
        sram[op] = (run.read_cycle(int(rows[op][0]), i), run.read_cycle(int(rows[op][1]), i))
    sram["ofmap"] = (run.write_cycle(counts.next_write(0)), run.write_cycle(counts.last_write()))
    dram = {op: _read_dram(reads[op], rows[op], run) for op in ("ifmap", "filter")}
    dram["ofmap"] = (wb.first_drain, wb.last_drain, wb.writes_to_dram)
    incl = int(dram["ofmap"][1] - min(dram["ifmap"][0], dram["filter"][0]))
    return _stats(lay, hw, comp, total, run.stall_cycles, incl, sram, dram)


def _replay(geo: Geometry, hw: Hardware, offs: Offsets, streams: dict, counts: RowCounts):
    """Word-level replay of the read buffers (any layer), then the event walk over the demand rows."""
    if hw.calc_mode:
        reads = {op: calc_read(*streams[op], hw.sram_words(op)) for op in streams}
        return reads, run_memory(counts, WriteBuffer(hw.sram_words("ofmap"), hw.cols), ())
    wb = WriteBuffer(hw.sram_words("ofmap"), _whole(hw.dram_bw_words_per_cycle, "dram_bw_words_per_cycle"))
    reads = {}
    for op, (addr, rows) in streams.items():
        seq, seq_len = prefetch_sequence(geo, op, offs)
        bw = _whole(hw.read_bw(op), f"{op}_dram_bw_words_per_cycle")
        reads[op] = user_read(addr, rows, seq, seq_len, hw.sram_words(op), bw)
    return reads, run_memory(counts, wb, (reads["ifmap"], reads["filter"]))


def _replay_user_tiled(geo: Geometry, hw: Hardware, offs: Offsets, counts: RowCounts):
    """_replay in USER mode without materialising the demand streams (the C++ read buffer walks the tiles); None
    for an operand with no request or no prefetched word, which _replay handles."""
    wb = WriteBuffer(hw.sram_words("ofmap"), _whole(hw.dram_bw_words_per_cycle, "dram_bw_words_per_cycle"))
    reads, rows = {}, {}
    for op in ("ifmap", "filter"):
        words, sizes = hw.sram_words(op), prefetch_counts(geo, op)
        if sizes is not None and all_resident(sizes[0], words):
            # The operand fits the first window (NCF's GEMMs on google.cfg's 6 MiB SRAMs): nothing to replay.
            reads[op] = user_read_resident(sizes[1], words, _whole(hw.read_bw(op), f"{op}_dram_bw_words_per_cycle"))
            rows[op] = _edge_rows(geo, op)
            continue
        t = demand_tiles(geo, op, offs)
        seq, seq_len = prefetch_sequence(geo, op, offs)
        if t.addr.size == 0 or seq.size == 0:
            return None
        bw = _whole(hw.read_bw(op), f"{op}_dram_bw_words_per_cycle")
        reads[op], rows[op] = user_read_tiles(t, seq, seq_len, words, bw), t.edge_rows()
    return reads, rows, run_memory(counts, wb, (reads["ifmap"], reads["filter"]))


def _edge_rows(geo: Geometry, op: str) -> np.ndarray:
    """Demand rows of an operand's first and last request (layers without -1 im2col entries)."""
    last = geo.grid.count - 1
    first_row = position_row(geo, op, 0, 0)
    last_row = position_row(geo, op, last, -1) + last * geo.rows_per_fold
    return np.asarray([first_row, last_row], dtype=np.int64)


def _calc_read_fast(geo: Geometry, op: str, words: int) -> CalcRead:
    keys, sizes = fold_tiles(geo, op)
    per = geo.rows_per_fold
    return calc_read_by_fold(keys, sizes, words, lambda f, p: position_row(geo, op, f, p) + f * per)


def _read_dram(res: CalcRead | UserRead, rows: np.ndarray, run) -> tuple[int, int, int]:
    if isinstance(res, UserRead):
        return (*res.dram_window(), res.dram_reads)
    first = int(rows[0]) + int(run.stall_before(rows[:1])[0])
    flush_cycles = res.flush_rows + run.stall_before(res.flush_rows) if res.flush_rows.size else res.flush_rows
    return (*calc_read_dram(res, first, flush_cycles), res.dram_reads)


def _stats(lay, hw, comp, total, stall, incl, sram, dram) -> LayerStats:
    reads = {"ifmap": comp.ifmap_sram_reads, "filter": comp.filter_sram_reads, "ofmap": comp.ofmap_sram_writes}
    e = hw.energy
    energy = {
        op: (
            reads[op] * (e.sram_write_pj_per_word if op == "ofmap" else e.sram_read_pj_per_word)
            + dram[op][2] * e.dram_pj_per_word
        )
        for op in reads
    }
    return LayerStats(
        name=lay.name,
        dataflow=hw.dataflow,
        mode="compat",
        macs=lay.macs,
        folds=comp.folds,
        compute_cycles=comp.folds * comp.cycles_per_fold - 1,
        total_cycles=total,
        stall_cycles=stall,
        total_cycles_incl_prefetch=incl,
        overall_util_pct=(lay.macs * 100) / (total * hw.pes),
        mapping_efficiency_pct=comp.mapping_efficiency_pct,
        compute_util_pct=comp.compute_util_pct,
        ifmap_sram_reads=reads["ifmap"],
        filter_sram_reads=reads["filter"],
        ofmap_sram_writes=reads["ofmap"],
        ifmap_sram_start_cycle=sram["ifmap"][0],
        ifmap_sram_stop_cycle=sram["ifmap"][1],
        filter_sram_start_cycle=sram["filter"][0],
        filter_sram_stop_cycle=sram["filter"][1],
        ofmap_sram_start_cycle=sram["ofmap"][0],
        ofmap_sram_stop_cycle=sram["ofmap"][1],
        ifmap_dram_reads=dram["ifmap"][2],
        filter_dram_reads=dram["filter"][2],
        ofmap_dram_writes=dram["ofmap"][2],
        ofmap_dram_reads=0,
        ifmap_dram_start_cycle=dram["ifmap"][0],
        ifmap_dram_stop_cycle=dram["ifmap"][1],
        filter_dram_start_cycle=dram["filter"][0],
        filter_dram_stop_cycle=dram["filter"][1],
        ofmap_dram_start_cycle=dram["ofmap"][0],
        ofmap_dram_stop_cycle=dram["ofmap"][1],
        avg_ifmap_sram_bw=reads["ifmap"] / total,
        avg_filter_sram_bw=reads["filter"] / total,
        avg_ofmap_sram_bw=reads["ofmap"] / total,
        avg_ifmap_dram_bw=dram["ifmap"][2] / (dram["ifmap"][1] - dram["ifmap"][0] + 1),
        avg_filter_dram_bw=dram["filter"][2] / (dram["filter"][1] - dram["filter"][0] + 1),
        avg_ofmap_dram_bw=dram["ofmap"][2] / (dram["ofmap"][1] - dram["ofmap"][0] + 1),
        mac_energy_pj=lay.macs * e.mac_pj,
        ifmap_energy_pj=energy["ifmap"],
        filter_energy_pj=energy["filter"],
        ofmap_energy_pj=energy["ofmap"],
    )
