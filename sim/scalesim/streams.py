"""The address streams SCALE-Sim 3.0.0 feeds its memory model, generated fold by fold with NumPy.

SCALE-Sim builds dense per-cycle demand matrices (one row per cycle, one column per PE edge lane, -1 = idle) and
walks them in Python. Here each operand's demand is a pair of flat arrays: the word address and the demand row
(cycle before stalls) of every non-idle request, in the order SCALE-Sim visits them (row by row, lanes left to
right). The OFMAP only needs a count per row, because its write buffer ignores addresses.

Layer geometry is SCALE-Sim's: valid convolution with Ho = ceil((H - R + s) / s), the extra output row or column
of an uneven stride reading -1 (nothing) where the window leaves the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from accelkit.sim.compute import FoldGrid, fold_cycles, fold_grid, spatial_dims
from accelkit.sim.workloads import Conv, Gemm


@dataclass(frozen=True)
class CompatLayer:
    """A layer as SCALE-Sim sees it: IFMAP H x W x C, N filters of R x S x C, strides, batch 1, no padding."""

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride_h: int
    stride_w: int

    @property
    def ofmap_h(self) -> int:
        return -(-(self.ifmap_h - self.filter_h + self.stride_h) // self.stride_h)

    @property
    def ofmap_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w + self.stride_w) // self.stride_w)

    @property
    def m(self) -> int:
        return self.ofmap_h * self.ofmap_w

    @property
    def k(self) -> int:
        return self.filter_h * self.filter_w * self.channels

    @property
    def n(self) -> int:
        return self.num_filters

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k

    def as_workload(self) -> Gemm | Conv:
        """This layer as a Gemm (an `M, N, K` row, which SCALE-Sim stores as a 1 x K filter over an M x K IFMAP)
        or an unpadded batch-1 Conv; compat mode maps both back to this identical layer."""
        row_of_gemm = self.filter_h == self.channels == self.stride_h == self.stride_w == 1
        if row_of_gemm and self.filter_w == self.ifmap_w:
            return Gemm(name=self.name, m=self.ifmap_h, n=self.num_filters, k=self.ifmap_w)
        fields = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters", "stride_h", "stride_w")
        return Conv(name=self.name, **{f: getattr(self, f) for f in fields})


@dataclass(frozen=True)
class Offsets:
    ifmap: int
    filter: int
    ofmap: int


@lru_cache(maxsize=8)
def _im2col_tables(layer: CompatLayer) -> tuple[np.ndarray, ...]:
    """An im2col address split into a part per output pixel p and a part per window index j, so that
    addr = pixel[p] + window[j], valid where win_row[j] < rows_left[p] and win_col[j] < cols_left[p]: two gathers
    per request instead of four divisions (O(M + K) tables, cached for the folds of a layer)."""
    p, j = np.arange(layer.m, dtype=np.int64), np.arange(layer.k, dtype=np.int64)
    orow, ocol = np.divmod(p, layer.ofmap_w)
    i_row, i_col = orow * layer.stride_h, ocol * layer.stride_w
    c_row, rest = np.divmod(j, layer.filter_w * layer.channels)
    c_col, ch = np.divmod(rest, layer.channels)
    pixel = (i_row * layer.ifmap_w + i_col) * layer.channels
    window = (c_row * layer.ifmap_w + c_col) * layer.channels + ch
    return pixel, window, c_row, c_col, layer.ifmap_h - i_row, layer.ifmap_w - i_col


def dense_windows(layer: CompatLayer) -> bool:
    """Ho = (H - R) / s + 1 and Wo likewise, exactly: every window lies inside the input (no -1 im2col entry)."""
    return (layer.ifmap_h - layer.filter_h) % layer.stride_h == 0 and (
        layer.ifmap_w - layer.filter_w
    ) % layer.stride_w == 0


def ifmap_addr(layer: CompatLayer, p: np.ndarray, j: np.ndarray, offset: int) -> np.ndarray:
    """Address of im2col element (output pixel p, window index j); -1 where the window leaves the input."""
    if layer.ofmap_w == 1 and layer.filter_h == 1 and layer.filter_w == layer.ifmap_w and layer.stride_h == 1:
        # A GEMM topology row (IFMAP M x K, filter 1 x K): row p of A starts at p * K * C.
        return p * (layer.ifmap_w * layer.channels) + j + offset
    pixel, window, c_row, c_col, rows_left, cols_left = _im2col_tables(layer)
    addr = pixel[p] + window[j] + offset
    if dense_windows(layer):
        return addr
    valid = (c_row[j] < rows_left[p]) & (c_col[j] < cols_left[p])
    return np.where(valid, addr, -1)


def filter_addr(layer: CompatLayer, j: np.ndarray, f: np.ndarray, offset: int) -> np.ndarray:
    return f * layer.k + j + offset


@dataclass(frozen=True)
class Geometry:
    """Fold grid plus the demand-matrix height of one fold (its stall-free cycles)."""

    layer: CompatLayer
    dataflow: str
    grid: FoldGrid
    rows_per_fold: int

    @property
    def total_rows(self) -> int:
        return self.grid.count * self.rows_per_fold


def geometry(layer: CompatLayer, dataflow: str, rows: int, cols: int) -> Geometry:
    sr, sc, t = spatial_dims(layer.m, layer.n, layer.k, dataflow)
    grid = fold_grid(sr, sc, t, rows, cols)
    return Geometry(layer, dataflow, grid, fold_cycles(grid, dataflow, compat=True))


@lru_cache(maxsize=32)
def _skewed(t: int, width: int, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, t, lane) of a T x width block entering skewed (lane c delayed by c cycles), rows from `base`, in
    service order: by row, lanes left to right. Row q holds lanes max(0, q - T + 1) ... min(q, width - 1).

    Cached because every fold of a layer has the same few shapes (full and edge folds).
    """
    q = np.arange(t + width - 1)
    lo = np.maximum(0, q - t + 1)
    counts = np.minimum(q, width - 1) - lo + 1
    row = np.repeat(q, counts)
    starts = np.cumsum(counts) - counts
    lane = np.arange(row.size) - np.repeat(starts - lo, counts)
    return row + base, row - lane, lane


