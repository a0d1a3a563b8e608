"""Per-cycle address traces in SCALE-Sim 3.0.0's format, streamed to disk fold by fold or prefetch by prefetch.

Six files per layer, as scalesim writes them into <run>/layer<i>/:
- {IFMAP,FILTER,OFMAP}_SRAM_TRACE.csv: one line per demand row, `cycle,addr,...` with -1 for idle lanes, as
  integers. The cycle is when the request is served (stalls included).
- {IFMAP,FILTER,OFMAP}_DRAM_TRACE.csv: one line per DRAM transfer cycle, `cycle,addr,...` printed as floats
  ("-50.0,0.0,1.0"). Lines shorter than the widest are padded with 1.0, as scalesim's np.ones padding does, and
  CALC-mode prefetches list each 1%-of-SRAM group in Python set order, as scalesim's list(set) does.
Only a few megabytes of lines (a group of folds, one prefetch) are in memory at a time; traces exist to be written,
never to be held. The text comes from the C++ formatter of csrc/text_rows.cpp when the extension is built.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import numpy as np

from accelkit._native import available, native
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
    events = _event_table(res)
    for op in ("ifmap", "filter", "ofmap"):
        with open(folder / f"{op.upper()}_SRAM_TRACE.csv", "wb") as fh:
            _sram_trace(res, hw, op, events, fh)
    for op in ("ifmap", "filter"):
        with open(folder / f"{op.upper()}_DRAM_TRACE.csv", "wb") as fh:
            if isinstance(res.reads[op], CalcRead):
                _calc_dram_trace(res, op, fh)
            else:
                _user_dram_trace(res, hw, op, fh)
    with open(folder / "OFMAP_DRAM_TRACE.csv", "wb") as fh:
        _ofmap_dram_trace(res, fh)


def _lanes(hw: Hardware, dataflow: str, op: str) -> int:
    if op == "ofmap":
        return hw.cols
    return hw.cols if (op == "ifmap") == (dataflow == "is") else hw.rows


def _served(res: CompatRun, events: tuple[np.ndarray, np.ndarray], lo: int, hi: int, op: str) -> np.ndarray:
    """Cycle at which each demand row lo .. hi-1 is served: its row plus the stalls before it, or the cycle the
    replay logged for it (`events`, from _event_table)."""
    rows = np.arange(lo, hi, dtype=np.int64)
    cycles = rows + res.memory.stall_before(rows) + (0 if op == "ofmap" else 1)
    keys, outs = events
    cut = np.searchsorted(keys, [lo, hi])
    cycles[keys[cut[0] : cut[1]] - lo] = outs[cut[0] : cut[1], SLOT[op]]
    return cycles


def _event_table(res: CompatRun) -> tuple[np.ndarray, np.ndarray]:
    """The memory's logged rows sorted, and their (ifmap, filter, ofmap) cycles."""
    events = res.memory.event_outs
    keys = np.fromiter(events, dtype=np.int64, count=len(events))
    outs = np.asarray([events[k] for k in keys.tolist()], dtype=np.int64).reshape(-1, 3)
    order = np.argsort(keys)
    return keys[order], outs[order]


# Demand rows of one write: a group of folds filling about 2^18 values keeps a write's text to a few megabytes.
_VALUES_PER_WRITE = 1 << 18


