"""float64 NumPy oracle for the delta rule (DeltaNet) and the gated delta rule, fla's semantics.

State K-first, h of shape [K, V] per head. Per token t (decay before the error, as fla):

    h_a  = exp(g_t) h_{t-1}                 (g = 0 for the ungated rule)
    e_t  = v_t - h_a^T k_t                  prediction error
    h_t  = h_a + beta_t k_t e_t^T
    o_t  = h_t^T (scale q_t)                read after the write

Three independent computations: `recurrence` (the token loop above), `recurrence_backward` (reverse-mode of the
same loop, derived by hand in README.md) and `chunkwise` (the WY/UT chunk form, a second derivation of the forward).
Layout [B, T, H, K] / [B, T, H, V], beta and g [B, T, H]; with cu_seqlens ([N + 1] prefix sums) B is 1 and the N
sequences are packed along T. Initial and final states are [N, H, K, V].
"""

from __future__ import annotations

import numpy as np

L2_EPS = 1e-6  # fla.modules.l2norm's epsilon: x * rsqrt(sum x^2 + 1e-6)


def l2norm(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + L2_EPS)


def l2norm_backward(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient of l2norm at x: r (dy - y (y . dy)), r = rsqrt(sum x^2 + eps), y = x r."""
    r = 1.0 / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + L2_EPS)
    y = x * r
    return r * (dy - y * np.sum(y * dy, axis=-1, keepdims=True))


def _segments(t: int, batch: int, cu_seqlens) -> list[tuple[int, int, int]]:
    """(batch row, start, end) of each sequence."""
    if cu_seqlens is None:
        return [(b, 0, t) for b in range(batch)]
    cu = [int(c) for c in np.asarray(cu_seqlens)]
    return [(0, cu[i], cu[i + 1]) for i in range(len(cu) - 1)]


def _prepare(q, k, v, beta, g, scale, use_qk_l2norm):
    q, k, v, beta = (np.asarray(x, dtype=np.float64) for x in (q, k, v, beta))
    g = np.zeros_like(beta) if g is None else np.asarray(g, dtype=np.float64)
    if use_qk_l2norm:
        q, k = l2norm(q), l2norm(k)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    return q, k, v, beta, g, scale


def _initial(h0, n: int, h: int, kd: int, vd: int) -> np.ndarray:
    return np.zeros((n, h, kd, vd)) if h0 is None else np.array(h0, dtype=np.float64)


def recurrence(q, k, v, beta, *, g=None, scale=None, initial_state=None, cu_seqlens=None, use_qk_l2norm=False):
    """Token-by-token forward. Returns (o [B, T, H, V], final state [N, H, K, V]), float64."""
    q, k, v, beta, g, scale = _prepare(q, k, v, beta, g, scale, use_qk_l2norm)
    b, t, nh, kd = k.shape
    segs = _segments(t, b, cu_seqlens)
    state = _initial(initial_state, len(segs), nh, kd, v.shape[-1])
    o = np.zeros(v.shape)
    for n, (row, start, end) in enumerate(segs):
        for head in range(nh):
            s = state[n, head]
            for i in range(start, end):
                s = np.exp(g[row, i, head]) * s
                err = v[row, i, head] - k[row, i, head] @ s
                s = s + beta[row, i, head] * np.outer(k[row, i, head], err)
                o[row, i, head] = (scale * q[row, i, head]) @ s
            state[n, head] = s
    return o, state


def recurrence_backward(
    do, dht, q, k, v, beta, *, g=None, scale=None, initial_state=None, cu_seqlens=None, use_qk_l2norm=False
):
    """Reverse-mode of `recurrence` for the loss sum(o * do) + sum(final * dht) (dht may be None).

    Returns dq, dk, dv, dbeta, dg, dh0 (float64; dh0 [N, H, K, V] is returned even without an initial state).
    """
    q_raw, k_raw = np.asarray(q, dtype=np.float64), np.asarray(k, dtype=np.float64)
    q, k, v, beta, g, scale = _prepare(q, k, v, beta, g, scale, use_qk_l2norm)
    do = np.asarray(do, dtype=np.float64)
    b, t, nh, kd = k.shape
    segs = _segments(t, b, cu_seqlens)
    h0 = _initial(initial_state, len(segs), nh, kd, v.shape[-1])
    dq, dk, dv = np.zeros(q.shape), np.zeros(k.shape), np.zeros(v.shape)
    dbeta, dg, dh0 = np.zeros(beta.shape), np.zeros(beta.shape), np.zeros(h0.shape)
    for n, (row, start, end) in enumerate(segs):
        for head in range(nh):
            states = [h0[n, head]]  # states[j] is the state before token start + j
            for i in range(start, end):
                s = np.exp(g[row, i, head]) * states[-1]
                s = s + beta[row, i, head] * np.outer(k[row, i, head], v[row, i, head] - k[row, i, head] @ s)
                states.append(s)
            dh = np.zeros(h0.shape[2:]) if dht is None else np.array(dht[n, head], dtype=np.float64)
            for i in range(end - 1, start - 1, -1):
                ki, qi, bi, ai = k[row, i, head], scale * q[row, i, head], beta[row, i, head], np.exp(g[row, i, head])
                h_prev, h_now = states[i - start], states[i - start + 1]
                h_a = ai * h_prev
                err = v[row, i, head] - ki @ h_a
                dh = dh + np.outer(qi, do[row, i, head])
                dq[row, i, head] = scale * (h_now @ do[row, i, head])
                dbeta[row, i, head] = ki @ dh @ err
                derr = bi * (ki @ dh)
                dk[row, i, head] = bi * (dh @ err) - h_a @ derr
                dv[row, i, head] = derr
                dh_a = dh - np.outer(ki, derr)
                dg[row, i, head] = np.sum(dh_a * h_a)
                dh = ai * dh_a
            dh0[n, head] = dh
    if use_qk_l2norm:
        dq, dk = l2norm_backward(q_raw, dq), l2norm_backward(k_raw, dk)
    return dq, dk, dv, dbeta, dg, dh0


def _unit_lower_inverse(a: np.ndarray) -> np.ndarray:
    """(I + a)^{-1} for strictly lower-triangular a, by forward substitution row by row."""
    c = a.shape[0]
    m = np.eye(c)
    for i in range(1, c):
        m[i, :i] = -a[i, :i] @ m[:i, :i]
    return m


def _chunk(qc, kc, vc, bc, gc, s0):
    """One chunk of the WY form (README.md): returns (o, state after the chunk)."""
    big_g = np.cumsum(gc)
    gamma = np.exp(big_g)
    decay = np.exp(big_g[:, None] - big_g[None, :])
    a = np.tril(bc[:, None] * (kc @ kc.T) * decay, -1)
    m = _unit_lower_inverse(a)
    w = m @ ((bc * gamma)[:, None] * kc)
    u = m @ (bc[:, None] * vc)
    v_new = u - w @ s0
    o = (gamma[:, None] * qc) @ s0 + (np.tril(qc @ kc.T) * decay) @ v_new
    s1 = gamma[-1] * s0 + ((gamma[-1] / gamma)[:, None] * kc).T @ v_new
    return o, s1


def chunkwise(
    q, k, v, beta, *, g=None, scale=None, initial_state=None, cu_seqlens=None, use_qk_l2norm=False, chunk_size=64
):
    """The same forward as `recurrence` through the chunkwise WY/UT form, chunks restarting at each sequence."""
    q, k, v, beta, g, scale = _prepare(q, k, v, beta, g, scale, use_qk_l2norm)
    b, t, nh, kd = k.shape
    segs = _segments(t, b, cu_seqlens)
    state = _initial(initial_state, len(segs), nh, kd, v.shape[-1])
    o = np.zeros(v.shape)
    for n, (row, start, end) in enumerate(segs):
        for head in range(nh):
            s = state[n, head]
            for c in range(start, end, chunk_size):
                sl = slice(c, min(c + chunk_size, end))
                x = (scale * q[row, sl, head], k[row, sl, head], v[row, sl, head], beta[row, sl, head])
                o[row, sl, head], s = _chunk(*x, g[row, sl, head], s)
            state[n, head] = s
    return o, state