@lru_cache(maxsize=32)
def _skew_order(t: int, width: int, *, lane_major: bool) -> np.ndarray:
    """Flat index of each slot of _skewed(t, width, .) into a T x width block (width x T when lane_major)."""
    _, tt, lane = _skewed(t, width, 0)
    return lane * t + tt if lane_major else tt * width + lane


def _flipped(width: int, used: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, r, lane) of a preloaded block: array row r of the fold is fed at cycle rows - 1 - r, lanes together."""
    rr, cc = np.meshgrid(np.arange(used - 1, -1, -1), np.arange(width), indexing="ij")
    return (rows - 1 - rr).ravel(), rr.ravel(), cc.ravel()


def fold_requests(geo: Geometry, operand: str, f: int, offs: Offsets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(address or -1, row within the fold, lane) of every slot fold f feeds an operand, in service order."""
    g, lay = geo.grid, geo.layer
    r0, c0 = int(g.row_start[f]), int(g.col_start[f])
    ur, uc, t, rows = int(g.used_rows[f]), int(g.used_cols[f]), g.t, g.rows
    df = geo.dataflow
    # IFMAP addresses are computed as a block (output pixels x window indices, broadcast over small tables) and
    # then taken in service order: one gather per request instead of two to six from the layer-sized tables.
    if (df, operand) == ("os", "ifmap"):
        row, tt, lane = _skewed(t, ur, 0)
        block = ifmap_addr(lay, (r0 + np.arange(ur))[:, None], np.arange(t)[None, :], offs.ifmap)
        addr = block.ravel()[_skew_order(t, ur, lane_major=True)]
    elif (df, operand) == ("os", "filter"):
        row, tt, lane = _skewed(t, uc, 0)
        addr = filter_addr(lay, tt, c0 + lane, offs.filter)
    elif (df, operand) == ("ws", "ifmap"):
        row, tt, lane = _skewed(t, ur, rows)
        block = ifmap_addr(lay, np.arange(t)[:, None], (r0 + np.arange(ur))[None, :], offs.ifmap)
        addr = block.ravel()[_skew_order(t, ur, lane_major=False)]
    elif (df, operand) == ("ws", "filter"):
        row, rr, lane = _flipped(uc, ur, rows)
        addr = filter_addr(lay, r0 + rr, c0 + lane, offs.filter)
    elif (df, operand) == ("is", "ifmap"):
        row, rr, lane = _flipped(uc, ur, rows)
        # _flipped's order: array rows ur - 1 down to 0, lanes inner.
        addr = ifmap_addr(lay, (c0 + np.arange(uc))[None, :], (r0 + np.arange(ur - 1, -1, -1))[:, None], offs.ifmap)
        addr = addr.ravel()
    else:
        row, tt, lane = _skewed(t, ur, rows)
        addr = filter_addr(lay, r0 + lane, tt, offs.filter)
    return addr, row, lane


