"""A register-level emulation of one fold on an R x C systolic array, one NumPy step per clock cycle.

Functional mode uses it (`cycle_level=True`) to check from first principles both the numbers a fold produces and
how long it takes, against the engine's closed form. The fold occupies the whole physical array: a partial fold's
unused rows and columns carry zeros, which is why SCALE-Sim charges partial folds the full R and C
(reference/simulators.md §1.6), and the fold ends when the last value fed in has left the array.

- ws / is (`stationary_fold`): the stationary block is shifted in from the top edge, one row per cycle (fill, R
  cycles). Row i of the streamed operand enters the left edge i cycles late (skew), values move one PE right per
  cycle, partial sums one PE down, and column j's sums leave the bottom edge.
- os (`output_stationary_fold`): A enters the left edge (row i skewed by i), B the top edge (column j skewed by
  j); each PE accumulates its own output. The outputs then shift out of the bottom edge, one row per cycle (drain,
  R cycles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FoldRun:
    """What one emulated fold produced and the cycles of each phase: fill (loading the stationary operand),
    stream (from the first value entering to the last result computed or leaving) and drain (outputs leaving)."""

    output: np.ndarray
    fill: int
    stream: int
    drain: int

    @property
    def cycles(self) -> int:
        return self.fill + self.stream + self.drain


def _shift_right(grid: np.ndarray, edge: np.ndarray) -> np.ndarray:
    return np.concatenate([edge[:, None], grid[:, :-1]], axis=1)


def _shift_down(grid: np.ndarray, edge: np.ndarray) -> np.ndarray:
    return np.concatenate([edge[None, :], grid[:-1]], axis=0)


def _skewed(values: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Lane i's input on cycle `step` is element step - i of that lane; `values` is [lanes, T]."""
    lanes, t = values.shape
    index = step - np.arange(lanes)
    live = (index >= 0) & (index < t)
    return np.where(live, values[np.arange(lanes), np.clip(index, 0, t - 1)], 0).astype(values.dtype), live


def stationary_fold(stationary: np.ndarray, stream: np.ndarray, rows: int, cols: int) -> FoldRun:
    """WS/IS fold: `stationary` [r, c] (r <= rows, c <= cols) stays in the PEs and `stream` [T, r] flows through;
    returns stream @ stationary [T, c]."""
    (r, c), t = stationary.shape, stream.shape[0]
    block = np.zeros((rows, cols), dtype=stationary.dtype)
    block[:r, :c] = stationary
    held = np.zeros_like(block)
    for row in range(rows - 1, -1, -1):  # the bottom row goes in first and is pushed down by the rest
        held = _shift_down(held, block[row])
    lanes = np.zeros((rows, t), dtype=stream.dtype)
    lanes[:r] = stream.T
    x, x_live = np.zeros_like(block), np.zeros((rows, cols), dtype=bool)
    psum, p_live = np.zeros_like(block), np.zeros((rows, cols), dtype=bool)
    out = np.zeros((t, cols), dtype=block.dtype)
    step = 0
    while True:
        feed, fed = _skewed(lanes, step)
        x, x_live = _shift_right(x, feed), _shift_right(x_live, fed)
        psum = _shift_down(psum, np.zeros(cols, dtype=block.dtype)) + x * held
        p_live = _shift_down(p_live, np.zeros(cols, dtype=bool)) | x_live
        leaving = np.flatnonzero(p_live[-1])
        out[step - (rows - 1) - leaving, leaving] = psum[-1, leaving]
        step += 1
        if step >= t + rows - 1 and not x_live[:, :-1].any() and not p_live[:-1].any():
            return FoldRun(out[:, :c], fill=rows, stream=step, drain=0)


def output_stationary_fold(a: np.ndarray, b: np.ndarray, rows: int, cols: int) -> FoldRun:
    """OS fold: A [r, T] enters from the left, B [T, c] from the top; returns A @ B [r, c] after the drain."""
    (r, t), c = a.shape, b.shape[1]
    left = np.zeros((rows, t), dtype=a.dtype)
    left[:r] = a
    top = np.zeros((cols, t), dtype=b.dtype)
    top[:c] = b.T
    xa, a_live = np.zeros((rows, cols), dtype=a.dtype), np.zeros((rows, cols), dtype=bool)
    xb, b_live = np.zeros((rows, cols), dtype=b.dtype), np.zeros((rows, cols), dtype=bool)
    acc = np.zeros((rows, cols), dtype=a.dtype)
    step = 0
    while True:
        feed_a, fed_a = _skewed(left, step)
        feed_b, fed_b = _skewed(top, step)
        xa, a_live = _shift_right(xa, feed_a), _shift_right(a_live, fed_a)
        xb, b_live = _shift_down(xb, feed_b), _shift_down(b_live, fed_b)
        acc = acc + xa * xb
        step += 1
        if step >= t + max(rows, cols) - 1 and not a_live[:, :-1].any() and not b_live[:-1].any():
            break
    out = np.zeros_like(acc)
    for drained in range(rows):  # the bottom row leaves first; each cycle the rest move down one PE
        out[rows - 1 - drained] = acc[-1]
        acc = _shift_down(acc, np.zeros(cols, dtype=acc.dtype))
    return FoldRun(out[:r, :c], fill=0, stream=step, drain=rows)
