"""rpe_kernel_attention (kernelized attention with a relative-position bias): the FFT path and the blocked direct path
against the O(T^2) float64 oracle given the same features, gradients by float64 gradcheck, convergence to softmax
attention with the bias as m grows, large biases and inputs, opcheck, torch.compile and bad input."""

import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from strategies import layouts, make_tensor, seeds
from tolerance import assert_close

from accelkit import ops
from accelkit.kernels.fft_rpe import op as rpe_op
from accelkit.kernels.fft_rpe import reference, toeplitz

# 1 to a few hundred positions: odd, prime (97, 211, 257), powers of two and their neighbours.
LENGTHS = (1, 2, 3, 5, 7, 13, 16, 31, 33, 64, 97, 127, 211, 256, 257, 300)
METHOD = st.sampled_from(("fft", "direct"))


def _inputs(b, t, h, d, dv, m, dtype, seed, layout="contiguous", bias_scale=0.5):
    q = make_tensor((b, t, h, d), dtype, seed=seed, layout=layout)
    k = make_tensor((b, t, h, d), dtype, seed=seed + 1, layout=layout)
    v = make_tensor((b, t, h, dv), dtype, seed=seed + 2, layout=layout)
    bias = make_tensor((h, max(2 * t - 1, 0)), dtype, seed=seed + 3, scale=bias_scale)
    w = rpe_op.orthogonal_features(m, d, seed=seed, dtype=dtype if dtype == torch.float64 else torch.float32)
    return q, k, v, bias, w


def _oracle(q, k, v, bias, w, **kw):
    n = [x.detach().double().numpy() for x in (q, k, v, bias, w)]
    return reference.rpe_kernel_attention(*n, **kw)


@settings(max_examples=20)
@given(
    t=st.sampled_from(LENGTHS), causal=st.booleans(), method=METHOD, b=st.integers(1, 2), h=st.integers(1, 2),
    d=st.integers(1, 9), dv=st.integers(1, 6), m=st.integers(1, 20), normalize=st.booleans(), layout=layouts,
    seed=seeds,
)  # fmt: skip
def test_float64_matches_oracle(t, causal, method, b, h, d, dv, m, normalize, layout, seed):
    q, k, v, bias, w = _inputs(b, t, h, d, dv, m, torch.float64, seed % 2**20, layout)
    out = ops.rpe_kernel_attention(q, k, v, bias, causal=causal, features=w, normalize_qk=normalize, method=method)
    ref = _oracle(q, k, v, bias, w, causal=causal, normalize_qk=normalize)
    assert out.shape == (b, t, h, dv) and out.dtype == torch.float64
    # 1e-10 relative to the output's scale: the FFT's rounding is relative to the whole signal, not each element.
    err = np.abs(out.numpy() - ref).max() / max(np.abs(ref).max(), 1e-300)
    assert err <= 1e-10, f"{method}: relative error {err:.3e}"


@settings(max_examples=12)
@given(
    t=st.sampled_from(LENGTHS), causal=st.booleans(), method=METHOD, d=st.integers(1, 9), dv=st.integers(1, 6),
    m=st.integers(1, 20), dtype=st.sampled_from((torch.float32, torch.float16, torch.bfloat16)), seed=seeds,
)  # fmt: skip
def test_low_precision_within_tolerance(t, causal, method, d, dv, m, dtype, seed):
    q, k, v, bias, w = _inputs(2, t, 2, d, dv, m, dtype, seed % 2**20)
    out = ops.rpe_kernel_attention(q, k, v, bias, causal=causal, features=w, method=method)
    assert out.dtype == dtype
    assert_close(f"rpe_kernel_attention[{method}]", _oracle(q, k, v, bias, w, causal=causal), out)


def _gradcheck(method, causal, normalize, fast_mode):
    # eps = 0.3 makes the shifts (which meet eps in the normaliser) matter, so their gradient is checked too.
    q, k, v, bias, w = _inputs(1, 6, 2, 3, 2, 4, torch.float64, 11)
    leaves = [x.detach().requires_grad_() for x in (q, k, v, bias)]

    def f(q, k, v, bias):
        return ops.rpe_kernel_attention(
            q, k, v, bias, causal=causal, features=w, normalize_qk=normalize, eps=0.3, method=method
        )

    assert torch.autograd.gradcheck(f, leaves, fast_mode=fast_mode)


