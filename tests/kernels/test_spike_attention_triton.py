"""Spike attention's Triton kernels (V1 column sums, V2 fused forward) against the float64 oracle, under the
interpreter without a GPU (tiny shapes), and the ops on a CUDA device (cuda-marked)."""

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from strategies import FLOAT_DTYPES, seeds, sizes
from tolerance import assert_close

from accelkit import ops
from accelkit.kernels.spike_attention import reference
from accelkit.kernels.spike_attention.triton_kernels import MAX_D_V2, column_sums_fwd, sdsa_v2_fwd

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _spikes(shape, dtype, seed, device=DEVICE, levels=1):
    gen = torch.Generator().manual_seed(seed)
    fired = (torch.rand(shape, generator=gen) < 0.4).double()
    counts = torch.randint(1, levels + 1, shape, generator=gen).double()
    return (fired * counts / levels).to(dtype).to(device)


def _np(*xs):
    return [x.detach().double().cpu().numpy() for x in xs]


shapes = st.tuples(st.integers(1, 2), st.integers(0, 2), st.integers(1, 2), sizes(70), sizes(MAX_D_V2))


@settings(max_examples=6)
@given(shape=shapes, dtype=st.sampled_from((torch.float32, torch.float16, torch.bfloat16)), seed=seeds)
def test_kernels_match_oracle(shape, dtype, seed):
    q, k, v = (_spikes(shape, dtype, seed + i, levels=1 + i) for i in range(3))
    kv = column_sums_fwd(k, v)
    assert kv.dtype == torch.float32 and kv.shape == (*shape[:3], 1, shape[4])
    assert_close("column sums", reference.column_sums(*_np(k, v)), kv)
    out = sdsa_v2_fwd(q, k, v, 0.125)
    assert out.dtype == dtype and out.shape == shape
    assert_close("sdsa_v2_fwd", reference.sdsa_v2(*_np(q, k, v), 0.125), out)


def test_column_sums_float64_and_rejects():
    k, v = (_spikes((2, 1, 1, 5, 3), torch.float64, i) for i in range(2))
    kv = column_sums_fwd(k, v)
    assert kv.dtype == torch.float64
    assert_close("column sums fp64", reference.column_sums(*_np(k, v)), kv)
    with pytest.raises(ValueError, match="sdsa_v2_fwd takes"):
        sdsa_v2_fwd(k, k, v, 0.125)
    with pytest.raises(ValueError, match="v must have q's shape"):
        column_sums_fwd(k, v[:, :, :, :2])


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("d", [13, 64, 96])
def test_ops_on_cuda_match_oracle(dtype, d):
    shape = (4, 2, 3, 197, d)
    q, k, v = (_spikes(shape, dtype, i, device="cuda").requires_grad_() for i in range(3))
    grad = torch.randn(shape, dtype=dtype, device="cuda")
    for name, fn, ref, ref_grads in (
        ("sdsa_v1", ops.sdsa_v1, reference.sdsa_v1, reference.sdsa_v1_grads),
        ("sdsa_v2", ops.sdsa_v2, reference.sdsa_v2, reference.sdsa_v2_grads),
    ):
        for x in (q, k, v):
            x.grad = None
        out = fn(q, k, v)
        assert_close(name, ref(*_np(q, k, v)), out)
        out.backward(grad)
        for g_name, x, g in zip("qkv", (q, k, v), ref_grads(*_np(q, k, v, grad)), strict=True):
            assert_close(f"{name} grad {g_name}", g, x.grad)


@settings(max_examples=5)
@given(
    lead=st.one_of(st.just(()), st.tuples(st.integers(0, 3))),
    n=sizes(40),
    k=sizes(150),
    dtype=st.sampled_from(FLOAT_DTYPES),
    seed=seeds,
)
def test_spike_gemm_triton_matches_oracle(lead, n, k, dtype, seed):
    # The CUDA path of spike_binary_matmul: kernels/binary's Triton pack and XOR GEMM, and the identity
    # s.w = (sum(sign w) - (1 - 2 s).w) / 2.
    from accelkit.kernels.spike_attention.op import spike_gemm_triton

    s = _spikes((*lead, k), dtype, seed)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen).to(dtype).to(DEVICE)
    out = spike_gemm_triton(s, w)
    assert out.dtype == torch.int32 and out.shape == (*lead, n)
    assert_close("spike_gemm_triton", reference.spike_binary_matmul(*_np(s, w)).astype("int64"), out)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_spike_binary_matmul_on_cuda_matches_oracle(dtype):
    s = _spikes((3, 17, 200), dtype, 1, device="cuda").requires_grad_()
    w = torch.randn(33, 200, device="cuda").to(dtype).requires_grad_()
    out = ops.spike_binary_matmul(s, w)
    assert_close("spike_binary_matmul", reference.spike_binary_matmul(*_np(s, w)), out, dtype=torch.float64)
    grad = torch.randn(out.shape, device="cuda", dtype=dtype)
    out.backward(grad)
    ref_s, ref_w = reference.spike_binary_matmul_grads(*_np(s, w, grad))
    assert_close("grad s", ref_s, s.grad)
    assert_close("grad w", ref_w, w.grad)
