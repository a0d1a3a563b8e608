"""SCALE-Sim 3.0.0's memory model, reproduced event by event instead of cycle by cycle.

SCALE-Sim walks every demand row (cycle) through three buffers. Between events nothing changes but counters, so
this module jumps from event to event: a read prefetch (USER mode), a write-buffer drain or a write stall. Row
ranges without events are skipped with a searchsorted over cumulative write counts; an event row is replayed
exactly, in runs of words between the words that change the buffer state.

Buffers, as in SCALE-Sim (numbers for 1 byte words, `total` = SRAM words):
- Read buffer, CALC mode: it remembers the distinct addresses seen since its last flush; when they reach
  50 * floor(total / 100) it flushes (a DRAM prefetch of those words) and starts over.
- Read buffer, USER mode: the operand's prefetch order is cut into sets of ceil(total / 100) words; a window of
  the first ceil(total/2 / set) sets is resident. A demanded word outside the window advances it by the prefetch
  sets, each advance a DRAM fetch of ceil(prefetch / bw) lines that starts right after the previous fetch.
- Write buffer: writes fill lines of `bw` words; once more than half the SRAM is used and no drain is running,
  the partly filled line is closed and ceil(half / bw) lines drain at one line per cycle. A write that finds the
  SRAM full during a drain stalls until the drain ends.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from accelkit._native import available, native
from accelkit.sim.scalesim.streams import DemandTiles, RowCounts


def first_occurrence_prev(addr: np.ndarray) -> np.ndarray:
    """prev[j] = index of the previous request for the same address, -1 if none."""
    n = addr.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lo, span = int(addr.min()), int(addr.max()) - int(addr.min()) + 1
    bits = (n - 1).bit_length()
    if span < 2 ** (62 - bits):
        # One key per request, (address, index) packed in 62 bits, sorted by value: the same order as a stable
        # argsort of the addresses, and NumPy's vectorised sort of plain int64 values is several times faster.
        keys = np.sort(((addr - lo) << bits) | np.arange(n, dtype=np.int64))
        order, s = keys & ((1 << bits) - 1), keys >> bits
    else:
        order = np.argsort(addr, kind="stable")
        s = addr[order]
    prev = np.full(addr.size, -1, dtype=np.int64)
    same = np.flatnonzero(s[1:] == s[:-1]) + 1
    prev[order[same]] = order[same - 1]
    return prev


@dataclass(frozen=True)
class CalcRead:
    """CALC-mode read buffer outcome: the stream positions where it flushed and its DRAM word count."""

    flush_rows: np.ndarray
    dram_reads: int
    tail_uniques: int
    set_words: int
    flush_positions: tuple[int, ...] = ()


def calc_read(addr: np.ndarray, rows: np.ndarray, total_words: int) -> CalcRead:
    """CALC read buffer replayed over a demand stream word by word (any layer): a request is new when no earlier
    request of the same address falls in the current segment, and a segment ends at its 50 x set_words-th new word."""
    set_words = total_words // 100
    if set_words < 1:
        raise ValueError(f"SCALE-Sim needs SRAMs of at least 100 words, got {total_words}")
    cap = 50 * set_words
    prev = first_occurrence_prev(addr)
    flushes, reads, p, n = [], 0, 0, addr.size
    # A flush needs at least `cap` more requests, usually a few times that (re-reads): scanning 4 x cap at once
    # finds most flushes in one NumPy pass; misses double the window, so the scan stays O(n) overall.
    chunk = max(4 * cap, 1 << 14)
    while p < n:
        stop = min(n, p + chunk)
        seen = np.cumsum(prev[p:stop] < p)
        if seen[-1] >= cap:
            q = p + int(np.searchsorted(seen, cap))
            flushes.append(q)
            reads += cap
            p, chunk = q + 1, max(4 * cap, 1 << 14)
        elif stop == n:
            reads += int(seen[-1])
            return CalcRead(rows[np.asarray(flushes, dtype=np.int64)], reads, int(seen[-1]), set_words, tuple(flushes))
        else:
            chunk *= 2
    return CalcRead(rows[np.asarray(flushes, dtype=np.int64)], reads, 0, set_words, tuple(flushes))


def calc_read_dram(res: CalcRead, first_cycle: int, flush_cycles: np.ndarray) -> tuple[int, int]:
    """(start, stop) cycle of a CALC read buffer's DRAM trace; prefetches are timed at 10 words per cycle."""
    if flush_cycles.size == 0:
        sets = -(-res.tail_uniques // res.set_words)
        return -math.ceil(sets * res.set_words / 10), -1
    return first_cycle - math.ceil(50 * res.set_words / 10), int(flush_cycles[-1]) + 1


@dataclass(frozen=True)
class UserRead:
    """USER-mode read buffer outcome: one demand row per DRAM prefetch (in order) and the fetch geometry."""

    event_rows: np.ndarray
    first_lines: int
    lines_per_fetch: int
    bw: int

    @property
    def dram_reads(self) -> int:
        return (self.first_lines + self.event_rows.size * self.lines_per_fetch) * self.bw

    def lpc(self) -> np.ndarray:
        """Cycle each prefetch completes: the first fetch ends at -1, each next one L + 1 cycles later."""
        return -1 + np.arange(1, self.event_rows.size + 1, dtype=np.int64) * (self.lines_per_fetch + 1)

    def dram_window(self) -> tuple[int, int]:
        stop = int(self.lpc()[-1]) if self.event_rows.size else -1
        return -self.first_lines, stop


class _Window:
    """The resident prefetch sets as a count per address: how many of the sets in the window hold it.

    Counts are indexed by address minus the lowest prefetched one (operand addresses are a compact range). A
    demanded word hits when its count is positive, one gather for a whole chunk of requests; advancing the window
    subtracts the words of the sets it drops and adds those of the sets it takes, so the work is the words
    prefetched, not the requests times the sets that hold a word (im2col repeats a word in up to R x S / stride^2
    sets).
    """

    def __init__(self, seq: np.ndarray, set_words: int, n_active: int):
        self.n_sets = seq.size // set_words + 1
        self.set_words = set_words
        self.lo = int(seq.min())
        self.seq = seq - self.lo
        self.present = np.bincount(self.seq)
        self.start = 0
        self.n_active = n_active
        # Every word prefetched once (GEMMs, every filter): a word is resident when its one set is in the window,
        # a modular compare, and advancing the window costs nothing.
        self.unique = int(self.present.max()) == 1
        if self.unique:
            self.set_of = np.full(self.present.size, -1, dtype=np.int64)
            self.set_of[self.seq] = np.arange(seq.size, dtype=np.int64) // set_words
            return
        self.count = np.zeros(self.present.size, dtype=np.int64)
        self._add(0, n_active, 1)

    def _add(self, first: int, sets: int, sign: int) -> None:
        """Add `sign` to the count of every word of sets first, first + 1, ... (mod n_sets), `sets` of them."""
        first %= self.n_sets
        for a, b in ((first, min(first + sets, self.n_sets)), (0, max(first + sets - self.n_sets, 0))):
            if b <= a:
                continue
            words = self.seq[a * self.set_words : b * self.set_words]
            if self.count.size < 8 * words.size:
                # A dense histogram costs the address range once; np.add.at costs ~10x a gather per word.
                self.count += sign * np.bincount(words, minlength=self.count.size)
            else:
                np.add.at(self.count, words, sign)

    def advance(self, sets: int) -> None:
        if not self.unique:
            self._add(self.start, sets, -1)
            self._add(self.start + self.n_active, sets, 1)
        self.start = (self.start + sets) % self.n_sets

    def check(self, addr: np.ndarray) -> None:
        """Refuse a demand stream reaching outside the prefetched address range (words inside it that are never
        prefetched are refused at their first miss)."""
        if addr.size and (int(addr.min()) < self.lo or int(addr.max()) - self.lo >= self.present.size):
            raise ValueError("a demanded address is never prefetched; SCALE-Sim would loop forever")

    def hits(self, addr: np.ndarray) -> np.ndarray:
        if self.unique:
            sets = self.set_of[addr - self.lo]
            return (sets >= 0) & ((sets - self.start) % self.n_sets < self.n_active)
        return self.count[addr - self.lo] > 0

    def prefetched(self, address: int) -> bool:
        return bool(self.present[address - self.lo])


def user_read(
    addr: np.ndarray,
    rows: np.ndarray,
    seq: np.ndarray,
    seq_len: int,
    total_words: int,
    bw: int,
    *,
    use_native: bool | None = None,
) -> UserRead:
    """Replay SCALE-Sim's USER-mode read buffer over a demand stream; returns the row of every prefetch. The C++
    loop (accelkit._C) runs when the extension is built, unless `use_native` is False; NumPy otherwise."""
    if seq.size and (available() if use_native is None else use_native):
        addr, rows = (np.ascontiguousarray(x, dtype=np.int64) for x in (addr, rows))
        whole = DemandTiles(np.zeros(1, dtype=np.int64), np.asarray([0, addr.size], dtype=np.int64), addr, rows, 0)
        return user_read_tiles(whole, seq, seq_len, total_words, bw)
    set_words, active, n_active, n_prefetch = _user_window(total_words, seq.size)
    events = _user_read_events(addr, rows, _Window(seq, set_words, n_active), n_prefetch)
    return _user_result(events, seq_len, total_words, active, bw)


def user_read_tiles(tiles: DemandTiles, seq: np.ndarray, seq_len: int, total_words: int, bw: int) -> UserRead:
    """user_read over a tiled demand stream, in C++ (needs accelkit._C and a non-empty `seq`)."""
    set_words, active, n_active, n_prefetch = _user_window(total_words, seq.size)
    t = tiles
    seq = np.ascontiguousarray(seq, dtype=np.int64)
    events = native().scalesim_user_read(
        t.fold_tile, t.tile_start, t.addr, t.row, t.rows_per_fold, seq, set_words, n_active, n_prefetch
    )
    return _user_result(events, seq_len, total_words, active, bw)


def all_resident(seq_words: int, total_words: int) -> bool:
    """True when the first window of a USER read buffer holds all `seq_words` prefetched words: no request can
    miss (every demanded word is prefetched, both come from the same operand matrix), so no prefetch follows."""
    set_words, _, n_active, _ = _user_window(total_words, seq_words)
    return 0 < seq_words <= n_active * set_words


def user_read_resident(seq_len: int, total_words: int, bw: int) -> UserRead:
    """user_read's outcome when all_resident: the first fetch only."""
    active = math.ceil(total_words * 0.5)
    return _user_result(np.zeros(0, dtype=np.int64), seq_len, total_words, active, bw)


def _user_window(total_words: int, seq_words: int) -> tuple[int, int, int, int]:
    """(words per set, active words, sets in the window, sets per prefetch) of a USER read buffer."""
    set_words = math.ceil(total_words / 100)
    active = math.ceil(total_words * 0.5)
    n_sets = seq_words // set_words + 1
    n_active = min(math.ceil(active / set_words), n_sets)
    n_prefetch = min(math.ceil((total_words - active) / set_words), n_sets - n_active)
    return set_words, active, n_active, n_prefetch


def _user_result(events: np.ndarray, seq_len: int, total_words: int, active: int, bw: int) -> UserRead:
    fetch_lines = -(-seq_len // bw)
    first = min(-(-active // bw), fetch_lines)
    per = -(-(total_words - active) // bw)
    return UserRead(events, first, per, bw)


def _user_read_events(addr: np.ndarray, rows: np.ndarray, window: _Window, n_prefetch: int) -> np.ndarray:
    """NumPy replay of the read buffer: the demand row of every prefetch."""
    window.check(addr)
    events: list[int] = []
    p, n = 0, addr.size
    # Misses come one per prefetch, from a few to thousands of requests apart. Each NumPy pass scans four times the
    # last gap (at least 256 requests) and doubles while no miss turns up, so the scan stays O(requests).
    chunk = 1 << 14
    while p < n:
        stop = min(n, p + chunk)
        miss = np.flatnonzero(~window.hits(addr[p:stop]))
        if miss.size == 0:
            p, chunk = stop, chunk * 2
            continue
        q = p + int(miss[0])
        if not window.prefetched(int(addr[q])):
            raise ValueError("a demanded address is never prefetched; SCALE-Sim would loop forever")
        word = addr[q : q + 1]
        for _ in range(window.n_sets + 1):
            if n_prefetch == 0:
                break
            window.advance(n_prefetch)
            events.append(int(rows[q]))
            if window.hits(word)[0]:
                break
        else:
            raise ValueError("read buffer window never reaches a demanded address")
        p, chunk = q + 1, max(256, 4 * (q + 1 - p))
    return np.asarray(events, dtype=np.int64)


class WriteBuffer:
    """SCALE-Sim's OFMAP write buffer. Lines not yet drained are kept as segments [full lines, partial fill]: a
    partial line exists only where a drain closed a half-filled line, and SCALE-Sim counts a drain as whole lines
    minus the idle slots of its last line only, so partial lines in the middle of a drain count as full."""

    def __init__(self, total_words: int, bw: int):
        self.bw = bw
        self.active = math.ceil(total_words * 0.5)
        self.lines_per_drain = -(-(total_words - self.active) // bw)
        self.free = total_words
        self.drain_end = 0
        self.fill = 0
        self.segments: deque[list[int]] = deque()
        self.writes_to_dram = 0
        self.first_drain = None
        self.last_drain = None
        self.stored = 0
        self.closes: list[int] = []
        self.drain_log: list[tuple[int, int]] = []

    def _add_full_lines(self, count: int) -> None:
        if count == 0:
            return
        if self.segments and self.segments[-1][1] == 0:
            self.segments[-1][0] += count
        else:
            self.segments.append([count, 0])

    def store_bulk(self, words: int) -> None:
        """Store `words` writes that trigger nothing (quiet rows)."""
        self.free -= words
        self.stored += words
        lines, self.fill = divmod(self.fill + words, self.bw)
        self._add_full_lines(lines)

    def _close_line(self) -> None:
        if self.fill:
            self.closes.append(self.stored)
            if self.segments and self.segments[-1][1] == 0:
                self.segments[-1][1] = self.fill
            else:
                self.segments.append([0, self.fill])
            self.fill = 0

    def drain(self, start: int) -> int:
        """Drain up to one drain's worth of lines from `start`, one line per cycle; returns the last cycle."""
        want, lines, deficit = self.lines_per_drain, 0, 0
        while want and self.segments:
            seg = self.segments[0]
            take = min(seg[0], want)
            seg[0] -= take
            lines, want = lines + take, want - take
            if take:
                deficit = 0
            if want and seg[0] == 0 and seg[1]:
                lines, want, deficit = lines + 1, want - 1, self.bw - seg[1]
                seg[1] = 0
            if seg[0] == 0 and seg[1] == 0:
                self.segments.popleft()
        if lines == 0:
            raise ValueError("write buffer drained with nothing to drain (SCALE-Sim raises IndexError here)")
        words = lines * self.bw - deficit
        self.writes_to_dram += words
        self.free += words
        self.drain_end = start + lines - 1
        self.drain_log.append((start, lines))
        self.first_drain = start if self.first_drain is None else min(self.first_drain, start)
        self.last_drain = self.drain_end if self.last_drain is None else max(self.last_drain, self.drain_end)
        return self.drain_end

    def store_row(self, words: int, cycle: int) -> int:
        """Store one demand row's writes at `cycle`; returns the cycle the row completes.

        SCALE-Sim checks after every word; only the word that empties the buffer during a drain (a stall) or
        pushes it past half full when idle (a new drain) changes anything, so the row is stored in runs."""
        cur, left = cycle, words
        while left:
            busy = cur < self.drain_end
            run = max(self.free, 1) if busy else max(self.free - self.active + 1, 1)
            if left < run:
                self.store_bulk(left)
                break
            self.store_bulk(run)
            left -= run
            if busy:
                cur = self.drain_end
            else:
                self._close_line()
                self.drain(cur)
        return cur

    def next_event(self, r: int, limit: int, stall: int, counts: RowCounts) -> int:
        """First row in [r, limit) where a write stalls or starts a drain, given `stall` cycles so far."""
        done = counts.cum(r - 1)
        first_busy_free = self.drain_end - stall
        i1 = counts.next_write(max(counts.search(done + self.free, "left"), r))
        if i1 >= first_busy_free:
            i1 = limit
        i2 = counts.search(done + self.free - self.active, "right")
        i2 = counts.next_write(max(i2, r, first_busy_free))
        return min(i1, i2, limit)

    def drain_all(self, cycle: int) -> None:
        self._close_line()
        while self.segments:
            cycle = self.drain(cycle) + 1


@dataclass(frozen=True)
class MemoryRun:
    """Stall-cycle timeline of a layer: S(row) is a step function, plus per-row outputs at event rows."""

    change_rows: np.ndarray
    change_stalls: np.ndarray
    event_outs: dict[int, tuple[int, int, int]]
    stall_cycles: int
    last_ofmap_cycle: int
    write_buffer: WriteBuffer

    def stall_before(self, rows: np.ndarray) -> np.ndarray:
        return self.change_stalls[np.searchsorted(self.change_rows, rows, side="right") - 1]

    def read_cycle(self, row: int, which: int) -> int:
        if row in self.event_outs:
            return self.event_outs[row][which]
        return row + int(self.stall_before(np.asarray([row]))[0]) + 1

    def write_cycle(self, row: int) -> int:
        if row in self.event_outs:
            return self.event_outs[row][2]
        return row + int(self.stall_before(np.asarray([row]))[0])


def _read_out(cycle: int, lpcs: list[int]) -> int:
    # SCALE-Sim adds a positive wait twice and a negative one once (read_buffer.service_reads), so a late prefetch
    # costs double and an early one pulls the reported service cycle back to the prefetch's own cycle.
    out = cycle + 1
    for lpc in lpcs:
        out = lpc + max(lpc - out, 0)
    return out


def run_memory(counts: RowCounts, wb: WriteBuffer, reads: tuple[UserRead, ...]) -> MemoryRun:
    """Walk the demand rows event by event: USER read prefetches, write drains and write stalls."""
    n_rows = counts.rows
    ev = [(rd.event_rows, rd.lpc()) for rd in reads]
    heads = [0] * len(ev)
    stall, r, outs = 0, 0, {}
    change_rows, change_stalls = [0], [0]
    while r < n_rows:
        nxt_read = min((int(rows[h]) for (rows, _), h in zip(ev, heads, strict=True) if h < rows.size), default=n_rows)
        e = wb.next_event(r, nxt_read, stall, counts)
        if e >= n_rows:
            wb.store_bulk(counts.total - counts.cum(r - 1))
            break
        wb.store_bulk(counts.cum(e - 1) - counts.cum(r - 1))
        cycle = e + stall
        read_outs = []
        for i, (rows, lpc) in enumerate(ev):
            h0 = heads[i]
            while heads[i] < rows.size and rows[heads[i]] == e:
                heads[i] += 1
            read_outs.append(_read_out(cycle, [int(x) for x in lpc[h0 : heads[i]]]))
        write_out = wb.store_row(counts.count(e), cycle)
        read_outs += [cycle + 1] * (2 - len(read_outs))
        outs[e] = (read_outs[0], read_outs[1], write_out)
        extra = max(read_outs[0] - cycle - 1, read_outs[1] - cycle - 1, write_out - cycle)
        if extra:
            stall += extra
            change_rows.append(e + 1)
            change_stalls.append(stall)
        r = e + 1
    last = n_rows - 1
    last_out = outs[last][2] if last in outs else last + stall
    wb.drain_all(last_out)
    return MemoryRun(np.asarray(change_rows), np.asarray(change_stalls), outs, stall, last_out, wb)


def calc_read_by_fold(keys: np.ndarray, sizes: np.ndarray, total_words: int, row_of) -> CalcRead:
    """CALC read buffer replayed per fold, valid when folds read distinct words and equal keys mean equal tiles
    (see streams.unique_im2col). `row_of(fold, position)` gives the global demand row of a request."""
    set_words = total_words // 100
    if set_words < 1:
        raise ValueError(f"SCALE-Sim needs SRAMs of at least 100 words, got {total_words}")
    cap = 50 * set_words
    seen: set[int] = set()
    partial: tuple[int, int] | None = None
    used = reads = 0
    flushes: list[int] = []
    for f, (key, n) in enumerate(zip(keys.tolist(), sizes.tolist(), strict=True)):
        new_end = 0 if key in seen else (partial[1] if partial and partial[0] == key else n)
        pos, last_flush = 0, -1
        while pos < new_end:
            need = cap - used
            if new_end - pos < need:
                used += new_end - pos
                break
            last_flush = pos + need - 1
            flushes.append(row_of(f, last_flush))
            reads += cap
            used, pos, new_end = 0, last_flush + 1, n
            seen.clear()
            partial = None
        if last_flush >= 0:
            partial = (key, last_flush + 1)
        else:
            seen.add(key)
            if partial and partial[0] == key:
                partial = None
    return CalcRead(np.asarray(flushes, dtype=np.int64), reads + used, used, set_words)
