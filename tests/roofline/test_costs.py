"""The cost model against work counted by explicit loops on small cases, and its coverage of accelkit.ops."""

import itertools
import math

import numpy as np
import pytest

from accelkit.kernels.attention.reference import attention_mask
from accelkit.roofline.costs import COSTS, cost


def test_every_public_op_has_a_cost_entry():
    from accelkit import ops

    missing = sorted(set(ops.__all__) - set(COSTS))
    assert not missing, f"add a cost model to accelkit/roofline/costs.py for: {', '.join(missing)}"


def _counted_gemm(m: int, n: int, k: int):
    """Multiply-adds of C[i, j] += A[i, l] B[j, l], and the distinct elements read and written."""
    macs, read_a, read_b, written = 0, set(), set(), set()
    for i, j, l in itertools.product(range(m), range(n), range(k)):
        macs += 1
        read_a.add((i, l))
        read_b.add((j, l))
        written.add((i, j))
    return macs, len(read_a), len(read_b), len(written)


@pytest.mark.parametrize(("m", "n", "k"), [(1, 1, 1), (3, 5, 7), (4, 2, 33), (2, 3, 64)])
def test_binary_gemms_against_counted(m, n, k):
    macs, a, b, c = _counted_gemm(m, n, k)
    dense = cost("binary_matmul", m=m, n=n, k=k, dtype_bytes=4)
    assert dense.work == 2 * macs and dense.unit == "binary op"
    assert dense.bytes == 4 * (a + b + c)
    packed = cost("packed_binary_matmul", m=m, n=n, k=k, word_bits=32)
    words = math.ceil(k / 32)  # each row of k bits occupies whole 32-bit words
    assert packed.work == 2 * macs and packed.bytes == 4 * (m * words + n * words) + 4 * c


def test_elementwise_against_counted():
    x = np.zeros((3, 37), dtype=np.float32)
    packed = np.zeros((3, math.ceil(37 / 64)), dtype=np.uint64)
    assert cost("pack_bits", rows=3, k=37, word_bits=64).bytes == x.nbytes + packed.nbytes
    assert cost("binarize", n=x.size).bytes == 2 * x.nbytes
    assert cost("binarize", n=x.size).work == x.size


def _counted_attention(b, t_q, t_k, h, h_kv, d, causal, window):
    """FLOPs of scores and P V over the pairs the float64 oracle's mask keeps, and the K/V rows it touches."""
    mask = attention_mask(t_q, t_k, causal=causal, window=window)
    flops = 0
    for _, _, i, j in itertools.product(range(b), range(h), range(t_q), range(t_k)):
        if mask[i, j]:
            flops += 2 * d + 2 * d  # q_i . k_j, then p_ij v_j
    return flops, int(mask.any(axis=0).sum())


@pytest.mark.parametrize(
    ("t_q", "t_k", "causal", "window"),
    [(5, 5, False, (-1, -1)), (5, 5, True, (-1, -1)), (3, 7, True, (-1, -1)), (7, 3, True, (-1, -1)),
     (9, 9, False, (2, 1)), (6, 8, True, (1, -1)), (1, 1, False, (-1, -1))],
)  # fmt: skip
def test_flash_attention_against_counted(t_q, t_k, causal, window):
    b, h, h_kv, d = 2, 4, 2, 3
    flops, keys = _counted_attention(b, t_q, t_k, h, h_kv, d, causal, window)
    got = cost("flash_attention", b=b, t=t_q, t_k=t_k, h=h, h_kv=h_kv, d=d, causal=causal, window=window,
               dtype_bytes=2)  # fmt: skip
    assert got.work == flops
    q_and_out = 2 * b * t_q * h * d * 2
    assert got.bytes == q_and_out + 2 * b * keys * h_kv * d * 2 + b * h * t_q * 4
    backward = cost("flash_attention", b=b, t=t_q, t_k=t_k, h=h, h_kv=h_kv, d=d, causal=causal, window=window,
                    dtype_bytes=2, backward=True)  # fmt: skip
    assert backward.work == 3.5 * flops and backward.bytes == 2 * got.bytes