def _sram_trace(res: CompatRun, hw: Hardware, op: str, events: tuple[np.ndarray, np.ndarray], fh) -> None:
    geo = res.geo
    per, lanes = geo.rows_per_fold, _lanes(hw, geo.dataflow, op)
    group = max(1, _VALUES_PER_WRITE // max(per * lanes, 1))
    for first in range(0, geo.grid.count, group):
        folds = range(first, min(first + group, geo.grid.count))
        block = np.full((len(folds) * per, lanes), -1, dtype=np.int64)
        for k, f in enumerate(folds):
            if op == "ofmap":
                addr, row, lane = fold_outputs(geo, f, res.offsets.ofmap)
            else:
                addr, row, lane = fold_requests(geo, op, f, res.offsets)
            block[row + k * per, lane] = addr
        _write_text(fh, _served(res, events, first * per, (folds[-1] + 1) * per, op), block)


def _write_float_rows(fh, cycles: np.ndarray, body: np.ndarray, width: int) -> None:
    """Rows `cycle, body..., 1, ...` (`width` values after the cycle) as scalesim's float DRAM traces print them."""
    _write_text(fh, np.asarray(cycles, dtype=np.int64), np.asarray(body, dtype=np.int64), width=width, floats=True)


def _write_text(fh, lead: np.ndarray, body: np.ndarray, *, width: int | None = None, floats: bool = False) -> None:
    """Rows lead[i], body[i, :], then 1s up to `width` values after the lead, into the binary file `fh`, as
    np.savetxt(fmt="%i", delimiter=",") writes them, or with `floats` as it writes their float values ("-50.0",
    "1e+16"). The C++ formatter (accelkit._C.format_rows) writes them when it is built and every value is a float
    that prints as its integer digits; otherwise Python's %-format does, in blocks of rows."""
    width = body.shape[1] if width is None else width
    exact = not floats or _prints_as_integer(lead, body)
    if exact and available():
        step = max(1, _VALUES_PER_WRITE // (width + 1))
        for i in range(0, body.shape[0], step):
            text = native().format_rows(lead[i : i + step], body[i : i + step], width=width, float_suffix=floats)
            fh.write(text)
        return
    pad = np.ones((body.shape[0], width - body.shape[1]), dtype=np.int64)
    mat = np.column_stack((lead, body, pad))
    if exact:
        _write_rows(fh, mat, "%d.0" if floats else "%i")
    else:
        _write_rows(fh, mat.astype(float), "%s")


def _prints_as_integer(*parts: np.ndarray) -> bool:
    """True when str(float(v)) is v's digits and ".0" for every value: |v| < 2^53, so float(v) is exact and below
    10^16, where Python switches to exponent form."""
    return all(
        p.size == 0 or (int(p.max()) < _FLOAT_AS_INT_LIMIT and int(p.min()) > -_FLOAT_AS_INT_LIMIT) for p in parts
    )


_FLOAT_AS_INT_LIMIT = 2**53


def _write_rows(fh, mat: np.ndarray, fmt: str) -> None:
    """np.savetxt(fh, mat, fmt=fmt, delimiter=",") byte for byte into the binary file `fh`, streamed in blocks of
    rows: one string format over a block's values instead of one per row (savetxt's cost is its per-row Python
    formatting). The fallback of the C++ formatter."""
    rows, cols = mat.shape
    line = ",".join([fmt] * cols) + "\n"
    step = max(1, _VALUES_PER_WRITE // max(cols, 1))
    for i in range(0, rows, step):
        part = mat[i : i + step]
        fh.write(((line * part.shape[0]) % tuple(part.ravel().tolist())).encode("ascii"))


def _calc_groups(res: CompatRun, op: str) -> list[np.ndarray]:
    """Addresses of each CALC prefetch: the segment's new words, each 1%-group in Python set order."""
    addr = np.ascontiguousarray(res.streams[op][0], dtype=np.int64)
    read: CalcRead = res.reads[op]
    bounds = np.asarray([0, *(p + 1 for p in read.flush_positions), addr.size], dtype=np.int64)
    found = native().calc_new_words(addr, bounds) if available() else None
    if found is not None:
        words, ends = found
        starts = np.concatenate(([0], ends[:-1]))
        return [
            _set_orders(words[lo:hi], read.set_words) for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
    prev = first_occurrence_prev(addr)
    groups = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        groups.append(_set_orders(addr[lo:hi][prev[lo:hi] < lo], read.set_words))
    return groups


def _set_orders(words: np.ndarray, size: int) -> np.ndarray:
    """`words` (distinct) cut into groups of `size`, each in the order list(set(group)) gives, concatenated.

    CPython hashes an int 0 <= v < 2^61 - 1 to itself and iterates a set in table-slot order; when no two of a
    group's words share a slot (v & mask, the table's size being fixed by the count of distinct words), every word
    sits in its own home slot and the order is the ascending order of v & mask, whatever the insertion order. Groups
    with a shared slot (linear probing would move one) are built as Python sets. The C++ helper places each group
    in a scratch table and reads it back in slot order; NumPy sorts each group by slot."""
    full = words.size - words.size % size
    if available():
        slots_last = _set_table_slots(words.size - full) if words.size > full else 1
        words = np.ascontiguousarray(words, dtype=np.int64)
        out, clash = native().calc_set_orders(words, size, _set_table_slots(size), slots_last)
        for g in np.flatnonzero(clash).tolist():
            out[g * size : (g + 1) * size] = list(set(words[g * size : (g + 1) * size].tolist()))
        return out
    out = np.empty_like(words)
    for lo, hi, width in ((0, full, size), (full, words.size, words.size - full)):
        if hi == lo:
            continue
        block = words[lo:hi].reshape(-1, width)
        slots = block & (_set_table_slots(width) - 1)
        order = np.argsort(slots, axis=1)
        ordered = np.take_along_axis(slots, order, axis=1)
        shared = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        shared |= (block < 0).any(axis=1) | (block >= _INT_HASH_MODULUS).any(axis=1)
        rows = np.take_along_axis(block, order, axis=1)
        for r in np.flatnonzero(shared).tolist():
            rows[r] = list(set(block[r].tolist()))
        out[lo:hi] = rows.ravel()
    return out


# CPython's hash of an int is the int modulo the Mersenne prime 2^61 - 1 (sys.hash_info.modulus).
_INT_HASH_MODULUS = sys.hash_info.modulus


@functools.cache
def _set_table_slots(count: int) -> int:
    """Slots of the hash table of a set built from `count` distinct objects: CPython resizes as it inserts, by a
    rule that depends only on the count. A set's size beyond an empty one's is its table (16 bytes a slot) when
    that table is not the built-in 8-slot one."""
    extra = sys.getsizeof(set(range(count))) - sys.getsizeof(set())
    return extra // 16 if extra else 8


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
