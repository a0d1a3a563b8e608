"""Work and minimum DRAM traffic of every public op in accelkit.ops, as functions of its shape arguments.

Work is FLOPs for floating-point ops (a multiply-add is 2), binary ops for the XNOR-popcount GEMMs (an XNOR and
a popcount-add per bit pair, 2 per bit MAC, so the two kinds share a scale), synaptic ops (accumulates triggered
by spikes, at a firing `rate`) for the spike-driven ops, and elementwise operations for the element-wise ops.
Minimum bytes read every input element the op needs once and write every output once (the DRAM traffic of a
kernel with unbounded on-chip memory, the roofline's memory side). `COSTS[op](**shape)` returns
a Cost; `tests/roofline/test_costs.py` checks each against work counted on small cases, and fails when a public op
has no entry here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    work: float
    unit: str  # "FLOP", "binary op" or "elementwise op"
    bytes: float

    @property
    def intensity(self) -> float:
        return self.work / self.bytes if self.bytes else math.inf


def _packed_bytes(rows: int, k: int, word_bits: int) -> int:
    return rows * math.ceil(k / word_bits) * word_bits // 8


def binarize(*, n: int, dtype_bytes: int = 4, scale: str | None = None) -> Cost:
    """x [n elements] -> sign(x) (x alpha): one compare per element; a scale adds |x|, a sum and a multiply."""
    work = n * (1 if scale is None else 4)
    return Cost(work, "elementwise op", 2 * n * dtype_bytes)


def pack_bits(*, rows: int, k: int, word_bits: int = 32, dtype_bytes: int = 4) -> Cost:
    """x [rows, k] -> [rows, ceil(k / word_bits)] words: a compare and an or-shift per element."""
    return Cost(2 * rows * k, "elementwise op", rows * k * dtype_bytes + _packed_bytes(rows, k, word_bits))


def packed_binary_matmul(*, m: int, n: int, k: int, word_bits: int = 32, out_bytes: int = 4) -> Cost:
    """a_bits [m, k/w], w_bits [n, k/w] -> [m, n] int32: XNOR + popcount over k bits for each of m x n outputs."""
    reads = _packed_bytes(m, k, word_bits) + _packed_bytes(n, k, word_bits)
    return Cost(2 * m * n * k, "binary op", reads + m * n * out_bytes)


def binary_matmul(*, m: int, n: int, k: int, dtype_bytes: int = 4) -> Cost:
    """a [m, k] and w [n, k] floating -> sign(a) sign(w)^T [m, n] in a's dtype (packing happens on chip)."""
    return Cost(2 * m * n * k, "binary op", (m * k + n * k + m * n) * dtype_bytes)


def visible_pairs(t_q: int, t_k: int, *, causal: bool = False, window: tuple[int, int] = (-1, -1)) -> int:
    """(query, key) pairs attention computes: query i sees keys j with i + t_k - t_q - left <= j <= i + t_k - t_q
    + right (bottom-right aligned; -1 unbounded; causal sets right = 0)."""
    left, right = window
    if causal:
        right = 0 if right < 0 else min(right, 0)
    total = 0
    for i in range(t_q):
        centre = i + t_k - t_q
        low = 0 if left < 0 else max(0, centre - left)
        high = t_k - 1 if right < 0 else min(t_k - 1, centre + right)
        total += max(0, high - low + 1)
    return total


def _seen_keys(t_q: int, t_k: int, causal: bool, window: tuple[int, int]) -> int:
    """Keys at least one query sees (the rows of K and V that must be read)."""
    left, right = window
    if causal:
        right = 0 if right < 0 else min(right, 0)
    low = 0 if left < 0 else max(0, t_k - t_q - left)
    high = t_k - 1 if right < 0 else min(t_k - 1, t_k - 1 + right)
    return max(0, high - low + 1) if visible_pairs(t_q, t_k, causal=causal, window=window) else 0


