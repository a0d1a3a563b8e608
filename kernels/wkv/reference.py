"""Float64 NumPy oracles of SpikeGPT's WKV (the RWKV-4 time mix) and its gradients.

Two independent forms, so each checks the other:
- `wkv` and `wkv_grads`: the closed form. Output t of channel c is a weighted mean of v_0..v_t with weights
  pi[t, i] proportional to e^{E[t, i]}, E[t, i] = (t - 1 - i) w + k_i for i < t and E[t, t] = u + k_t, normalised
  with the max subtracted (a softmax over i), so it holds for any w, u, k. O(T^2) per channel: tests only.
- `wkv_recurrence`: the numerically stable O(T) recurrence of SpikeGPT's cuda/wkv_cuda.cu forward
  (../shared/reference/spiking_binary.md section 3.5), the algorithm every kernel here runs.

Shapes: w, u [C]; k, v [B, T, C]; y [B, T, C]. w = -exp(time_decay) and u = time_first of SpikeGPT.
"""

import numpy as np

# The offset of an empty sum, as the reference CUDA kernel (finite, so o - max(o, x) is never -inf + inf).
EMPTY_OFFSET = -1e38


def _weights(w: np.ndarray, u: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pi [B, C, T, T] (row t: the weights of v_0..v_t, 0 past t) and the age matrix (t - 1 - i) [T, T] (0 at i=t)."""
    w, u, k = (np.asarray(a, dtype=np.float64) for a in (w, u, k))
    steps = k.shape[1]
    t = np.arange(steps)[:, None]
    i = np.arange(steps)[None, :]
    age = np.where(i < t, t - 1 - i, 0).astype(np.float64)
    kc = np.moveaxis(k, 1, 2)  # [B, C, T]
    exponent = age * w[None, :, None, None] + kc[:, :, None, :]
    diag = u[None, :, None] + kc  # [B, C, T]
    exponent = np.where(i == t, diag[..., None], exponent)
    exponent = np.where(i <= t, exponent, -np.inf)
    if steps == 0:
        return exponent, age
    exponent = exponent - exponent.max(axis=-1, keepdims=True)
    e = np.exp(exponent)
    return e / e.sum(axis=-1, keepdims=True), age


def wkv(w: np.ndarray, u: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """y [B, T, C] = sum_i pi[t, i] v_i, the closed form."""
    pi, _ = _weights(w, u, k)
    vc = np.moveaxis(np.asarray(v, dtype=np.float64), 1, 2)  # [B, C, T]
    return np.moveaxis(np.einsum("bcti,bci->bct", pi, vc), 2, 1)


def wkv_grads(
    w: np.ndarray, u: np.ndarray, k: np.ndarray, v: np.ndarray, gy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gw [C], gu [C], gk [B, T, C], gv [B, T, C]) of sum(gy * y).

    dy_t/dv_i = pi[t, i]; dy_t/dE[t, i] = pi[t, i] (v_i - y_t); dE[t, i]/dk_i = 1, dE[t, t]/du = 1,
    dE[t, i]/dw = t - 1 - i for i < t.
    """
    pi, age = _weights(w, u, k)
    vc = np.moveaxis(np.asarray(v, dtype=np.float64), 1, 2)  # [B, C, T]
    gc = np.moveaxis(np.asarray(gy, dtype=np.float64), 1, 2)
    y = np.einsum("bcti,bci->bct", pi, vc)
    dexp = gc[..., None] * pi * (vc[:, :, None, :] - y[..., None])  # [B, C, t, i]: g_t dy_t/dE[t, i]
    steps = pi.shape[-1]
    eye = np.eye(steps, dtype=bool)
    gv = np.einsum("bct,bcti->bci", gc, pi)
    gk = dexp.sum(axis=2)
    gu = np.where(eye, dexp, 0.0).sum(axis=(0, 2, 3))
    gw = (dexp * age).sum(axis=(0, 2, 3))
    return gw, gu, np.moveaxis(gk, 2, 1), np.moveaxis(gv, 2, 1)


def wkv_recurrence(w: np.ndarray, u: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """y [B, T, C] by the stable recurrence: sums a = p e^o, b = q e^o of the steps before t."""
    w, u, k, v = (np.asarray(a, dtype=np.float64) for a in (w, u, k, v))
    batch, steps, channels = k.shape
    p = np.zeros((batch, channels))
    q = np.zeros((batch, channels))
    o = np.full((batch, channels), EMPTY_OFFSET)
    y = np.empty((batch, steps, channels))
    for t in range(steps):
        kt, vt = k[:, t], v[:, t]
        no = np.maximum(o, u + kt)
        e_old, e_new = np.exp(o - no), np.exp(u + kt - no)
        y[:, t] = (e_old * p + e_new * vt) / (e_old * q + e_new)
        no = np.maximum(w + o, kt)
        e_old, e_new = np.exp(w + o - no), np.exp(kt - no)
        p = e_old * p + e_new * vt
        q = e_old * q + e_new
        o = no
    return y