def fold_demand(geo: Geometry, operand: str, f: int, offs: Offsets) -> tuple[np.ndarray, np.ndarray]:
    addr, row, _ = fold_requests(geo, operand, f, offs)
    keep = addr >= 0
    if keep.all():
        return addr, row + f * geo.rows_per_fold
    return addr[keep], row[keep] + f * geo.rows_per_fold


def fold_outputs(geo: Geometry, f: int, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(address, row within the fold, lane) of every OFMAP write of fold f, in service order."""
    g, n = geo.grid, geo.layer.n
    r0, c0 = int(g.row_start[f]), int(g.col_start[f])
    ur, uc, t, rows = int(g.used_rows[f]), int(g.used_cols[f]), g.t, g.rows
    if geo.dataflow == "os":
        row, flipped, lane = _skewed(rows, uc, t - 1)
        keep = flipped >= rows - ur
        row, r, lane = row[keep], rows - 1 - flipped[keep], lane[keep]
        return offset + n * (r0 + r) + c0 + lane, row, lane
    row, tt, lane = _skewed(t, uc, 2 * rows - 1)
    if geo.dataflow == "ws":
        return offset + n * tt + c0 + lane, row, lane
    return offset + n * (c0 + lane) + tt, row, lane


def demand_stream(geo: Geometry, operand: str, offs: Offsets) -> tuple[np.ndarray, np.ndarray]:
    """(addresses, demand rows) of every IFMAP or filter SRAM read, in SCALE-Sim's service order."""
    # Folds with one tile key read the same words in the same order at the same rows of their fold (fold_tiles),
    # so each tile is generated once: a WS IFMAP tile serves every column fold.
    keys, _ = fold_tiles(geo, operand)
    per = geo.rows_per_fold
    tiles: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    addrs, rows = [], []
    for f, key in enumerate(keys.tolist()):
        if key not in tiles:
            addr, row = fold_demand(geo, operand, f, offs)
            tiles[key] = (addr, row - f * per)
        addrs.append(tiles[key][0])
        rows.append(tiles[key][1] + f * per)
    return np.concatenate(addrs), np.concatenate(rows)


@dataclass(frozen=True)
class DemandTiles:
    """An operand's demand stream without the copies: fold f reads tile k = fold_tile[f], the addresses
    addr[tile_start[k]:tile_start[k + 1]] at rows row[...] + f * rows_per_fold (tiles as in fold_tiles)."""

    fold_tile: np.ndarray
    tile_start: np.ndarray
    addr: np.ndarray
    row: np.ndarray
    rows_per_fold: int

    def fold_rows(self, f: int) -> np.ndarray:
        k = int(self.fold_tile[f])
        return self.row[int(self.tile_start[k]) : int(self.tile_start[k + 1])]

    def edge_rows(self) -> np.ndarray:
        """Demand rows of the first and last request (the stream must not be empty)."""
        sizes = np.diff(self.tile_start)[self.fold_tile]
        busy = np.flatnonzero(sizes)
        first, last = int(busy[0]), int(busy[-1])
        return np.asarray(
            [
                int(self.fold_rows(first)[0]) + first * self.rows_per_fold,
                int(self.fold_rows(last)[-1]) + last * self.rows_per_fold,
            ],
            dtype=np.int64,
        )


def demand_tiles(geo: Geometry, operand: str, offs: Offsets, *, base: int = 0) -> DemandTiles:
    """demand_stream as DemandTiles, each distinct tile generated once from its first fold; addresses minus `base`."""
    keys, _ = fold_tiles(geo, operand)
    _, first_fold, fold_tile = np.unique(keys, return_index=True, return_inverse=True)
    per = geo.rows_per_fold
    addrs, rows = [], []
    for f in first_fold.tolist():
        addr, row = fold_demand(geo, operand, f, offs)
        addrs.append(addr - base)
        rows.append(row - f * per)
    sizes = np.fromiter((a.size for a in addrs), dtype=np.int64, count=len(addrs))
    start = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(sizes)])
    as64 = [np.ascontiguousarray(np.concatenate(x), dtype=np.int64) for x in (addrs, rows)]
    return DemandTiles(np.ascontiguousarray(fold_tile.ravel(), dtype=np.int64), start, *as64, per)