def flash_attention(
    *,
    b: int,
    t: int,
    h: int,
    d: int,
    t_k: int | None = None,
    h_kv: int | None = None,
    causal: bool = False,
    window: tuple[int, int] = (-1, -1),
    dtype_bytes: int = 2,
    backward: bool = False,
) -> Cost:
    """q [b, t, h, d], k, v [b, t_k, h_kv, d]. Forward: QK^T and PV, 2 x 2 x d FLOPs per visible pair; backward
    adds 5 matmuls of the same size (FlashAttention-2's 2.5x forward convention). Bytes: q, the K and V rows any
    query sees, out and the float32 LSE; the backward pass also reads dout and writes dq, dk, dv."""
    t_k = t if t_k is None else t_k
    h_kv = h if h_kv is None else h_kv
    pairs = visible_pairs(t, t_k, causal=causal, window=window)
    flops = 4 * b * h * d * pairs * (3.5 if backward else 1.0)
    q_bytes = b * t * h * d * dtype_bytes
    kv_bytes = 2 * b * _seen_keys(t, t_k, causal, window) * h_kv * d * dtype_bytes
    lse = b * h * t * 4
    total = 2 * q_bytes + kv_bytes + lse
    if backward:
        total += 2 * q_bytes + kv_bytes + lse  # dout read, dq written, dk and dv written, LSE read back
    return Cost(flops, "FLOP", total)


def _decode(lengths: Sequence[int], h: int, h_kv: int | None, d: int, t_q: int, dtype_bytes: int) -> Cost:
    h_kv = h if h_kv is None else h_kv
    pairs = sum(visible_pairs(t_q, n, causal=True) for n in lengths)
    keys = sum(_seen_keys(t_q, n, True, (-1, -1)) for n in lengths)
    q_bytes = len(lengths) * t_q * h * d * dtype_bytes
    return Cost(4 * h * d * pairs, "FLOP", 2 * q_bytes + 2 * keys * h_kv * d * dtype_bytes + len(lengths) * 4)


def lean_attention(
    *, lengths: Sequence[int], h: int, d: int, h_kv: int | None = None, t_q: int = 1, dtype_bytes: int = 4
) -> Cost:
    """q [B, t_q, h, d] against caches of `lengths` valid keys (the t_q new ones included): reads every valid K and
    V row once, the queries and the lengths, and writes the output."""
    return _decode(lengths, h, h_kv, d, t_q, dtype_bytes)


def split_kv_attention(
    *, lengths: Sequence[int], h: int, d: int, h_kv: int | None = None, t_q: int = 1, dtype_bytes: int = 4
) -> Cost:
    """The same work and minimum traffic as lean_attention (only the split of work among programs differs)."""
    return _decode(lengths, h, h_kv, d, t_q, dtype_bytes)


def _neuron(t: int, n: int, per_step: int, soft_reset: bool, dtype_bytes: int, return_v: bool, v_init: bool) -> Cost:
    """A multi-step neuron over x_seq [t, n]: `per_step` operations to charge H[t], one compare to fire and one
    select for a hard reset (a multiply and a subtract, H - v_threshold S, for a soft one). Reads x_seq (and
    v_init), writes the spikes (and v_seq)."""
    ops = t * n * (per_step + 1 + (2 if soft_reset else 1))
    traffic = t * n * dtype_bytes * (3 if return_v else 2) + (n * dtype_bytes if v_init else 0)
    return Cost(ops, "elementwise op", traffic)


def lif(
    *, t: int, n: int, soft_reset: bool = False, dtype_bytes: int = 4, return_v: bool = False, v_init: bool = False
) -> Cost:
    """x_seq [t, n]: H = V + (X - (V - v_reset)) / tau, 4 operations (the decay_input=False form is 4 too)."""
    return _neuron(t, n, 4, soft_reset, dtype_bytes, return_v, v_init)


