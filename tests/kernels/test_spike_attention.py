"""SDSA V1/V2 and the spike x binary matmul: the popcount forms against the float oracles, the ops (CPU) against the
oracles, forward and every gradient, opcheck, torch.compile, bad input and the energy counts."""

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from strategies import FLOAT_DTYPES, layouts, make_tensor, seeds, sizes
from tolerance import assert_close

from accelkit import ops
from accelkit.kernels.spike_attention import reference
from accelkit.kernels.spiking import energy

float_dtypes = st.sampled_from(FLOAT_DTYPES)


def _spikes(shape, dtype, seed, *, rate=0.4, layout="contiguous", levels=1):
    """{0,1} spikes (levels=1) or QSD-style multi-level spikes k/levels, k in 0..levels, with the given layout."""
    gen = torch.Generator().manual_seed(seed)
    base = make_tensor(shape, torch.float64, seed=seed, layout=layout)
    counts = torch.randint(1, levels + 1, base.shape, generator=gen).double()
    fired = (torch.rand(base.shape, generator=gen) < rate).double()
    # Write through the view so a strided or transposed layout stays non-contiguous.
    base.copy_(fired * counts / levels)
    return base.to(dtype) if layout == "contiguous" else _as_layout(base, dtype, layout)


def _as_layout(x, dtype, layout):
    if layout == "strided" or x.dim() < 2:
        holder = torch.full((*x.shape[:-1], 2 * x.shape[-1]), float("nan"), dtype=dtype)[..., ::2]
    else:
        holder = torch.full((*x.shape[:-2], x.shape[-1], x.shape[-2]), float("nan"), dtype=dtype).transpose(-1, -2)
    return holder.copy_(x)


def _np(*xs):
    return [x.detach().double().numpy() for x in xs]


qkv_shapes = st.tuples(st.integers(1, 4), st.integers(0, 2), st.integers(1, 2), sizes(33), sizes(17))


@given(shape=qkv_shapes, seed=seeds)
def test_popcount_forms_equal_float_forms(shape, seed):
    k, v = (_spikes(shape, torch.float64, seed + i).numpy() for i in range(2))
    assert np.array_equal(reference.column_sums_popcount(k, v), reference.column_sums(k, v))
    assert np.array_equal(reference.kv_popcount(k, v), np.swapaxes(k, -1, -2) @ v)


def test_v2_oracle_gradients_match_finite_differences():
    gen = np.random.default_rng(0)
    q, k, v, g = (gen.standard_normal((2, 1, 2, 5, 3)) for _ in range(4))
    grads = reference.sdsa_v2_grads(q, k, v, g, 0.25)
    args, eps = [q, k, v], 1e-6
    for which in range(3):
        flat = args[which].reshape(-1)
        numeric = np.empty_like(flat)
        for i in range(flat.size):
            hi, lo = [a.copy() for a in args], [a.copy() for a in args]
            hi[which].reshape(-1)[i] += eps
            lo[which].reshape(-1)[i] -= eps
            numeric[i] = ((reference.sdsa_v2(*hi, 0.25) - reference.sdsa_v2(*lo, 0.25)) * g).sum() / (2 * eps)
        np.testing.assert_allclose(grads[which].reshape(-1), numeric, rtol=1e-7, atol=1e-8)


@settings(max_examples=15)
@given(
    shape=qkv_shapes,
    dtype=float_dtypes,
    layout=layouts,
    levels=st.sampled_from((1, 1, 4)),
    v_threshold=st.sampled_from((0.5, 0.5, 1.0, 2.5)),
    seed=seeds,
)
def test_sdsa_v1_matches_oracle(shape, dtype, layout, levels, v_threshold, seed):
    q, k, v = (_spikes(shape, dtype, seed + i, layout=layout, levels=levels).requires_grad_() for i in range(3))
    grad = make_tensor(shape, dtype, seed=seed + 7)
    out = ops.sdsa_v1(q, k, v, v_threshold=v_threshold)
    assert out.dtype == dtype and out.shape == shape
    # Spikes and masks are exact: the column sums are exact in float32 and the LIF membrane of tau 2 stays dyadic.
    ref = reference.sdsa_v1(*_np(q, k, v), v_threshold=v_threshold)
    assert_close("sdsa_v1", ref, out, dtype=torch.float64)
    out.backward(grad)
    ref_grads = reference.sdsa_v1_grads(*_np(q, k, v, grad), v_threshold=v_threshold)
    for name, x, g in zip("qkv", (q, k, v), ref_grads, strict=True):
        assert x.grad.dtype == dtype
        assert_close(f"grad {name}", g, x.grad)


@settings(max_examples=15)
@given(
    shape=qkv_shapes,
    dtype=float_dtypes,
    layout=layouts,
    levels=st.sampled_from((1, 1, 4)),
    scale=st.sampled_from((0.125, 0.25, 1.0)),
    seed=seeds,
)
def test_sdsa_v2_matches_oracle(shape, dtype, layout, levels, scale, seed):
    q, k, v = (_spikes(shape, dtype, seed + i, layout=layout, levels=levels).requires_grad_() for i in range(3))
    grad = make_tensor(shape, dtype, seed=seed + 7)
    out = ops.sdsa_v2(q, k, v, scale=scale)
    assert out.dtype == dtype and out.shape == shape
    assert_close("sdsa_v2", reference.sdsa_v2(*_np(q, k, v), scale), out)
    out.backward(grad)
    for name, x, g in zip("qkv", (q, k, v), reference.sdsa_v2_grads(*_np(q, k, v, grad), scale), strict=True):
        assert_close(f"grad {name}", g, x.grad)