def _fold_write_counts(geo: Geometry, used_rows: int, used_cols: int) -> np.ndarray:
    """OFMAP writes in each demand row of one fold (SCALE-Sim's OFMAP demand matrix, -1 entries dropped)."""
    rows, t = geo.grid.rows, geo.grid.t
    diff = np.zeros(geo.rows_per_fold + 1, dtype=np.int64)
    lanes = np.arange(used_cols)
    if geo.dataflow == "os":
        # Output (r, c) leaves at T - 1 + (R - 1 - r) + c: lane c writes used_rows consecutive rows.
        start, length = t - 1 + rows - used_rows + lanes, used_rows
    else:
        # WS/IS: after a 2R - 1 row prefix, lane c writes T outputs in rows 2R - 1 + c ... 2R - 2 + c + T.
        start, length = 2 * rows - 1 + lanes, t
    np.add.at(diff, start, 1)
    np.add.at(diff, start + length, -1)
    return np.cumsum(diff[:-1])


class RowCounts:
    """OFMAP writes per demand row of a whole layer, stored per fold shape: memory O(folds + rows per fold), not
    O(cycles). Row i is row i % P of fold i // P (P = rows per fold); all queries are O(log) scalars."""

    def __init__(self, geo: Geometry):
        g = geo.grid
        self.per = geo.rows_per_fold
        self.rows = geo.total_rows
        shapes, self.shape = np.unique(np.stack([g.used_rows, g.used_cols]), axis=1, return_inverse=True)
        self.shape = self.shape.ravel()
        self.local = [_fold_write_counts(geo, int(ur), int(uc)) for ur, uc in shapes.T]
        self.local_cum = [np.cumsum(c) for c in self.local]
        idx = [np.where(c > 0, np.arange(self.per), self.per) for c in self.local]
        self.local_next = [np.append(np.minimum.accumulate(i[::-1])[::-1], self.per) for i in idx]
        totals = np.array([int(c[-1]) for c in self.local_cum])[self.shape]
        self.fold_end = np.cumsum(totals)
        self.total = int(self.fold_end[-1])

    def count(self, i: int) -> int:
        f, r = divmod(i, self.per)
        return int(self.local[self.shape[f]][r])

    def cum(self, i: int) -> int:
        """Writes in rows 0..i (0 for i = -1)."""
        if i < 0:
            return 0
        f, r = divmod(i, self.per)
        before = int(self.fold_end[f - 1]) if f else 0
        return before + int(self.local_cum[self.shape[f]][r])

    def search(self, value: int, side: str) -> int:
        """First row whose cum is >= value (side "left") or > value ("right"); `rows` if none."""
        f = int(np.searchsorted(self.fold_end, value, side=side))
        if f >= self.fold_end.size:
            return self.rows
        before = int(self.fold_end[f - 1]) if f else 0
        return f * self.per + int(np.searchsorted(self.local_cum[self.shape[f]], value - before, side=side))

    def next_write(self, i: int) -> int:
        """First row >= i with a write; `rows` if none."""
        while i < self.rows:
            f, r = divmod(i, self.per)
            nxt = int(self.local_next[self.shape[f]][r])
            if nxt < self.per:
                return f * self.per + nxt
            i = (f + 1) * self.per
        return self.rows

    def last_write(self) -> int:
        f = self.fold_end.size - 1
        return f * self.per + int(np.flatnonzero(self.local[self.shape[f]])[-1])