def plif(
    *, t: int, n: int, soft_reset: bool = False, dtype_bytes: int = 4, return_v: bool = False, v_init: bool = False
) -> Cost:
    """As lif with 1/tau replaced by k = sigmoid(w), computed once per call (not per element)."""
    return _neuron(t, n, 4, soft_reset, dtype_bytes, return_v, v_init)


def if_neuron(
    *, t: int, n: int, soft_reset: bool = False, dtype_bytes: int = 4, return_v: bool = False, v_init: bool = False
) -> Cost:
    """x_seq [t, n]: H = V + X, one operation."""
    return _neuron(t, n, 1, soft_reset, dtype_bytes, return_v, v_init)


def multispike(*, n: int, dtype_bytes: int = 4) -> Cost:
    """floor(clamp(x, 0, levels) + 0.5) on n elements: a min, a max, an add and a floor each."""
    return Cost(4 * n, "elementwise op", 2 * n * dtype_bytes)


# Per (b, t, c) of SpikeGPT's log-sum-exp-stabilised WKV recurrence: output u + k, a max, two subtracts, two
# exps, three multiplies, two adds, a divide (12); state update w + p, a max, two subtracts, two exps, three
# multiplies, two adds (11). exp counts as one operation.
WKV_OPS_PER_ELEMENT = 23


def wkv(*, b: int, t: int, c: int, dtype_bytes: int = 4) -> Cost:
    """k, v [b, t, c], w, u [c] -> y [b, t, c] by the O(T) recurrence."""
    traffic = 3 * b * t * c * dtype_bytes + 2 * c * 4
    return Cost(WKV_OPS_PER_ELEMENT * b * t * c, "FLOP", traffic)


def _fft_flops(n: int) -> float:
    """A length-n complex FFT: 5 n log2 n FLOPs (the usual radix-2 count)."""
    return 5.0 * n * math.log2(n) if n > 1 else 0.0


def rpe_kernel_attention(
    *,
    b: int,
    t: int,
    h: int,
    d: int,
    d_v: int | None = None,
    num_features: int = 256,
    causal: bool = False,
    method: str = "fft",
    dtype_bytes: int = 4,
) -> Cost:
    """q, k [b, t, h, d], v [b, t, h, d_v], rpe_bias [h, 2t - 1] -> z [b, t, h, d_v], m = num_features.

    Feature maps phi(q), phi(k): a [m, d] x [d] product (2 m d), the squared norm (2 d) and m exps and scales
    (2 m) per token and head, each. "direct": per visible (i, j) pair phi(q_i).phi(k_j) (2 m), times c (1), into
    the numerator (2 d_v) and denominator (1), a divide per output. "fft": the outer products phi(k_j) v_j^T
    (m d_v per token), per (b, h) the m (d_v + 1) Toeplitz products by c, each a forward FFT of length n = the
    power of 2 above 2t - 1, a pointwise complex product (6 n) and an inverse FFT (the FFT of c is shared), then
    phi(q_i) . (m x (d_v + 1)) per token (2 m (d_v + 1)) and a divide per output."""
    d_v = d if d_v is None else d_v
    m = num_features
    features = 2 * b * t * h * (2 * m * d + 2 * d + 2 * m)
    if method == "direct":
        pairs = visible_pairs(t, t, causal=causal)
        work = features + b * h * pairs * (2 * m + 2 * d_v + 2) + b * t * h * d_v
    elif method == "fft":
        n = 1 << max(1, (2 * t - 1).bit_length())
        channels = m * (d_v + 1)
        outer = b * t * h * m * d_v  # phi(k_j) v_j^T, one multiply per entry
        toeplitz = b * h * (channels * (2 * _fft_flops(n) + 6 * n) + _fft_flops(n))
        work = features + outer + toeplitz + b * t * h * (2 * m * (d_v + 1) + d_v)
    else:
        raise ValueError(f"method must be 'fft' or 'direct', got {method!r}")
    traffic = (2 * b * t * h * d + 2 * b * t * h * d_v) * dtype_bytes + h * (2 * t - 1) * 4 + m * d * 4
    return Cost(work, "FLOP", traffic)


