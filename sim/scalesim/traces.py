"""Per-cycle address traces in SCALE-Sim 3.0.0's format, streamed to disk fold by fold or prefetch by prefetch.

Six files per layer, as scalesim writes them into <run>/layer<i>/:
- {IFMAP,FILTER,OFMAP}_SRAM_TRACE.csv: one line per demand row, `cycle,addr,...` with -1 for idle lanes, as
  integers. The cycle is when the request is served (stalls included).
- {IFMAP,FILTER,OFMAP}_DRAM_TRACE.csv: one line per DRAM transfer cycle, `cycle,addr,...` printed as floats
  ("-50.0,0.0,1.0"). Lines shorter than the widest are padded with 1.0, as scalesim's np.ones padding does, and
  CALC-mode prefetches list each 1%-of-SRAM group in Python set order, as scalesim's list(set) does.
Only one fold's (or one prefetch's) lines are in memory at a time; traces exist to be written, never to be held.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from accelkit.sim.hardware import Hardware
from accelkit.sim.scalesim.engine import CompatRun, run_compat, to_compat_layer
from accelkit.sim.scalesim.memory import CalcRead, UserRead, first_occurrence_prev
from accelkit.sim.scalesim.streams import CompatLayer, fold_outputs, fold_requests, prefetch_sequence
from accelkit.sim.workloads import Conv, Gemm

SLOT = {"ifmap": 0, "filter": 1, "ofmap": 2}


def write_layer_traces(layer: Gemm | Conv | CompatLayer, hw: Hardware, folder: Path) -> None:
    """Write the six trace files of one layer (compat semantics) into `folder`, creating it."""
    lay = layer if isinstance(layer, CompatLayer) else to_compat_layer(layer)
    res = run_compat(lay, hw, word_level=True)
    folder.mkdir(parents=True, exist_ok=True)
    for op in ("ifmap", "filter", "ofmap"):
        with open(folder / f"{op.upper()}_SRAM_TRACE.csv", "w") as fh:
            _sram_trace(res, hw, op, fh)
    for op in ("ifmap", "filter"):
        with open(folder / f"{op.upper()}_DRAM_TRACE.csv", "w") as fh:
            if isinstance(res.reads[op], CalcRead):
                _calc_dram_trace(res, op, fh)
            else:
                _user_dram_trace(res, hw, op, fh)
    with open(folder / "OFMAP_DRAM_TRACE.csv", "w") as fh:
        _ofmap_dram_trace(res, fh)


def _lanes(hw: Hardware, dataflow: str, op: str) -> int:
    if op == "ofmap":
        return hw.cols
    return hw.cols if (op == "ifmap") == (dataflow == "is") else hw.rows


def _served(res: CompatRun, rows: np.ndarray, op: str) -> np.ndarray:
    cycles = rows + res.memory.stall_before(rows) + (0 if op == "ofmap" else 1)
    for i, row in enumerate(rows.tolist()):
        if row in res.memory.event_outs:
            cycles[i] = res.memory.event_outs[row][SLOT[op]]
    return cycles


def _sram_trace(res: CompatRun, hw: Hardware, op: str, fh) -> None:
    geo = res.geo
    per, lanes = geo.rows_per_fold, _lanes(hw, geo.dataflow, op)
    for f in range(geo.grid.count):
        if op == "ofmap":
            addr, row, lane = fold_outputs(geo, f, res.offsets.ofmap)
        else:
            addr, row, lane = fold_requests(geo, op, f, res.offsets)
        block = np.full((per, lanes), -1, dtype=np.int64)
        block[row, lane] = addr
        rows = np.arange(per, dtype=np.int64) + f * per
        _write_rows(fh, np.column_stack((_served(res, rows, op), block)), "%i")


def _write_float_rows(fh, cycles: np.ndarray, body: np.ndarray, width: int) -> None:
    pad = np.ones((body.shape[0], width - body.shape[1]))
    mat = np.column_stack((cycles, body, pad.astype(np.int64))).astype(np.int64)
    if mat.size == 0 or int(np.abs(mat).max()) < _FLOAT_AS_INT_LIMIT:
        # str() of a whole float below 10^16 is its integer digits and ".0": integer formatting is ~10x faster
        # than float repr, and the text is the same.
        _write_rows(fh, mat, "%d.0")
    else:
        _write_rows(fh, mat.astype(float), "%s")


# Python writes floats from 10^16 up in exponent form ("1e+16"), so only smaller ones are written as integers.
_FLOAT_AS_INT_LIMIT = 10**16


# Rows formatted per write: one %-format over 2^16 values keeps the text of a write to about a megabyte.
_VALUES_PER_WRITE = 1 << 16


def _write_rows(fh, mat: np.ndarray, fmt: str) -> None:
    """np.savetxt(fh, mat, fmt=fmt, delimiter=",") byte for byte, streamed in blocks of rows: one string format
    over a block's values instead of one per row (savetxt's cost is its per-row Python formatting)."""
    rows, cols = mat.shape
    line = ",".join([fmt] * cols) + "\n"
    step = max(1, _VALUES_PER_WRITE // max(cols, 1))
    for i in range(0, rows, step):
        part = mat[i : i + step]
        fh.write((line * part.shape[0]) % tuple(part.ravel().tolist()))


def _calc_groups(res: CompatRun, op: str) -> list[np.ndarray]:
    """Addresses of each CALC prefetch: the segment's new words, each 1%-group in Python set order."""
    addr = res.streams[op][0]
    read: CalcRead = res.reads[op]
    prev = first_occurrence_prev(addr)
    bounds = [0, *(p + 1 for p in read.flush_positions), addr.size]
    groups = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        seg = addr[lo:hi]
        new = seg[prev[lo:hi] < lo].tolist()
        chunks = [list(set(new[i : i + read.set_words])) for i in range(0, len(new), read.set_words)]
        groups.append(np.asarray([a for c in chunks for a in c], dtype=np.int64))
    return groups