def prefetch_sequence(geo: Geometry, operand: str, offs: Offsets, *, keep_idle: bool = False) -> tuple[np.ndarray, int]:
    """USER mode: the order SCALE-Sim prefetches an operand from DRAM (-1 entries dropped), and the number of
    entries including -1 padding (which sets how many fetch lines the first prefetch may take)."""
    g, lay, df = geo.grid, geo.layer, geo.dataflow
    rows, cols, t = g.rows, g.cols, g.t
    if operand == "ifmap" and df in ("os", "ws"):
        blocks, width = _tiles(g.row_folds, rows, g.sr, t), rows
        fn = (
            (lambda tt, s: ifmap_addr(lay, s, tt, offs.ifmap))
            if df == "os"
            else (lambda tt, s: ifmap_addr(lay, tt, s, offs.ifmap))
        )
        roll = True
    elif operand == "filter" and df in ("os", "ws"):
        height = t if df == "os" else g.sr
        blocks, width = _tiles(g.col_folds, cols, g.sc, height), cols
        fn = lambda tt, s: filter_addr(lay, tt, s, offs.filter)
        roll = df == "os"
    elif operand == "ifmap":
        blocks, width = _tiles(g.col_folds, cols, g.sc, g.sr), cols
        fn = lambda tt, s: ifmap_addr(lay, s, tt, offs.ifmap)
        roll = False
    else:
        blocks, width = _tiles(g.row_folds, rows, g.sr, t), rows
        fn = lambda tt, s: filter_addr(lay, s, tt, offs.filter)
        roll = True
    tt, s = blocks
    addr = np.where(s >= 0, fn(tt, np.maximum(s, 0)), -1)
    if roll:
        addr = _diagonal_rollout(addr.reshape(-1, width))
    flat = addr.ravel()
    return (flat if keep_idle else flat[flat >= 0]), flat.size


def prefetch_counts(geo: Geometry, operand: str) -> tuple[int, int] | None:
    """prefetch_sequence's (number of words, number of entries) without building it; None for a convolution
    IFMAP whose windows may leave the input (its -1 entries are counted only by building the sequence)."""
    g, lay, df = geo.grid, geo.layer, geo.dataflow
    if operand == "ifmap" and not dense_windows(lay):
        return None
    if operand == "ifmap" and df in ("os", "ws"):
        folds, width, limit, height = g.row_folds, g.rows, g.sr, g.t
    elif operand == "filter" and df in ("os", "ws"):
        folds, width, limit, height = g.col_folds, g.cols, g.sc, g.t if df == "os" else g.sr
    elif operand == "ifmap":
        folds, width, limit, height = g.col_folds, g.cols, g.sc, g.sr
    else:
        folds, width, limit, height = g.row_folds, g.rows, g.sr, g.t
    # _tiles pads each of the `height` rows from `limit` source columns to folds x width entries with -1.
    return height * limit, folds * height * width