@settings(max_examples=20)
@given(
    lead=st.one_of(st.just(()), st.tuples(sizes(9)), st.tuples(st.integers(0, 2), sizes(9))),
    n=st.integers(0, 40),
    k=st.integers(0, 150),
    dtype=float_dtypes,
    layout=layouts,
    seed=seeds,
)
def test_spike_binary_matmul_matches_oracle(lead, n, k, dtype, layout, seed):
    s = _spikes((*lead, k), dtype, seed, layout=layout) if k else torch.zeros((*lead, 0), dtype=dtype)
    w = make_tensor((n, k), dtype, seed=seed + 1, layout=layout).requires_grad_()
    s.requires_grad_()
    out = ops.spike_binary_matmul(s, w)
    assert out.dtype == dtype and out.shape == (*lead, n)
    # Integer counts in [-k, k]: exact in every dtype for k <= 256.
    assert_close("spike_binary_matmul", reference.spike_binary_matmul(*_np(s, w)), out, dtype=torch.float64)
    grad = make_tensor((*lead, n), dtype, seed=seed + 2)
    out.backward(grad)
    ref_s, ref_w = reference.spike_binary_matmul_grads(*_np(s, w, grad))
    assert_close("grad s", ref_s, s.grad)
    assert_close("grad w", ref_w, w.grad)


def test_spike_binary_matmul_wide_rows():
    # K = 1000 crosses many 64-bit words; every spike meets a +1 or -1 weight.
    s = _spikes((3, 1000), torch.float32, 4, rate=0.9)
    w = make_tensor((7, 1000), torch.float32, seed=5)
    assert_close("wide", reference.spike_binary_matmul(*_np(s, w)), ops.spike_binary_matmul(s, w), dtype=torch.float64)


def test_opcheck():
    q, k, v = (_spikes((2, 1, 2, 5, 3), torch.float64, i).requires_grad_() for i in range(3))
    torch.library.opcheck(torch.ops.accelkit.sdsa_column_sums.default, (k, v))
    torch.library.opcheck(torch.ops.accelkit.sdsa_v2.default, (q, k, v, 0.125))
    s = _spikes((4, 70), torch.float32, 3).requires_grad_()
    w = make_tensor((5, 70), torch.float32, seed=1).requires_grad_()
    torch.library.opcheck(torch.ops.accelkit.spike_binary_matmul.default, (s, w))


def test_compile_fullgraph_matches_eager():
    q, k, v = (_spikes((3, 2, 2, 6, 4), torch.float32, i) for i in range(3))
    w = make_tensor((5, 4), torch.float32, seed=2)

    def f(q, k, v, w):
        return ops.spike_binary_matmul(ops.sdsa_v1(q, k, v) + ops.sdsa_v2(q, k, v), w)

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    eager_args = [x.clone().requires_grad_() for x in (q, k, v, w)]
    comp_args = [x.clone().requires_grad_() for x in (q, k, v, w)]
    eager, comp = f(*eager_args), compiled(*comp_args)
    assert_close("compiled", eager.detach().double(), comp)
    eager.sum().backward()
    comp.sum().backward()
    for a, b in zip(eager_args, comp_args, strict=True):
        assert_close("compiled grad", a.grad.double(), b.grad)


def test_bad_inputs_name_the_argument():
    q, k, v = (_spikes((2, 1, 1, 3, 4), torch.float32, i) for i in range(3))
    with pytest.raises(ValueError, match="q must have at least 5 dims"):
        ops.sdsa_v1(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="k has shape"):
        ops.sdsa_v2(q, k[:, :, :, :2], v)
    with pytest.raises(ValueError, match="v must have dtype"):
        ops.sdsa_v2(q, k, v.double())
    with pytest.raises(ValueError, match="v_threshold must be > v_reset"):
        ops.sdsa_v1(q, k, v, v_threshold=0.0)
    with pytest.raises(TypeError, match="v_threshold must be a real number"):
        ops.sdsa_v1(q, k, v, v_threshold="0.5")
    with pytest.raises(ValueError, match="scale must be finite"):
        ops.sdsa_v2(q, k, v, scale=float("inf"))
    with pytest.raises(TypeError, match="s must be a torch.Tensor"):
        ops.spike_binary_matmul([1.0], torch.ones(2, 1))
    with pytest.raises(ValueError, match="s has K=4 but w has K=3"):
        ops.spike_binary_matmul(q[0, 0, 0], torch.ones(2, 3))
    with pytest.raises(ValueError, match="w must have dtype"):
        ops.spike_binary_matmul(q[0, 0, 0], torch.ones(2, 4, dtype=torch.float64))


def test_energy_counts_follow_the_spikes():
    q, k, v = (_spikes((3, 2, 2, 7, 5), torch.float32, i) for i in range(3))
    s = _spikes((6, 40), torch.float32, 9)
    w = make_tensor((11, 40), torch.float32, seed=1)
    with energy.counting() as counter:
        ops.sdsa_v1(q, k, v)
        ops.sdsa_v2(q, k, v)
        ops.spike_binary_matmul(s, w)
    qn, kn, vn = _np(q, k, v)
    assert counter.by_op["sdsa_v1"] == energy.SynapticOps(acs=reference.synaptic_ops_v1(kn, vn))
    assert counter.by_op["sdsa_v2"] == energy.SynapticOps(acs=reference.synaptic_ops_v2(qn, kn, vn))
    assert counter.by_op["spike_binary_matmul"] == energy.SynapticOps(acs=int((s > 0).sum()) * 11)
    assert counter.by_op["sdsa_v1"].acs > 0
    with energy.counting() as silent:
        ops.sdsa_v2(q * 0, k, v)
    assert silent.by_op["sdsa_v2"].acs == reference.synaptic_ops_v2(np.zeros_like(qn), kn, vn)
