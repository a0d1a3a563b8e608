"""Float64 NumPy oracles of spike-driven self-attention (SDSA V1 and V2) and the {0,1}-spike x {+1,-1}-weight
matmul, their gradients, and the popcount forms they reduce to for {0,1} spikes.

Shapes: q, k, v [T, B, H, N, D] (time, batch, heads, tokens, head dim); ../shared/reference/spiking_binary.md
section 3.4 has the equations and their sources (Spike-driven Transformer V1 `MS_SSA_Conv`, V2
`MS_Attention_RepConv_qkv_id`). The LIF of V1 is SpikingJelly's (kernels/spiking/reference.py): tau 2, hard reset
to 0, detach_reset, sigmoid surrogate alpha 4, as the Spike-driven Transformer constructs it.
"""

import numpy as np

from accelkit.kernels.spiking import reference as neuron

# SDSA V1's talking-heads LIF: MultiStepLIFNode(tau=2.0, v_threshold=0.5, detach_reset=True) with the defaults
# v_reset=0.0 and surrogate.Sigmoid() (alpha 4) of SpikingJelly 0.0.0.0.12 (spiking_binary.md 3.4).
V1_LIF = {"kind": "lif", "decay": 0.5, "decay_input": True, "v_reset": 0.0, "surrogate": "sigmoid", "alpha": 4.0}


def _f64(*xs):
    return [np.asarray(x, dtype=np.float64) for x in xs]


def column_sums(k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """KV [T, B, H, 1, D] = sum over tokens of K * V: for spikes, the count of tokens where both fired."""
    k, v = _f64(k, v)
    return (k * v).sum(axis=-2, keepdims=True)


def sdsa_v1(q: np.ndarray, k: np.ndarray, v: np.ndarray, v_threshold: float = 0.5) -> np.ndarray:
    """Out [T, B, H, N, D] = Q * LIF_T(sum_n K * V): the LIF over T masks each channel of Q."""
    (q,) = _f64(q)
    spikes, _, _ = neuron.neuron_forward(column_sums(k, v), v_threshold=v_threshold, **V1_LIF)
    return q * spikes


def sdsa_v1_grads(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, grad: np.ndarray, v_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grad_q, grad_k, grad_v) of sum(grad * sdsa_v1(q, k, v)), through the LIF's surrogate (BPTT over T)."""
    q, k, v, grad = _f64(q, k, v, grad)
    kv = column_sums(k, v)
    spikes, _, _ = neuron.neuron_forward(kv, v_threshold=v_threshold, **V1_LIF)
    grad_mask = (grad * q).sum(axis=-2, keepdims=True)
    grad_kv, _, _ = neuron.neuron_backward(kv, None, grad_mask, v_threshold=v_threshold, detach_reset=True, **V1_LIF)
    return grad * spikes, grad_kv * v, grad_kv * k


def sdsa_v2(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float = 0.125) -> np.ndarray:
    """Out [T, B, H, N, D] = Q (K^T V) scale: linear attention with no softmax, whose K^T V is [D, D] per head."""
    q, k, v = _f64(q, k, v)
    return q @ (np.swapaxes(k, -1, -2) @ v) * scale


def sdsa_v2_grads(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, grad: np.ndarray, scale: float = 0.125
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grad_q, grad_k, grad_v) of sum(grad * sdsa_v2(q, k, v, scale))."""
    q, k, v, grad = _f64(q, k, v, grad)
    kv = np.swapaxes(k, -1, -2) @ v  # [.., D, D]
    grad_kv = np.swapaxes(q, -1, -2) @ grad * scale  # [.., D, D]
    return grad @ np.swapaxes(kv, -1, -2) * scale, v @ np.swapaxes(grad_kv, -1, -2), k @ grad_kv


def pack_tokens(s: np.ndarray) -> np.ndarray:
    """{0,1} spikes [..., N, D] -> uint8 bit rows [..., D, ceil(N / 8)]: channel d's spikes over the tokens."""
    bits = np.swapaxes(np.asarray(s) != 0, -1, -2)
    return np.packbits(bits, axis=-1)


def popcount_rows(a: np.ndarray) -> np.ndarray:
    return np.unpackbits(a, axis=-1).sum(axis=-1, dtype=np.int64)


def column_sums_popcount(k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """V1's KV for {0,1} spikes: popcount(K_col AND V_col) over the tokens, int64 [T, B, H, 1, D]."""
    return popcount_rows(pack_tokens(k) & pack_tokens(v))[..., None, :]


def kv_popcount(k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """V2's K^T V for {0,1} spikes: [i, j] = popcount(K[:, i] AND V[:, j]) over the tokens, int64 [.., D, D]."""
    return popcount_rows(pack_tokens(k)[..., :, None, :] & pack_tokens(v)[..., None, :, :])


def spike_binary_matmul(s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spikes s [..., K] (a spike where s > 0) times sign(w) [N, K] (sign(0) = +1) -> [..., N]."""
    s, w = _f64(s, w)
    return (s > 0).astype(np.float64) @ np.where(w >= 0, 1.0, -1.0).T


def spike_binary_matmul_grads(s: np.ndarray, w: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straight-through gradients: grad_s = grad sign(w) (a spike passes its gradient as it is), grad_w = grad^T s
    where |w| <= 1 (BinaryNet's STE, as binary_matmul), 0 elsewhere."""
    s, w, grad = _f64(s, w, grad)
    rows = int(np.prod(s.shape[:-1]))
    grad_s = grad @ np.where(w >= 0, 1.0, -1.0)
    grad_w = grad.reshape(rows, w.shape[0]).T @ (s > 0).astype(np.float64).reshape(rows, s.shape[-1])
    return grad_s, grad_w * (np.abs(w) <= 1.0)


def synaptic_ops_v1(k: np.ndarray, v: np.ndarray) -> int:
    """Accumulates of V1: one add into a column sum per token where K and V both fired (the mask with Q is an AND)."""
    return int(np.count_nonzero(np.asarray(k) * np.asarray(v)))


def synaptic_ops_v2(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> int:
    """Accumulates of V2: K^T V adds 1 for each pair of spikes of one token (nnz(K_n) nnz(V_n) per token), and each
    spike of Q adds one row of K^T V (D adds)."""
    q, k, v = (np.asarray(x) != 0 for x in (q, k, v))
    pairs = (k.sum(axis=-1, dtype=np.int64) * v.sum(axis=-1, dtype=np.int64)).sum()
    return int(pairs + q.sum(dtype=np.int64) * q.shape[-1])