@pytest.mark.parametrize("op", ["lean_attention", "split_kv_attention"])
def test_decode_against_counted(op):
    lengths, h, h_kv, d, t_q = [1, 4, 9], 4, 2, 8, 2
    flops = keys = 0
    for n in lengths:
        f, k = _counted_attention(1, t_q, n, h, h_kv, d, True, (-1, -1))
        flops, keys = flops + f, keys + k
    got = cost(op, lengths=lengths, h=h, h_kv=h_kv, d=d, t_q=t_q, dtype_bytes=4)
    assert got.work == flops
    assert got.bytes == 2 * len(lengths) * t_q * h * d * 4 + 2 * keys * h_kv * d * 4 + 4 * len(lengths)


def test_unknown_op_and_argument():
    with pytest.raises(ValueError, match="no cost model for 'nope'"):
        cost("nope", n=1)
    with pytest.raises(ValueError, match="binary_matmul: .*unexpected keyword argument 'q'"):
        cost("binary_matmul", m=1, n=1, k=1, q=2)


class _Counted:
    """A float that counts the arithmetic done on it (shared counter), to count a recurrence's operations."""

    ops = 0

    def __init__(self, value: float):
        self.value = value

    def _op(self, other, fn):
        _Counted.ops += 1
        return _Counted(fn(self.value, other.value if isinstance(other, _Counted) else other))

    def __add__(self, other):
        return self._op(other, lambda a, b: a + b)

    def __sub__(self, other):
        return self._op(other, lambda a, b: a - b)

    def __mul__(self, other):
        return self._op(other, lambda a, b: a * b)

    def __truediv__(self, other):
        return self._op(other, lambda a, b: a / b)

    def __ge__(self, other):
        _Counted.ops += 1
        return self.value >= (other.value if isinstance(other, _Counted) else other)


def _select(condition: bool, a, b):
    _Counted.ops += 1
    return a if condition else b


def _neuron_ops(kind: str, xs: list[list[float]], soft: bool) -> int:
    """Run the documented multi-step recurrence (sim of accelkit.ops.lif/if_neuron/plif) on counted floats."""
    _Counted.ops = 0
    tau, k, v_th, v_reset = 2.0, 0.3, 1.0, 0.0
    v = [_Counted(0.0) for _ in xs[0]]
    for row in xs:
        for i, x in enumerate(row):
            x = _Counted(x)
            if kind == "lif":
                h = v[i] + (x - (v[i] - v_reset)) / tau
            elif kind == "plif":
                h = v[i] + (x - (v[i] - v_reset)) * k
            else:
                h = v[i] + x
            fired = h >= v_th
            v[i] = h - _Counted(v_th) * float(fired) if soft else _select(fired, _Counted(v_reset), h)
    return _Counted.ops


@pytest.mark.parametrize("kind", ["lif", "plif", "if_neuron"])
@pytest.mark.parametrize("soft", [False, True])
def test_spiking_neurons_against_counted(kind, soft):
    xs = np.random.default_rng(0).uniform(-1, 3, size=(5, 7)).tolist()
    got = cost(kind, t=5, n=7, soft_reset=soft, dtype_bytes=2, return_v=True, v_init=True)
    assert got.work == _neuron_ops(kind, xs, soft)
    assert got.bytes == 3 * 5 * 7 * 2 + 7 * 2  # x_seq, spikes, v_seq and v_init
    assert cost(kind, t=5, n=7).bytes == 2 * 5 * 7 * 4


def test_multispike_against_counted():
    x = np.linspace(-1, 6, 11)
    ops = 0
    for value in x:
        clamped = min(max(value, 0.0), 4.0)  # 2
        _ = math.floor(clamped + 0.5)  # 2
        ops += 4
    assert (
        cost("multispike", n=x.size).work == ops and cost("multispike", n=x.size, dtype_bytes=8).bytes == 2 * x.nbytes
    )


