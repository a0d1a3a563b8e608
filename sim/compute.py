"""The compute side of a systolic array: how a GEMM folds onto R x C PEs and what each fold costs.

A dataflow decides which GEMM dimensions sit on the array rows (Sr), on the columns (Sc) and which one streams
through time (T):

    dataflow   Sr   Sc   T
    os         M    N    K      (outputs stay in the PEs)
    ws         K    N    M      (weights stay in the PEs)
    is         K    M    N      (inputs stay in the PEs)

The array runs ceil(Sr/R) x ceil(Sc/C) folds back to back, column folds outermost, each fold filling and draining
the whole array. A fold costs 2R + C + T - 2 cycles: R to preload the stationary operand (or, for OS, to shift the
outputs out), R - 1 + C - 1 of skew and T streaming steps (SCALE-Sim papers, arXiv:1811.02883 and ISPASS 2020).
SCALE-Sim 3.0.0 charges OS folds R + C + T - 2 (maintainers agree this is wrong: scale-sim-v3 issue #4); compat
mode keeps that, native mode uses the paper formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def spatial_dims(m: int, n: int, k: int, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T) of GEMM C[m,n] = A[m,k] B[k,n] under `dataflow`."""
    if dataflow == "os":
        return m, n, k
    if dataflow == "ws":
        return k, n, m
    if dataflow == "is":
        return k, m, n
    raise ValueError(f"unknown dataflow {dataflow!r}")


@dataclass(frozen=True)
class FoldGrid:
    """The folds of one GEMM in execution order, as NumPy vectors (one entry per fold)."""

    rows: int
    cols: int
    sr: int
    sc: int
    t: int
    row_folds: int
    col_folds: int
    row_start: np.ndarray
    col_start: np.ndarray
    used_rows: np.ndarray
    used_cols: np.ndarray

    @property
    def count(self) -> int:
        return self.row_folds * self.col_folds


def fold_counts(sr: int, sc: int, rows: int, cols: int) -> tuple[int, int]:
    """(row folds, column folds) of an Sr x Sc mapping on a rows x cols array."""
    return -(-sr // rows), -(-sc // cols)


def used(size: int, tile: int, index: int) -> int:
    """Rows (or columns) of the array fold `index` uses when `size` is cut into tiles of `tile`: a full tile
    except for the last fold."""
    return min(tile, size - index * tile)


def fold_grid(sr: int, sc: int, t: int, rows: int, cols: int) -> FoldGrid:
    """Folds with column folds outer and row folds inner, the order SCALE-Sim's demand matrices use."""
    row_folds, col_folds = fold_counts(sr, sc, rows, cols)
    fr = np.tile(np.arange(row_folds, dtype=np.int64), col_folds)
    fc = np.repeat(np.arange(col_folds, dtype=np.int64), row_folds)
    row_start = fr * rows
    col_start = fc * cols
    used_rows = np.minimum(rows, sr - row_start)
    used_cols = np.minimum(cols, sc - col_start)
    return FoldGrid(rows, cols, sr, sc, t, row_folds, col_folds, row_start, col_start, used_rows, used_cols)


def fold_cycles(grid: FoldGrid, dataflow: str, compat: bool) -> int:
    """Stall-free cycles of one fold; every fold of a GEMM costs the same (partial folds still fill R x C)."""
    return cycles_per_fold(grid.rows, grid.cols, grid.t, dataflow, compat)


def cycles_per_fold(r: int, c: int, t: int, dataflow: str, compat: bool) -> int:
    """2R + C + T - 2 (R + C + T - 2 for SCALE-Sim's OS folds)."""
    if compat and dataflow == "os":
        return r + c + t - 2
    return 2 * r + c + t - 2


def _mean(values: np.ndarray) -> float:
    # SCALE-Sim averages with Python's sum() over a list, a strictly left-to-right float sum on Python <= 3.11;
    # np.cumsum adds in the same order, np.sum (pairwise) would differ in the last bits.
    return float(np.cumsum(values)[-1]) / len(values)


@dataclass(frozen=True)
class ComputeStats:
    """Per-GEMM compute numbers in SCALE-Sim's units (percentages, words)."""

    folds: int
    cycles_per_fold: int
    mapping_efficiency_pct: float
    compute_util_pct: float
    ifmap_sram_reads: int
    filter_sram_reads: int
    ofmap_sram_writes: int


def compute_stats(grid: FoldGrid, dataflow: str, compat: bool) -> ComputeStats:
    """Mapping efficiency, compute utilization and SRAM access counts of the folds in `grid`.

    Compat mode reproduces two SCALE-Sim 3.0.0 accounting quirks: WS and IS compute utilization divides by
    2R + 2C + T - 3 (its demand matrix height plus width) rather than the fold's cycles, and every OS fold adds
    R + C phantom OFMAP writes.
    """
    r, c, t = grid.rows, grid.cols, grid.t
    ur, uc = grid.used_rows, grid.used_cols
    per_fold = fold_cycles(grid, dataflow, compat)
    util_den = 2 * r + 2 * c + t - 3 if (compat and dataflow != "os") else per_fold
    mac_used = ur * uc
    mapping = _mean(mac_used / (r * c)) * 100
    util = _mean(mac_used * t / (r * c * util_den)) * 100
    if dataflow == "os":
        reads = (int((t * ur).sum()), int((t * uc).sum()))
        writes = int(mac_used.sum()) + (grid.count * (r + c) if compat else 0)
    elif dataflow == "ws":
        reads = (int((t * ur).sum()), int(mac_used.sum()))
        writes = int((t * uc).sum())
    else:
        reads = (int(mac_used.sum()), int((t * ur).sum()))
        writes = int((t * uc).sum())
    return ComputeStats(grid.count, per_fold, mapping, util, reads[0], reads[1], writes)


def native_compute_stats(sr: int, sc: int, t: int, rows: int, cols: int, dataflow: str) -> ComputeStats:
    """`compute_stats` of native mode in closed form, exact for any size (Python ints, no per-fold arrays).

    The used rows of all row folds add up to Sr and the used columns of all column folds to Sc, so the folds'
    PE-cycles sum to Sr x Sc x T and each operand's SRAM count is a product of a few dimensions.
    """
    row_folds, col_folds = fold_counts(sr, sc, rows, cols)
    folds = row_folds * col_folds
    per_fold = cycles_per_fold(rows, cols, t, dataflow, compat=False)
    mapping = 100 * (sr * sc) / (rows * cols * folds)
    util = 100 * (sr * sc * t) / (rows * cols * per_fold * folds)
    streamed_rows, streamed_cols, stationary = t * sr * col_folds, t * sc * row_folds, sr * sc
    if dataflow == "os":
        counts = (streamed_rows, streamed_cols, stationary)
    elif dataflow == "ws":
        counts = (streamed_rows, stationary, streamed_cols)
    else:
        counts = (stationary, streamed_rows, streamed_cols)
    return ComputeStats(folds, per_fold, mapping, util, *counts)