@pytest.mark.parametrize("method", ["fft", "direct"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_gradcheck_all_inputs(method, causal, normalize):
    _gradcheck(method, causal, normalize, fast_mode=True)


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_gradcheck_full_jacobian(method):
    # The whole Jacobian once per path, so a wrong column cannot hide in fast mode's random projection.
    _gradcheck(method, True, False, fast_mode=False)


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_float32_gradients_match_float64(method):
    q, k, v, bias, w = _inputs(1, 37, 2, 6, 5, 8, torch.float64, 5)
    grads = {}
    for dtype in (torch.float64, torch.float32):
        leaves = [x.detach().to(dtype).requires_grad_() for x in (q, k, v, bias)]
        out = ops.rpe_kernel_attention(*leaves, causal=True, features=w.to(dtype), method=method)
        out.backward(torch.ones_like(out))
        grads[dtype] = [x.grad.double() for x in leaves]
    for name, g32, g64 in zip("q k v rpe_bias".split(), grads[torch.float32], grads[torch.float64], strict=True):
        scale = g64.abs().max().item()
        assert (g32 - g64).abs().max().item() <= 1e-4 * scale, name


def test_paths_agree_on_long_sequence():
    # Past the benchmark's smallest T, with a causal decaying bias: the causal first rows have a normaliser of a
    # few terms, far below the columns' norm, which is where float32 transforms missed the table (toeplitz.py).
    t = 1500
    q, k, v, _, w = _inputs(1, t, 1, 16, 8, 16, torch.float64, 3)
    bias = (-0.01 * torch.arange(2 * t - 1, dtype=torch.float64).sub(t - 1).abs())[None]
    ref = ops.rpe_kernel_attention(q, k, v, bias, causal=True, features=w, method="direct")
    assert_close(f"T={t} fft against direct", ref, ops.rpe_kernel_attention(q, k, v, bias, causal=True, features=w))
    for method in ("fft", "direct"):
        args = [x.float() for x in (q, k, v, bias)]
        out = ops.rpe_kernel_attention(*args, causal=True, features=w.float(), method=method)
        assert_close(f"T={t} {method} float32", ref, out)


def test_converges_to_softmax_with_bias():
    # Monte-Carlo error of positive random features falls as 1/sqrt(m): over 4 draws per m (fixed seeds), the
    # fitted slope of log error against log m is near -1/2 and m = 4096 beats m = 16 by far more than chance.
    q, k, v, bias, _ = _inputs(1, 33, 2, 8, 4, 1, torch.float64, 21)
    exact = reference.softmax_rpe_attention(*(x.numpy() for x in (q, k, v, bias)))
    counts = (16, 64, 256, 1024, 4096)
    errors = []
    for m in counts:
        runs = [ops.rpe_kernel_attention(q, k, v, bias, num_features=m, seed=s, method="direct") for s in range(4)]
        errors.append(np.mean([np.sqrt(np.mean((r.numpy() - exact) ** 2)) for r in runs]))
    slope = np.polyfit(np.log(counts), np.log(errors), 1)[0]
    assert -0.8 <= slope <= -0.3, (slope, errors)
    assert errors[-1] < errors[0] / 4, errors


@pytest.mark.parametrize("method", ["fft", "direct"])
@pytest.mark.parametrize("causal", [False, True])
def test_large_bias_and_inputs_stay_finite(method, causal):
    t = 64
    q, k, v, _, w = _inputs(1, t, 2, 8, 4, 16, torch.float32, 9)
    bias = torch.linspace(-50, 50, 2 * t - 1).repeat(2, 1)
    bias[1] = bias[1].flip(0)
    for normalize, qk_scale in ((True, 1.0), (False, 30.0)):
        out = ops.rpe_kernel_attention(
            q * qk_scale, k * qk_scale, v, bias, causal=causal, features=w, normalize_qk=normalize, method=method
        )
        assert torch.isfinite(out).all()
    # Normalised q, k: the normaliser stays strictly positive in float32 (c spans e^-50 .. e^50 after the shift),
    # and the direct path still equals the oracle.
    qc, kc = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    _, den = rpe_op._forward(qc, kc, v, bias, w, causal, 1e-6, method)
    if method == "direct":
        assert (den > 0).all()
        out = ops.rpe_kernel_attention(q, k, v, bias, causal=causal, features=w, method=method)
        assert_close("|b| = 50", _oracle(q, k, v, bias, w, causal=causal), out)


def test_empty_and_single():
    for shape in ((0, 5, 2, 4), (2, 0, 2, 4), (2, 5, 0, 4)):
        b, t, h, d = shape
        q = torch.randn(shape, requires_grad=True)
        out = ops.rpe_kernel_attention(q, q, q, torch.zeros(h, max(2 * t - 1, 0)), num_features=3, seed=0)
        assert out.shape == shape
        out.sum().backward()
        assert q.grad.shape == shape


def test_seeded_features_are_orthogonal_and_reproducible():
    w1 = rpe_op.orthogonal_features(20, 8, seed=3, dtype=torch.float64)
    w2 = rpe_op.orthogonal_features(20, 8, seed=3, dtype=torch.float64)
    assert torch.equal(w1, w2) and w1.shape == (20, 8)
    unit = w1[:8] / w1[:8].norm(dim=1, keepdim=True)
    torch.testing.assert_close(unit @ unit.T, torch.eye(8, dtype=torch.float64))
    q = torch.randn(1, 6, 1, 8)
    a = ops.rpe_kernel_attention(q, q, q, torch.zeros(1, 11), num_features=20, seed=3)
    b = ops.rpe_kernel_attention(q, q, q, torch.zeros(1, 11), features=w1.float())
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_auto_picks_direct_short_and_fft_long():
    assert rpe_op.choose_method(1, 64, 65, "cpu") == "direct"
    assert rpe_op.choose_method(512, 64, 65, "cpu") == "direct"
    assert rpe_op.choose_method(65536, 64, 65, "cpu") == "fft"


def test_fft_length_is_smooth_and_long_enough():
    for t in range(1, 400):
        n = toeplitz.fft_length(t)
        assert n >= 2 * t - 1 and n < 2 * (2 * t - 1) + 1
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        assert n == 1


def test_opcheck():
    q, k, v, bias, w = _inputs(2, 9, 2, 5, 3, 6, torch.float32, 1)
    for method in ("fft", "direct"):
        args = (*(x.detach().requires_grad_() for x in (q, k, v, bias)), w, True, 1e-6, method)
        torch.library.opcheck(torch.ops.accelkit.rpe_kernel_attention.default, args)


def test_torch_compile_fullgraph_matches_eager():
    q, k, v, bias, w = _inputs(1, 20, 2, 8, 4, 16, torch.float32, 2)

    def f(q, k, v, bias):
        return ops.rpe_kernel_attention(q, k, v, bias, causal=True, features=w, method="fft") * 2

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    eager_leaves = [x.detach().requires_grad_() for x in (q, k, v, bias)]
    comp_leaves = [x.detach().requires_grad_() for x in (q, k, v, bias)]
    eager, comp = f(*eager_leaves), compiled(*comp_leaves)
    torch.testing.assert_close(comp, eager, rtol=0, atol=0)
    grad = torch.randn_like(eager)
    eager.backward(grad)
    comp.backward(grad)
    for a, b in zip(eager_leaves, comp_leaves, strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0)


def _bad_calls():
    f = ops.rpe_kernel_attention
    q, v, bias = torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 3), torch.zeros(2, 7)
    w = torch.randn(5, 8)
    return [
        (lambda: f(q, q, v, torch.zeros(2, 8), features=w), ValueError, "rpe_bias"),
        (lambda: f(q, q, v, torch.zeros(3, 7), features=w), ValueError, "rpe_bias"),
        (lambda: f(q, q, v, bias, features=torch.randn(5, 7)), ValueError, "features"),
        (lambda: f(q, q, v, bias, features=torch.randn(0, 8)), ValueError, "features"),
        (lambda: f(q, q, v, bias, num_features=0), ValueError, "num_features"),
        (lambda: f(q, q, v, bias, num_features=2.0), TypeError, "num_features"),
        (lambda: f(q, torch.randn(1, 5, 2, 8), v, bias, features=w), ValueError, "T_k"),
        (lambda: f(q, q, torch.randn(1, 5, 2, 3), bias, features=w), ValueError, "v"),
        (lambda: f(q, q.double(), v, bias, features=w), ValueError, "k"),
        (lambda: f(q[0], q, v, bias, features=w), ValueError, "q"),
        (lambda: f(q.int(), q, v, bias, features=w), ValueError, "q"),
        (lambda: f(q, q, v, [0.0] * 7, features=w), TypeError, "rpe_bias"),
        (lambda: f(q, q, v, bias, features=w, method="fast"), ValueError, "method"),
        (lambda: f(q, q, v, bias, features=w, eps=-1.0), ValueError, "eps"),
        (lambda: f(q, q, v, bias, features=w, eps=math.nan), ValueError, "eps"),
        (lambda: f(q, q, v, bias, features=w, causal=1), TypeError, "causal"),
        (lambda: f(q, q, v, bias, seed=-1), ValueError, "seed"),
        (lambda: f(q, q, v, bias, seed="a"), TypeError, "seed"),
        (lambda: f(q, q, v, bias, features=w.to("meta")), ValueError, "features"),
    ]


@pytest.mark.parametrize("index", range(len(_bad_calls())))
def test_bad_input_names_the_argument(index):
    call, error, name = _bad_calls()[index]
    with pytest.raises(error, match=name):
        call()