def _calc_dram_trace(res: CompatRun, op: str, fh) -> None:
    read: CalcRead = res.reads[op]
    rows = res.streams[op][1]
    groups = _calc_groups(res, op)
    flush_cycles = (read.flush_rows + res.memory.stall_before(read.flush_rows)).tolist()
    first = int(rows[0] + res.memory.stall_before(rows[:1])[0])
    windows = []
    if not flush_cycles:
        n = math.ceil(-(-read.tail_uniques // read.set_words) * read.set_words / 10)
        windows.append((-n - 1, -2, 10))
    else:
        n0 = math.ceil(50 * read.set_words / 10)
        windows.append((first - 2 - n0 + 1, first - 2, 10))
        starts = [first - 1, *(c + 1 for c in flush_cycles[:-1])]
        for k, (lo, hi) in enumerate(zip(starts, flush_cycles, strict=True)):
            elems = (
                50 * read.set_words
                if k + 1 < len(flush_cycles)
                else -(-read.tail_uniques // read.set_words) * read.set_words
            )
            windows.append((lo, hi, math.ceil(elems / (hi - lo + 1))))
    width = max(bw for _, _, bw in windows)
    for (lo, hi, bw), words in zip(windows, groups, strict=True):
        count = hi - lo + 1
        body = np.full(count * bw, -1, dtype=np.int64)
        body[: words.size] = words
        _write_float_rows(fh, np.arange(lo, hi + 1) + 1, body.reshape(count, bw), width)


def _user_dram_trace(res: CompatRun, hw: Hardware, op: str, fh) -> None:
    read: UserRead = res.reads[op]
    bw, total = read.bw, hw.sram_words(op)
    active = math.ceil(total * 0.5)
    flat, size = prefetch_sequence(res.geo, op, res.offsets, keep_idle=True)
    lines = -(-size // bw)
    fetch = np.full(lines * bw, -1, dtype=np.int64)
    fetch[:size] = flat
    fetch = fetch.reshape(lines, bw)
    n0 = read.first_lines
    req = fetch[:n0]
    next_col = 0
    if n0 * bw > active:
        next_col = active % bw
        req[-1, next_col:] = -1
    _write_float_rows(fh, np.arange(n0) - n0, req, bw)
    step = read.lines_per_fetch
    start = n0 % lines if n0 * bw > active else (n0 + 1) % lines
    for lpc in (read.lpc() - step - 1).tolist():
        if start + step > lines:
            req = np.concatenate((fetch[start:], fetch[: min(start + step - lines, start)]))
        else:
            req = fetch[start : start + step]
        req[0, :next_col] = -1
        if step * bw > active:
            req[-1, active % bw :] = -1
        _write_float_rows(fh, lpc + 2 + np.arange(req.shape[0]), req, bw)
        start = step % lines if step * bw > active else (step + 1) % lines


def _ofmap_dram_trace(res: CompatRun, fh) -> None:
    """Drained lines with their cycles. Holds the OFMAP write addresses (one per write, far fewer than the
    trace's cycles x lanes) and writes one drain at a time."""
    geo, wb = res.geo, res.memory.write_buffer
    stream = np.concatenate([fold_outputs(geo, f, res.offsets.ofmap)[0] for f in range(geo.grid.count)])
    cuts = np.asarray(sorted({0, *wb.closes, stream.size}))
    starts = np.concatenate([np.arange(lo, hi, wb.bw) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)])
    ends = np.minimum(starts + wb.bw, cuts[np.searchsorted(cuts, starts, side="right")])
    pos = 0
    for start, count in wb.drain_log:
        idx = starts[pos : pos + count, None] + np.arange(wb.bw)[None, :]
        valid = idx < ends[pos : pos + count, None]
        body = np.where(valid, stream[np.minimum(idx, stream.size - 1)], -1)
        _write_float_rows(fh, start + np.arange(count), body, wb.bw)
        pos += count