def _exp(x):
    _Counted.ops += 1
    return _Counted(math.exp(x.value))


def _max(a, b):
    _Counted.ops += 1
    return _Counted(max(a.value, b.value))


def test_wkv_against_counted():
    """SpikeGPT's stabilised recurrence on counted floats gives the cost model's operations per element, and the
    value of the op's definition (a check that this is the recurrence the op computes)."""
    rng = np.random.default_rng(1)
    t_len, w, u = 6, -0.7, 0.4
    k, v = rng.normal(size=t_len), rng.normal(size=t_len)
    _Counted.ops = 0
    aa, bb, pp = _Counted(0.0), _Counted(0.0), _Counted(-1e38)
    ys = []
    for t in range(t_len):
        kt, vt = _Counted(k[t]), _Counted(v[t])
        ww = kt + u
        p = _max(pp, ww)
        e1, e2 = _exp(pp - p), _exp(ww - p)
        ys.append((e1 * aa + e2 * vt) / (e1 * bb + e2))
        ww = pp + w
        p = _max(ww, kt)
        e1, e2 = _exp(ww - p), _exp(kt - p)
        aa, bb, pp = e1 * aa + e2 * vt, e1 * bb + e2, p
    assert cost("wkv", b=1, t=t_len, c=1).work == _Counted.ops
    for t in range(t_len):
        weights = [math.exp((t - 1 - i) * w + k[i]) for i in range(t)] + [math.exp(u + k[t])]
        assert ys[t].value == pytest.approx(np.dot(weights, v[: t + 1]) / sum(weights), rel=1e-12)
    assert cost("wkv", b=2, t=3, c=5, dtype_bytes=2).bytes == 3 * 2 * 3 * 5 * 2 + 2 * 5 * 4


@pytest.mark.parametrize("causal", [False, True])
def test_rpe_kernel_attention_direct_against_counted(causal):
    b, t, h, d, d_v, m = 1, 5, 2, 3, 4, 6
    mask = attention_mask(t, t, causal=causal)
    features = 2 * b * t * h * (2 * m * d + 2 * d + 2 * m)  # phi(q) and phi(k): W x, |x|^2, exp and scale
    pairs = 0
    for _, _, i, j in itertools.product(range(b), range(h), range(t), range(t)):
        if mask[i, j]:
            pairs += 2 * m + 1 + 2 * d_v + 1  # phi.phi, times c, into numerator and denominator
    divides = b * t * h * d_v
    got = cost("rpe_kernel_attention", b=b, t=t, h=h, d=d, d_v=d_v, num_features=m, causal=causal, method="direct")
    assert got.work == features + pairs + divides


