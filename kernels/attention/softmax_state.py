"""The softmax state of a block of keys and the merge of partial attention results; NumPy, framework-free.

Two interchangeable forms describe attention over a subset S of the keys of one query row (README.md derives both):

- the state (m, l, acc): m = max_{j in S} s_j, l = sum_{j in S} exp(s_j - m), acc = sum_{j in S} exp(s_j - m) v_j;
  what a kernel carries through its loop over key blocks (online softmax);
- the partial (o, lse): lse = log sum_{j in S} exp(s_j) (natural log), o = acc / l; what split-KV and Lean
  Attention write per piece and combine afterwards.

Both stand for the pair (numerator, denominator) = (sum_S exp(s_j) v_j, sum_S exp(s_j)), and merging two pieces adds
those pairs, which is why the merge is associative and commutative. An empty piece (no visible key) is m = -inf,
l = 0, acc = 0, or lse = -inf, o = 0: the identity of the merge. No function here ever evaluates -inf - (-inf),
0 / 0 or log(0), so empty pieces never make a NaN; a NaN in the *values* of a non-empty piece still propagates.

Shapes: scores s are [..., M, N] (M query rows, N keys of the block, masked keys = -inf), values v [..., N, Dv];
m, l and lse are [..., M]; acc and o are [..., M, Dv]. Everything is float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SoftmaxState(NamedTuple):
    """Running softmax state of M query rows over the keys seen so far: m, l [..., M]; acc [..., M, Dv]."""

    m: np.ndarray
    l: np.ndarray
    acc: np.ndarray


def _finite_or_zero(x: np.ndarray) -> np.ndarray:
    """x with -inf replaced by 0: the shift used for rows that saw no key, so exp(-inf - shift) = 0, never NaN."""
    return np.where(np.isneginf(x), 0.0, x)


def empty_state(rows: tuple[int, ...], dv: int) -> SoftmaxState:
    """The state of rows that have seen no key: m = -inf, l = 0, acc = 0; rows is the shape [..., M]."""
    return SoftmaxState(np.full(rows, -np.inf), np.zeros(rows), np.zeros((*rows, dv)))


def block_state(s: np.ndarray, v: np.ndarray) -> SoftmaxState:
    """The state of one block: scores s [..., M, N] (-inf where masked), values v [..., N, Dv]."""
    s = np.asarray(s, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if s.shape[-1] == 0:
        return empty_state(s.shape[:-1], v.shape[-1])
    m = s.max(axis=-1)
    p = np.exp(s - _finite_or_zero(m)[..., None])
    return SoftmaxState(m, p.sum(axis=-1), p @ v)


def merge_states(a: SoftmaxState, b: SoftmaxState) -> SoftmaxState:
    """The state of the union of two disjoint key sets: rescale both to the larger running max, then add."""
    m = np.maximum(a.m, b.m)
    shift = _finite_or_zero(m)
    alpha = np.exp(a.m - shift)
    beta = np.exp(b.m - shift)
    return SoftmaxState(m, alpha * a.l + beta * b.l, alpha[..., None] * a.acc + beta[..., None] * b.acc)


def update(state: SoftmaxState, s: np.ndarray, v: np.ndarray) -> SoftmaxState:
    """One step of online softmax: fold the block (s [..., M, N], v [..., N, Dv]) into `state`.

    This is exactly merge_states(state, block_state(s, v)); a kernel fuses the two, this keeps them apart so the
    oracle has one merge rule to trust.
    """
    return merge_states(state, block_state(s, v))


def finalize(state: SoftmaxState) -> tuple[np.ndarray, np.ndarray]:
    """(o [..., M, Dv], lse [..., M]) of a state: o = acc / l and lse = m + log(l); 0 and -inf for empty rows."""
    seen = state.l > 0
    lse = np.full(state.l.shape, -np.inf)
    np.log(state.l, out=lse, where=seen)
    lse = np.where(seen, lse + _finite_or_zero(state.m), -np.inf)
    denom = np.where(seen, state.l, 1.0)[..., None]
    o = np.where(seen[..., None], state.acc / denom, 0.0)
    return o, lse


def to_state(o: np.ndarray, lse: np.ndarray) -> SoftmaxState:
    """The state of a partial (o, lse): m = lse, l = 1, acc = o (l = 0, acc = 0 where lse = -inf)."""
    o = np.asarray(o, dtype=np.float64)
    lse = np.asarray(lse, dtype=np.float64)
    empty = np.isneginf(lse)
    return SoftmaxState(lse, np.where(empty, 0.0, 1.0), np.where(empty[..., None], 0.0, o))


def merge_partials(
    o_a: np.ndarray, lse_a: np.ndarray, o_b: np.ndarray, lse_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two partials (o [..., M, Dv], lse [..., M]) over disjoint key sets into the partial of their union.

    lse = log(exp(lse_a) + exp(lse_b)) and o = exp(lse_a - lse) o_a + exp(lse_b - lse) o_b. The output of an empty
    piece (lse = -inf) is never read, so uninitialised memory there cannot leak into the result.
    """
    return combine_partials(np.stack([o_a, o_b]), np.stack([lse_a, lse_b]))


def combine_partials(o: np.ndarray, lse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge S partials at once, Flash-Decoding's combine: o [S, ..., M, Dv], lse [S, ..., M] -> (o, lse).

    S = 0 gives the empty result (o = 0, lse = -inf).
    """
    o = np.asarray(o, dtype=np.float64)
    lse = np.asarray(lse, dtype=np.float64)
    if lse.shape[0] == 0:
        return np.zeros(o.shape[1:]), np.full(lse.shape[1:], -np.inf)
    top = lse.max(axis=0)
    scaled = np.exp(lse - _finite_or_zero(top))
    total = scaled.sum(axis=0)
    seen = total > 0
    log_total = np.zeros(total.shape)
    np.log(total, out=log_total, where=seen)
    lse_out = np.where(seen, _finite_or_zero(top) + log_total, -np.inf)
    weights = scaled / np.where(seen, total, 1.0)
    # where, not multiply: 0 * (garbage output of an empty piece) would still be NaN for a NaN there.
    contrib = np.where(np.isneginf(lse)[..., None], 0.0, weights[..., None] * o)
    return contrib.sum(axis=0), lse_out
