"""NumPy float64 oracle for softmax attention: forward (output and LSE), backward, and the decode form.

Conventions, shared by every backend (README.md derives them):
- Layout [B, T, H, D]: q [B, T_q, H_q, D], k [B, T_k, H_kv, D], v [B, T_k, H_kv, Dv]; output [B, T_q, H_q, Dv];
  lse [B, H_q, T_q]. Variable-length batches pack the sequences instead: q [total_q, H_q, D], k [total_k, H_kv, D],
  v [total_k, H_kv, Dv], with cu_seqlens_q / cu_seqlens_k integer prefix sums [B + 1] (sequence b is rows
  cu[b]:cu[b + 1]); output [total_q, H_q, Dv], lse [H_q, total_q].
- Scores s_ij = scale * q_i . k_j with scale = D**-0.5 by default; softcap c > 0 replaces s by c * tanh(s / c)
  before masking (c = 0 disables it).
- LSE is the natural log: lse_i = log sum_j exp(s_ij) over the visible keys j, and o_i = sum_j exp(s_ij - lse_i) v_j.
- Masks align bottom-right: with d = T_k - T_q (per sequence in a varlen batch), query i sees key j when
  j <= i + d (causal) and i + d - left <= j <= i + d + right (window (left, right), -1 = unbounded on that side);
  causal and window together intersect. This is flash-attn >= 2.1's convention.
- GQA/MQA: H_q is a multiple of H_kv, and query head h reads kv head h // (H_q // H_kv).
- A query that sees no key (fully masked, or T_k = 0) gets output 0 and lse = -inf, never NaN.

Every function computes the full T_q x T_k score matrix: it is the oracle, written to be read, not to be fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Knobs:
    """The masking and scaling options one call applies to every sequence."""

    causal: bool
    scale: float | None
    window: tuple[int, int]
    softcap: float


def attention_mask(t_q: int, t_k: int, *, causal: bool = False, window: tuple[int, int] = (-1, -1)) -> np.ndarray:
    """bool [T_q, T_k]: True where query i may see key j, with the diagonal aligned bottom-right."""
    left, right = _check_window(window)
    i = np.arange(t_q)[:, None]
    j = np.arange(t_k)[None, :]
    diagonal = i + (t_k - t_q)
    visible = np.ones((t_q, t_k), dtype=bool)
    if causal:
        visible &= j <= diagonal
    if left >= 0:
        visible &= j >= diagonal - left
    if right >= 0:
        visible &= j <= diagonal + right
    return visible


def expand_kv_heads(x: np.ndarray, h_q: int) -> np.ndarray:
    """[..., H_kv, D] -> [..., H_q, D]: kv head h // (H_q // H_kv) copied to query head h (GQA/MQA)."""
    h_kv = x.shape[-2]
    _check_heads(h_q, h_kv)
    return np.repeat(x, h_q // h_kv, axis=-2)


def masked_scores(
    q: np.ndarray,
    k: np.ndarray,
    *,
    causal: bool = False,
    scale: float | None = None,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
) -> np.ndarray:
    """The scores a softmax sees: q [B, T_q, H_q, D], k [B, T_k, H_kv, D] -> s [B, H_q, T_q, T_k], after scale
    and softcap, with -inf at masked keys."""
    return _scores(_f64(q), _f64(k), _knobs(causal, scale, window, softcap))[1]


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    *,
    causal: bool = False,
    scale: float | None = None,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    cu_seqlens_q: np.ndarray | None = None,
    cu_seqlens_k: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax attention -> (output, lse), both float64.

    Dense: q [B, T_q, H_q, D], k [B, T_k, H_kv, D], v [B, T_k, H_kv, Dv] -> (output [B, T_q, H_q, Dv],
    lse [B, H_q, T_q]). Varlen (cu_seqlens_q and cu_seqlens_k [B + 1] given): q [total_q, H_q, D],
    k [total_k, H_kv, D], v [total_k, H_kv, Dv] -> (output [total_q, H_q, Dv], lse [H_q, total_q]).
    """
    q, k, v = _f64(q), _f64(k), _f64(v)
    knobs = _knobs(causal, scale, window, softcap)
    if cu_seqlens_q is None and cu_seqlens_k is None:
        _check_dense(q, k, v)
        return _dense_forward(q, k, v, knobs)
    _check_packed(q, k, v)
    out = np.zeros((*q.shape[:2], v.shape[-1]))
    lse = np.zeros((q.shape[1], q.shape[0]))
    for rows_q, rows_k in _sequences(cu_seqlens_q, cu_seqlens_k, q.shape[0], k.shape[0]):
        o_b, lse_b = _dense_forward(q[None, rows_q], k[None, rows_k], v[None, rows_k], knobs)
        out[rows_q], lse[:, rows_q] = o_b[0], lse_b[0]
    return out, lse


def attention_bwd(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    o: np.ndarray,
    lse: np.ndarray,
    do: np.ndarray,
    *,
    causal: bool = False,
    scale: float | None = None,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    cu_seqlens_q: np.ndarray | None = None,
    cu_seqlens_k: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq, dk, dv) of sum(output * do), float64, shaped like q, k and v.

    o and lse are what `attention` returned for the same inputs and knobs, and do is shaped like o (dense
    [B, T_q, H_q, Dv] or packed [total_q, H_q, Dv]). The probabilities are recomputed from lse (P = exp(S - lse)),
    and dk, dv sum over the H_q // H_kv query heads that share a kv head.
    """
    q, k, v, o, lse, do = (_f64(x) for x in (q, k, v, o, lse, do))
    knobs = _knobs(causal, scale, window, softcap)
    if cu_seqlens_q is None and cu_seqlens_k is None:
        _check_dense(q, k, v)
        _check_grad_inputs(o, lse, do, (*q.shape[:3], v.shape[-1]), (q.shape[0], q.shape[2], q.shape[1]))
        return _dense_backward(q, k, v, o, lse, do, knobs)
    _check_packed(q, k, v)
    _check_grad_inputs(o, lse, do, (*q.shape[:2], v.shape[-1]), (q.shape[1], q.shape[0]))
    dq, dk, dv = np.zeros(q.shape), np.zeros(k.shape), np.zeros(v.shape)
    for rows_q, rows_k in _sequences(cu_seqlens_q, cu_seqlens_k, q.shape[0], k.shape[0]):
        # One sequence is a dense batch of one: [None] adds the B axis (lse is [H_q, total_q], so it goes first).
        sequence = (q[None, rows_q], k[None, rows_k], v[None, rows_k], o[None, rows_q], lse[None, :, rows_q])
        grads = _dense_backward(*sequence, do[None, rows_q], knobs)
        dq[rows_q], dk[rows_k], dv[rows_k] = (g[0] for g in grads)
    return dq, dk, dv


def decode_attention(
    q: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    cache_seqlens: np.ndarray,
    *,
    block_table: np.ndarray | None = None,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Attention of new queries over a KV cache -> (output shaped like q, lse), float64.

    q is [B, H_q, D] (one new token; lse [B, H_q]) or [B, T_q, H_q, D] (a chunk of T_q tokens; lse [B, H_q, T_q]).
    The cache is contiguous, k_cache [B, T_cache, H_kv, D] and v_cache [B, T_cache, H_kv, Dv], or paged,
    [num_blocks, page_size, H_kv, D] with block_table [B, max_blocks]: key j of sequence b lives in page
    block_table[b, j // page_size] at slot j % page_size. cache_seqlens [B] counts the valid keys of each sequence,
    the T_q new tokens included (they are already in the cache), so query t sees keys j <= cache_seqlens[b] - T_q + t:
    causal attention aligned bottom-right over the first cache_seqlens[b] keys. Entries past cache_seqlens[b] and
    pages the sequence does not reach are never read.
    """
    q, k_cache, v_cache = _f64(q), _f64(k_cache), _f64(v_cache)
    if q.ndim not in (3, 4):
        raise ValueError(f"q must be [B, H_q, D] or [B, T_q, H_q, D], got shape {q.shape}")
    chunk = q if q.ndim == 4 else q[:, None]
    lengths = _check_cache(chunk, k_cache, v_cache, cache_seqlens, block_table)
    out = np.zeros((*chunk.shape[:3], v_cache.shape[-1]))
    lse = np.zeros((chunk.shape[0], chunk.shape[2], chunk.shape[1]))
    for b, length in enumerate(lengths):
        keys = _cache_rows(k_cache, b, length, block_table)
        values = _cache_rows(v_cache, b, length, block_table)
        o_b, lse_b = attention(chunk[b : b + 1], keys[None], values[None], causal=True, scale=scale)
        out[b], lse[b] = o_b[0], lse_b[0]
    if q.ndim == 3:
        return out[:, 0], lse[..., 0]
    return out, lse


def _dense_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, knobs: _Knobs) -> tuple[np.ndarray, np.ndarray]:
    s = _scores(q, k, knobs)[1]
    p, lse = _softmax(s)
    out = p @ _heads_first(expand_kv_heads(v, q.shape[2]))
    return _heads_first(out), lse


def _dense_backward(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, o: np.ndarray, lse: np.ndarray, do: np.ndarray, knobs: _Knobs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dq, dk, dv of one dense batch; the formulas are derived in README.md ("Backward")."""
    h_q, scale = q.shape[2], _scale(knobs, q)
    k_h, v_h = _heads_first(expand_kv_heads(k, h_q)), _heads_first(expand_kv_heads(v, h_q))
    q_h, do_h = _heads_first(q), _heads_first(do)
    raw, s = _scores(q, k, knobs)
    p = _probabilities(s, lse)
    dv = np.swapaxes(p, -1, -2) @ do_h
    dp = do_h @ np.swapaxes(v_h, -1, -2)
    delta = _heads_first(do * o).sum(axis=-1)
    ds = p * (dp - delta[..., None])
    if knobs.softcap > 0:
        # d/dx [c tanh(x / c)] = 1 - tanh(x / c)^2, taken at the score before the cap.
        ds = ds * (1.0 - np.tanh(raw / knobs.softcap) ** 2)
    dq = scale * ds @ k_h
    dk = scale * np.swapaxes(ds, -1, -2) @ q_h
    h_kv = k.shape[2]
    return _heads_first(dq), _sum_groups(dk, h_kv), _sum_groups(dv, h_kv)


def _scores(q: np.ndarray, k: np.ndarray, knobs: _Knobs) -> tuple[np.ndarray, np.ndarray]:
    """(raw, s), both [B, H_q, T_q, T_k]: raw = scale * q . k, and s = raw softcapped, then masked with -inf.

    The cap comes first so that a masked key stays at -inf (c * tanh(-inf / c) would be -c, a visible score).
    """
    k_h = _heads_first(expand_kv_heads(k, q.shape[2]))
    raw = _scale(knobs, q) * (_heads_first(q) @ np.swapaxes(k_h, -1, -2))
    capped = knobs.softcap * np.tanh(raw / knobs.softcap) if knobs.softcap > 0 else raw
    visible = attention_mask(raw.shape[-2], raw.shape[-1], causal=knobs.causal, window=knobs.window)
    return raw, np.where(visible, capped, -np.inf)


def _softmax(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, lse) over the last axis, shifted by the row max for range; P = 0 and lse = -inf for rows with no finite
    score. P is exp(s - max) / sum, not exp(s - lse): where |lse| dwarfs log(sum) (scores near 1e19 from a huge
    scale), s - lse loses the log(sum) in float64 and the weights would no longer sum to 1."""
    top = s.max(axis=-1, initial=-np.inf)
    seen = np.isfinite(top)
    shift = np.where(seen, top, 0.0)
    e = np.exp(s - shift[..., None])
    total = e.sum(axis=-1)
    log_total = np.zeros(total.shape)
    np.log(total, out=log_total, where=seen)
    return e / np.where(seen, total, 1.0)[..., None], np.where(seen, shift + log_total, -np.inf)


def _probabilities(s: np.ndarray, lse: np.ndarray) -> np.ndarray:
    """P = exp(s - lse); rows with lse = -inf have only -inf scores, so they get P = 0 instead of exp(NaN)."""
    return np.exp(s - np.where(np.isneginf(lse), 0.0, lse)[..., None])


def _heads_first(x: np.ndarray) -> np.ndarray:
    """[B, T, H, X] <-> [B, H, T, X]: swap the sequence and head axes."""
    return np.swapaxes(x, 1, 2)


def _sum_groups(grad: np.ndarray, h_kv: int) -> np.ndarray:
    """[B, H_q, T, X] per query head -> [B, T, H_kv, X], summed over each kv head's group of query heads."""
    b, h_q, t, x = grad.shape
    return _heads_first(grad.reshape(b, h_kv, h_q // h_kv, t, x).sum(axis=2))


def _cache_rows(cache: np.ndarray, b: int, length: int, block_table: np.ndarray | None) -> np.ndarray:
    """The first `length` rows [length, H_kv, X] of sequence b, from a contiguous or a paged cache."""
    if block_table is None:
        return cache[b, :length]
    page_size = cache.shape[1]
    j = np.arange(length)
    return cache[block_table[b, j // page_size], j % page_size]


def _sequences(
    cu_q: np.ndarray | None, cu_k: np.ndarray | None, total_q: int, total_k: int
) -> list[tuple[slice, slice]]:
    """The (query rows, key rows) slices of each sequence of a varlen batch, after checking both prefix sums."""
    if cu_q is None or cu_k is None:
        raise ValueError("cu_seqlens_q and cu_seqlens_k must be given together")
    cu_q = _check_cu_seqlens(cu_q, total_q, "cu_seqlens_q")
    cu_k = _check_cu_seqlens(cu_k, total_k, "cu_seqlens_k")
    if cu_q.shape != cu_k.shape:
        raise ValueError(f"cu_seqlens_q has {cu_q.size - 1} sequences but cu_seqlens_k has {cu_k.size - 1}")
    return [(slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1])) for b in range(cu_q.size - 1)]


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _knobs(causal: bool, scale: float | None, window: tuple[int, int], softcap: float) -> _Knobs:
    if softcap < 0:
        raise ValueError(f"softcap must be >= 0 (0 disables it), got {softcap}")
    return _Knobs(bool(causal), scale, _check_window(window), float(softcap))


def _scale(knobs: _Knobs, q: np.ndarray) -> float:
    if knobs.scale is not None:
        return float(knobs.scale)
    if q.shape[-1] == 0:
        raise ValueError("the default scale D**-0.5 needs head dim D >= 1; pass scale")
    return q.shape[-1] ** -0.5


def _check_window(window: tuple[int, int]) -> tuple[int, int]:
    left, right = (int(w) for w in window)
    if left < -1 or right < -1:
        raise ValueError(f"window sides must be >= 0, or -1 for unbounded; got {tuple(window)}")
    return left, right


def _check_heads(h_q: int, h_kv: int) -> None:
    if h_kv < 1 or h_q % h_kv:
        raise ValueError(f"H_q ({h_q}) must be a multiple of H_kv ({h_kv}), and H_kv >= 1")


def _check_dense(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"q, k, v must be [B, T, H, D] (or pass cu_seqlens); got {q.shape}, {k.shape}, {v.shape}")
    if not q.shape[0] == k.shape[0] == v.shape[0]:
        raise ValueError(f"q, k, v must share the batch size; got {q.shape[0]}, {k.shape[0]}, {v.shape[0]}")
    _check_kv(q, k, v)


def _check_packed(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        raise ValueError(f"with cu_seqlens, q, k, v must be packed [total, H, D]; got {q.shape}, {k.shape}, {v.shape}")
    _check_kv(q, k, v)


def _check_kv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    """The checks dense and packed layouts share: the last three axes are [T, H, D] in both."""
    if k.shape[-3:-1] != v.shape[-3:-1]:
        raise ValueError(f"k and v must share T_k and H_kv; got {k.shape} and {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the head dim; got {q.shape[-1]} and {k.shape[-1]}")
    _check_heads(q.shape[-2], k.shape[-2])


def _check_grad_inputs(
    o: np.ndarray, lse: np.ndarray, do: np.ndarray, o_shape: tuple[int, ...], lse_shape: tuple[int, ...]
) -> None:
    for name, x, shape in (("o", o, o_shape), ("do", do, o_shape), ("lse", lse, lse_shape)):
        if x.shape != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {x.shape}")


def _check_cu_seqlens(cu: np.ndarray, total: int, name: str) -> np.ndarray:
    cu = np.asarray(cu)
    if cu.ndim != 1 or cu.size < 1 or cu.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D integer prefix sum [B + 1], got {cu.dtype} shape {cu.shape}")
    if cu[0] != 0 or np.any(np.diff(cu) < 0) or cu[-1] != total:
        raise ValueError(f"{name} must start at 0, never decrease and end at {total}; got {cu.tolist()}")
    return cu.astype(np.int64)


def _check_cache(
    q: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    cache_seqlens: np.ndarray,
    block_table: np.ndarray | None,
) -> np.ndarray:
    """Checks the decode arguments (q already [B, T_q, H_q, D]); returns cache_seqlens as int64 [B]."""
    if k_cache.ndim != 4 or v_cache.ndim != 4 or k_cache.shape[:3] != v_cache.shape[:3]:
        raise ValueError(f"k_cache and v_cache must be 4-D and agree but for Dv; got {k_cache.shape}, {v_cache.shape}")
    if q.shape[-1] != k_cache.shape[-1]:
        raise ValueError(f"q and k_cache must share the head dim; got {q.shape[-1]} and {k_cache.shape[-1]}")
    _check_heads(q.shape[2], k_cache.shape[2])
    batch = q.shape[0]
    lengths = np.asarray(cache_seqlens)
    if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
        raise ValueError(f"cache_seqlens must be integers [B] = [{batch}], got {lengths.dtype} {lengths.shape}")
    if block_table is None:
        if k_cache.shape[0] != batch:
            raise ValueError(f"a contiguous cache needs k_cache [B, ...] with B = {batch}; got {k_cache.shape}")
        capacity = k_cache.shape[1]
    else:
        capacity = _check_block_table(np.asarray(block_table), lengths, batch, k_cache.shape[:2])
    if np.any(lengths < 0) or np.any(lengths > capacity):
        raise ValueError(f"cache_seqlens must lie in [0, {capacity}], got {lengths.tolist()}")
    return lengths.astype(np.int64)


def _check_block_table(table: np.ndarray, lengths: np.ndarray, batch: int, pages: tuple[int, int]) -> int:
    """Checks the pages each sequence reaches; returns the keys one sequence can hold."""
    num_blocks, page_size = pages
    if table.ndim != 2 or table.shape[0] != batch or table.dtype.kind not in "iu":
        raise ValueError(f"block_table must be integers [B, max_blocks] with B = {batch}, got {table.shape}")
    if page_size < 1:
        raise ValueError(f"page_size (k_cache.shape[1]) must be >= 1, got {page_size}")
    for b, length in enumerate(lengths):
        used = table[b, : -(-max(int(length), 0) // page_size)]
        if np.any(used < 0) or np.any(used >= num_blocks):
            raise ValueError(f"block_table row {b} points outside [0, {num_blocks}): {used.tolist()}")
    return table.shape[1] * page_size