def test_rpe_kernel_attention_fft_counts_its_transforms(monkeypatch):
    """A NumPy Toeplitz product by FFT (checked against the direct sum) with counted transforms: the FFT term
    of the cost model is (channels x 2 + 1) transforms of the counted length per (b, h)."""
    t, m, d_v = 7, 3, 2
    sizes = []
    real_fft, real_ifft = np.fft.fft, np.fft.ifft
    monkeypatch.setattr(np.fft, "fft", lambda x, n=None: sizes.append(n) or real_fft(x, n))
    monkeypatch.setattr(np.fft, "ifft", lambda x, n=None: sizes.append(n) or real_ifft(x, n))
    rng = np.random.default_rng(2)
    c = rng.uniform(0.5, 2, size=2 * t - 1)  # c[t - 1 + (j - i)]
    channels = rng.normal(size=(m * (d_v + 1), t))
    n = 1 << (2 * t - 1).bit_length()
    spectrum = np.fft.fft(c[::-1], n)
    for x in channels:
        got = np.fft.ifft(np.fft.fft(x, n) * spectrum, n).real[t - 1 : 2 * t - 1]
        want = [sum(c[t - 1 + j - i] * x[j] for j in range(t)) for i in range(t)]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert sizes == [n] * (1 + 2 * len(channels))
    base = cost("rpe_kernel_attention", b=1, t=t, h=1, d=4, d_v=d_v, num_features=m, method="fft").work
    fft_part = (2 * len(channels) + 1) * 5 * n * math.log2(n) + len(channels) * 6 * n
    features = 2 * t * (2 * m * 4 + 2 * 4 + 2 * m)
    assert base == features + t * m * d_v + fft_part + t * (2 * m * (d_v + 1) + d_v)


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_spike_ops_against_reference_counts(rate):
    """Synaptic ops as the spike-attention reference counts them, on all-silent and all-firing spikes."""
    reference = pytest.importorskip("accelkit.kernels.spike_attention.reference")
    t, b, h, n, d = 2, 1, 3, 5, 4
    q = k = v = np.full((t, b, h, n, d), rate)
    shape = {"t": t, "b": b, "h": h, "n": n, "d": d, "rate": rate}
    assert cost("sdsa_v1", **shape).work == reference.synaptic_ops_v1(k, v)
    assert cost("sdsa_v2", **shape).work == reference.synaptic_ops_v2(q, k, v)
    assert cost("sdsa_v1", **shape).bytes == 4 * q.nbytes // 2  # float64 arrays here, 4-byte tensors in the model
    s = np.full((3, 7), rate)
    accumulates = sum(5 for row in s for spike in row if spike > 0)  # each spike adds a row of N = 5 outputs
    assert cost("spike_binary_matmul", m=3, n=5, k=7, rate=rate).work == accumulates


def _rsqrt(x):
    _Counted.ops += 1
    return _Counted(x.value**-0.5)


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("l2norm", [False, True])
def test_delta_rule_against_counted(gated, l2norm):
    """The documented token recurrence on counted floats: h <- exp(g) h; h <- h + beta k (v - h^T k)^T; o = h^T q s."""
    rng = np.random.default_rng(3)
    t_len, kd, vd = 3, 2, 3
    q, k, v = rng.normal(size=(t_len, kd)), rng.normal(size=(t_len, kd)), rng.normal(size=(t_len, vd))
    beta, g = rng.uniform(0, 1, t_len), -rng.uniform(0, 1, t_len)
    _Counted.ops = 0
    state = [[_Counted(0.0) for _ in range(vd)] for _ in range(kd)]

    def normed(x):
        x = [_Counted(e) for e in x]
        total = _Counted(0.0)
        for e in x:
            total = total + e * e
        r = _rsqrt(total + 1e-6)
        return [e * r for e in x]

    for step in range(t_len):
        qt = normed(q[step]) if l2norm else [_Counted(e) for e in q[step]]
        kt = normed(k[step]) if l2norm else [_Counted(e) for e in k[step]]
        if gated:
            decay = _exp(_Counted(g[step]))
            state = [[decay * e for e in row] for row in state]
        w = []
        for j in range(vd):
            acc = _Counted(0.0)
            for i in range(kd):
                acc = acc + state[i][j] * kt[i]
            w.append(acc)
        u = [_Counted(v[step][j]) - w[j] for j in range(vd)]
        bk = [kt[i] * beta[step] for i in range(kd)]
        state = [[state[i][j] + bk[i] * u[j] for j in range(vd)] for i in range(kd)]
        sq = [e * 0.5 for e in qt]
        for j in range(vd):
            acc = _Counted(0.0)
            for i in range(kd):
                acc = acc + state[i][j] * sq[i]
    got = cost("delta_rule", b=1, t=t_len, h=1, k=kd, v=vd, gated=gated, use_qk_l2norm=l2norm)
    assert got.work == _Counted.ops
    assert got.bytes == t_len * (2 * kd + 2 * vd + 1 + gated) * 2