def sdsa_v1(*, t: int, b: int, h: int, n: int, d: int, rate: float = 1.0, dtype_bytes: int = 4) -> Cost:
    """q, k, v spikes [t, b, h, n, d] firing at `rate`: one accumulate into a column sum per token where K and V
    both fired (rate^2 of them), the convention of the op's reference (the LIF over t and the AND with Q are not
    synaptic ops). Reads q, k, v; writes the output."""
    return Cost(t * b * h * n * d * rate**2, "synaptic op", 4 * t * b * h * n * d * dtype_bytes)


def sdsa_v2(*, t: int, b: int, h: int, n: int, d: int, rate: float = 1.0, dtype_bytes: int = 4) -> Cost:
    """Q (K^T V): K^T V adds one per pair of spikes of a token (rate^2 d^2 per token), each spike of Q adds a row of
    K^T V (rate d x d per token)."""
    per_token = (rate * d) ** 2 + rate * d * d
    return Cost(t * b * h * n * per_token, "synaptic op", 4 * t * b * h * n * d * dtype_bytes)


def spike_binary_matmul(*, m: int, n: int, k: int, rate: float = 1.0, dtype_bytes: int = 4) -> Cost:
    """Spikes s [m, k] firing at `rate` times sign(w) [n, k]: each spike adds one ±1 row of n outputs."""
    return Cost(m * k * rate * n, "synaptic op", (m * k + n * k + m * n) * dtype_bytes)


def delta_rule(
    *,
    b: int,
    t: int,
    h: int,
    k: int,
    v: int | None = None,
    gated: bool = False,
    use_qk_l2norm: bool = False,
    initial_state: bool = False,
    output_final_state: bool = False,
    dtype_bytes: int = 2,
) -> Cost:
    """q, k [b, t, h, k], v [b, t, h, v], beta [b, t, h] (g too when gated): the token recurrence's FLOPs, per
    token and head on the [k, v] state: h^T k, the rank-1 update and h^T q are 2 k v each, v - h^T k is v, beta k and
    scale q are k each; gating adds exp(g) and k v multiplies; the L2 norm adds 3 k + 2 for each of q and k. (The
    chunkwise WY form does more arithmetic to run it as matmuls; this is the work the op must do.) Bytes: the
    inputs and o once, the float32 [b, h, k, v] states read or written when given or returned."""
    v = k if v is None else v
    per_token = 6 * k * v + v + 2 * k + (k * v + 1 if gated else 0) + (6 * k + 4 if use_qk_l2norm else 0)
    tokens = b * t * h
    traffic = tokens * (2 * k + 2 * v + 1 + (1 if gated else 0)) * dtype_bytes
    traffic += (int(initial_state) + int(output_final_state)) * b * h * k * v * 4
    return Cost(tokens * per_token, "FLOP", traffic)


COSTS: dict[str, Callable[..., Cost]] = {
    "binarize": binarize,
    "pack_bits": pack_bits,
    "packed_binary_matmul": packed_binary_matmul,
    "binary_matmul": binary_matmul,
    "flash_attention": flash_attention,
    "lean_attention": lean_attention,
    "split_kv_attention": split_kv_attention,
    "lif": lif,
    "plif": plif,
    "if_neuron": if_neuron,
    "multispike": multispike,
    "wkv": wkv,
    "rpe_kernel_attention": rpe_kernel_attention,
    "sdsa_v1": sdsa_v1,
    "sdsa_v2": sdsa_v2,
    "spike_binary_matmul": spike_binary_matmul,
    "delta_rule": delta_rule,
}


def cost(op: str, **shape) -> Cost:
    if op not in COSTS:
        raise ValueError(f"op: no cost model for {op!r}; known: {', '.join(sorted(COSTS))}")
    try:
        return COSTS[op](**shape)
    except TypeError as exc:
        raise ValueError(f"{op}: {exc}") from None