def _tiles(folds: int, width: int, limit: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack `folds` column tiles of a (height x limit) matrix, each `width` wide and -1 padded: (t, source col),
    as arrays of shape (1, height, 1) and (folds, 1, width) that broadcast to the (folds, height, width) stack (the
    address functions broadcast, so no index array of the stack's size is built)."""
    src = np.arange(folds, dtype=np.int64)[:, None] * width + np.arange(width, dtype=np.int64)[None, :]
    src = np.where(src < limit, src, -1)
    return np.arange(height, dtype=np.int64)[None, :, None], src[:, None, :]


def _diagonal_rollout(mat: np.ndarray) -> np.ndarray:
    """Anti-diagonals in order, each from its bottom row upwards: SCALE-Sim's prefetch order for skewed feeds.

    Element (r, c) goes to slot c of row r + c of an (m + n - 1) x n buffer, whose rows are then the diagonals with
    rows descending: one strided copy (flat offset r n + c (n + 1)) and one filter of the unused slots, O(m n)."""
    m, n = mat.shape
    empty = np.iinfo(np.int64).min
    buf = np.full((m + n - 1) * n, empty, dtype=np.int64)
    step = buf.itemsize
    np.lib.stride_tricks.as_strided(buf, shape=(m, n), strides=(n * step, (n + 1) * step))[...] = mat
    return buf[buf != empty]


def unique_im2col(layer: CompatLayer) -> bool:
    """True when no input word appears twice in the im2col matrix (GEMMs, 1x1 and non-overlapping windows) and
    no window leaves the input (no -1 entries from the ceil in Ho).

    Then every fold reads distinct words, and two folds read either the same tile in the same order or disjoint
    tiles, which lets the CALC read buffer be replayed per fold instead of per word."""
    rows_ok = layer.filter_h <= layer.stride_h or layer.ofmap_h == 1
    cols_ok = layer.filter_w <= layer.stride_w or layer.ofmap_w == 1
    dense = (layer.ifmap_h - layer.filter_h) % layer.stride_h == 0 and (
        layer.ifmap_w - layer.filter_w
    ) % layer.stride_w == 0
    return rows_ok and cols_ok and dense


def fold_tiles(geo: Geometry, operand: str) -> tuple[np.ndarray, np.ndarray]:
    """Per fold: a key naming the operand tile it reads (equal keys = same words in the same order) and its size."""
    g, df = geo.grid, geo.dataflow
    fr, fc = g.row_start // g.rows, g.col_start // g.cols
    pair = fr * g.col_folds + fc
    if (df, operand) in (("os", "ifmap"), ("ws", "ifmap"), ("is", "filter")):
        return fr, g.t * g.used_rows
    if (df, operand) == ("os", "filter"):
        return fc, g.t * g.used_cols
    return pair, g.used_rows * g.used_cols


@lru_cache(maxsize=32)
def _skew_row_ends(t: int, width: int) -> np.ndarray:
    """Cumulative request count at the end of each row of a skewed T x width block (O(T + width) memory)."""
    q = np.arange(t + width - 1)
    return np.cumsum(np.minimum(q, width - 1) - np.maximum(0, q - t + 1) + 1)


def position_row(geo: Geometry, operand: str, f: int, pos: int) -> int:
    """Demand row (within fold f) of the fold's request number `pos` (service order; -1 = the last one)."""
    g, df = geo.grid, geo.dataflow
    ur, uc = int(g.used_rows[f]), int(g.used_cols[f])
    if (df, operand) in (("ws", "filter"), ("is", "ifmap")):
        pos = pos % (ur * uc)
        return g.rows - ur + pos // uc
    width = uc if (df, operand) == ("os", "filter") else ur
    base = 0 if df == "os" else g.rows
    ends = _skew_row_ends(g.t, width)
    pos = pos % int(ends[-1])
    return base + int(np.searchsorted(ends, pos, side="right"))
