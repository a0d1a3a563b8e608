"""NumPy float64 oracles for rpe_kernel_attention: the direct O(T^2) form given the random features W, and exact
softmax attention with the same additive relative-position bias (what the kernelized form approximates).

Layout [B, T, H, D] for q and k, [B, T, H, D_v] for v, rpe_bias [H, 2T - 1] with rpe_bias[h, T - 1 + (j - i)] the
bias of query i and key j. The shifts (per query row, one per (batch, head) for keys, the bias max over the
offsets in use) are the ones the op uses: they cancel in the ratio except against eps, so an oracle with other
shifts would differ from the op by O(eps / denominator).
"""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """x / max(|x|, 1e-12) along the last axis (torch.nn.functional.normalize's convention)."""
    return x / np.maximum(np.sqrt((x * x).sum(-1, keepdims=True)), 1e-12)


def feature_logits(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """P = W x' - |x'|^2 / 2 with x' = x / D**0.25: [..., D] -> [..., m]."""
    xs = x * x.shape[-1] ** -0.25
    return xs @ w.T - 0.5 * (xs * xs).sum(-1, keepdims=True)


def features(x: np.ndarray, w: np.ndarray, *, is_query: bool) -> np.ndarray:
    """Positive random features exp(P - s) / sqrt(m) of x [B, T, H, D]: s is the max of each row for queries and
    one max over (T, m) per (batch, head) for keys (a per-key shift would not cancel once the bias mixes
    positions)."""
    p = feature_logits(x, w)
    # initial=-inf: a sequence of T = 0 keys has no max (and no features to shift).
    s = p.max(-1, keepdims=True) if is_query else p.max(axis=(1, 3), keepdims=True, initial=-np.inf)
    return np.exp(p - s) / np.sqrt(w.shape[0])


# The bias shift s = max(midpoint, max - COEFF_HALF_RANGE) of the offsets in use: the midpoint keeps c within
# exp(+-range / 2), so |b| <= 50 gives c in [e^-50, e^50], no float32 underflow (a shift by the max would put
# c = e^-100 below float32's smallest normal); the cap keeps c <= e^60, and sums of T * e^60 stay far below
# float32's 3.4e38 for any T that fits in memory.
COEFF_HALF_RANGE = 60.0


def bias_shift(b: np.ndarray) -> np.ndarray:
    """s [H, 1] of the bias b [H, L] (-inf where unused)."""
    top = b.max(-1, keepdims=True)
    low = np.where(np.isfinite(b), b, np.inf).min(-1, keepdims=True)
    return np.maximum(0.5 * (top + low), top - COEFF_HALF_RANGE)


def coefficients(rpe_bias: np.ndarray, t: int, causal: bool) -> np.ndarray:
    """C [H, T, T] with C[h, i, j] = exp(b[h, T - 1 + j - i] - s), zero for j > i when causal; s (bias_shift) runs
    over the offsets in use."""
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    b = rpe_bias.astype(np.float64)
    if causal:
        b = np.where(np.arange(2 * t - 1) <= t - 1, b, -np.inf)
    if t == 0:
        return np.zeros((b.shape[0], 0, 0))
    return np.exp(b - bias_shift(b))[:, t - 1 + j - i]


def rpe_kernel_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, rpe_bias: np.ndarray, w: np.ndarray, *, causal: bool = False,
    normalize_qk: bool = True, eps: float = 1e-6,
) -> np.ndarray:  # fmt: skip
    """z_i = sum_j c_{j-i} phi(q_i).phi(k_j) v_j / (max(sum_j c_{j-i} phi(q_i).phi(k_j), 0) + eps), O(T^2)."""
    q, k, v, w = (np.asarray(a, dtype=np.float64) for a in (q, k, v, w))
    if normalize_qk:
        q, k = l2_normalize(q), l2_normalize(k)
    fq, fk = features(q, w, is_query=True), features(k, w, is_query=False)
    a = np.einsum("bihm,bjhm->bhij", fq, fk) * coefficients(rpe_bias, q.shape[1], causal)[None]
    num = np.einsum("bhij,bjhe->bihe", a, v)
    den = np.maximum(a.sum(-1), 0.0).transpose(0, 2, 1)[..., None]
    return num / (den + eps)


def softmax_rpe_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, rpe_bias: np.ndarray, *, causal: bool = False,
    normalize_qk: bool = True,
) -> np.ndarray:  # fmt: skip
    """softmax_j(q_i.k_j / sqrt(D) + b_{j-i}) v_j, the exact attention the random features estimate."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    if normalize_qk:
        q, k = l2_normalize(q), l2_normalize(k)
    t = q.shape[1]
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    s = np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(q.shape[-1]) + rpe_bias[None][:, :, t - 1 + j - i]
    if causal:
        s = np.where(j <= i, s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhij,bjhe->bihe", p, v)


def toeplitz_fft(c_rel: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y_i = sum_j c_rel[T - 1 + j - i] x_j for x [T, F] by circulant embedding (the FFT route, for cross-checks)."""
    t = x.shape[0]
    n = 2 * t
    r = np.zeros(n)
    r[: 2 * t - 1] = c_rel[::-1]  # r[u] is the coefficient of offset i - j = u - (T - 1)
    y = np.fft.irfft(np.fft.rfft(r)[:, None] * np.fft.rfft(x, n, axis=0), n, axis=0)
    return y[t - 1 : 2 * t - 1]
