"""WKV: the float64 oracles against each other and finite differences; the op (C++ on the CPU) against the oracle,
forward and every gradient, with opcheck, torch.compile, bad input and the energy counter."""

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from strategies import FLOAT_DTYPES, layouts, make_tensor, seeds, sizes
from tolerance import assert_close, assert_within_peer_error

from accelkit import ops
from accelkit.kernels.spiking import energy
from accelkit.kernels.wkv import reference
from accelkit.kernels.wkv.loop import wkv_loop
from accelkit.kernels.wkv.op import MACS_PER_STEP

float_dtypes = st.sampled_from(FLOAT_DTYPES)


def _inputs(batch, steps, channels, dtype, seed, layout="contiguous", k_scale=1.5):
    """w = -exp(N(0, 1)) as SpikeGPT's decay, u, k, v, gy; k spread by k_scale to exercise the offsets."""
    gen = torch.Generator().manual_seed(seed)
    w = -torch.randn(channels, generator=gen, dtype=torch.float64).exp()
    u = torch.randn(channels, generator=gen, dtype=torch.float64)
    k = make_tensor((batch, steps, channels), torch.float64, seed=seed + 1, layout=layout, scale=k_scale)
    v = make_tensor((batch, steps, channels), torch.float64, seed=seed + 2, layout=layout)
    gy = make_tensor((batch, steps, channels), torch.float64, seed=seed + 3)
    return [x.to(dtype) for x in (w, u, k, v, gy)]


def _np(*xs):
    return [x.detach().double().numpy() for x in xs]


@given(batch=st.integers(0, 2), steps=st.integers(0, 12), channels=sizes(9), seed=seeds)
def test_closed_form_equals_recurrence(batch, steps, channels, seed):
    w, u, k, v, _ = _np(*_inputs(batch, steps, channels, torch.float64, seed, k_scale=8.0))
    ref = reference.wkv(w, u, k, v)
    assert ref.shape == (batch, steps, channels)
    np.testing.assert_allclose(reference.wkv_recurrence(w, u, k, v), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_oracle_gradients_match_finite_differences(seed):
    w, u, k, v, gy = _np(*_inputs(2, 6, 3, torch.float64, seed))
    grads = reference.wkv_grads(w, u, k, v, gy)
    args = [w, u, k, v]
    eps = 1e-6
    for which in range(4):
        flat = args[which].reshape(-1)
        numeric = np.empty_like(flat)
        for i in range(flat.size):
            hi, lo = [a.copy() for a in args], [a.copy() for a in args]
            hi[which].reshape(-1)[i] += eps
            lo[which].reshape(-1)[i] -= eps
            numeric[i] = ((reference.wkv(*hi) - reference.wkv(*lo)) * gy).sum() / (2 * eps)
        np.testing.assert_allclose(grads[which].reshape(-1), numeric, rtol=1e-6, atol=1e-7)


@settings(max_examples=15)
@given(
    batch=st.integers(0, 3),
    steps=st.integers(0, 20),
    channels=sizes(70),
    dtype=float_dtypes,
    layout=layouts,
    seed=seeds,
)
def test_op_matches_oracle(batch, steps, channels, dtype, layout, seed):
    w, u, k, v, gy = _inputs(batch, steps, channels, dtype, seed, layout)
    args = [x.requires_grad_() for x in (w, u, k, v)]
    y = ops.wkv(*args)
    assert y.dtype == dtype and y.shape == (batch, steps, channels)
    ref = reference.wkv(*_np(w, u, k, v))
    assert_close("wkv", ref, y)
    y.backward(gy)
    ref_grads = reference.wkv_grads(*_np(w, u, k, v, gy))
    for name, x, g in zip(("w", "u", "k", "v"), args, ref_grads, strict=True):
        assert x.grad.dtype == dtype and x.grad.shape == x.shape
        assert_close(f"grad {name}", g, x.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_exponents_stay_finite(dtype):
    # k up to +-100 and u = 30: e^{u + k} overflows float32 (max e^88.7), so only the offset form survives. At these
    # magnitudes float32 exponents carry absolute rounding errors of ~1e-5, so float32 is judged against the same
    # recurrence in float32 PyTorch (within 2x its error), float64 against the table.
    w, u, k, v, gy = _inputs(2, 40, 33, dtype, 5, k_scale=40.0)
    u = u + 30.0
    args = [x.requires_grad_() for x in (w, u, k, v)]
    y = ops.wkv(*args)
    y.backward(gy)
    ref, ref_grads = reference.wkv(*_np(w, u, k, v)), reference.wkv_grads(*_np(w, u, k, v, gy))
    if dtype == torch.float64:
        assert_close("wkv", ref, y)
        for name, x, g in zip("wukv", args, ref_grads, strict=True):
            assert_close(f"grad {name}", g, x.grad)
        return
    peer_args = [x.detach().clone().requires_grad_() for x in (w, u, k, v)]
    peer = wkv_loop(*peer_args)
    peer.backward(gy)
    assert_within_peer_error("wkv", ref, y, peer, dtype=dtype)
    for name, x, p, g in zip("wukv", args, peer_args, ref_grads, strict=True):
        assert_within_peer_error(f"grad {name}", g, x.grad, p.grad, dtype=dtype, factor=3.0)


def test_long_sequence_float32():
    # 600 steps, with a decay near 0 (w = -1e-3) that keeps every past step in the sums.
    w, u, k, v, gy = _inputs(1, 600, 5, torch.float32, 9)
    w[0] = -1e-3
    args = [x.requires_grad_() for x in (w, u, k, v)]
    y = ops.wkv(*args)
    y.backward(gy)
    assert_close("wkv", reference.wkv_recurrence(*_np(w, u, k, v)), y)


def test_mixed_parameter_dtypes():
    # float32 decay and bonus with bfloat16 activations, as RWKV trains; each gradient in its argument's dtype.
    w, u, k, v, gy = _inputs(2, 7, 9, torch.float32, 3)
    k, v, gy = (x.to(torch.bfloat16) for x in (k, v, gy))
    args = [x.requires_grad_() for x in (w, u, k, v)]
    y = ops.wkv(*args)
    assert y.dtype == torch.bfloat16
    y.backward(gy)
    assert [a.grad.dtype for a in args] == [torch.float32, torch.float32, torch.bfloat16, torch.bfloat16]
    ref = reference.wkv_grads(*_np(w, u, k, v, gy))
    assert_close("grad k", ref[2], args[2].grad)
    assert_close("wkv", reference.wkv(*_np(w, u, k, v)), y)


def test_opcheck():
    w, u, k, v, _ = _inputs(2, 5, 7, torch.float64, 1)
    args = [x.requires_grad_() for x in (w, u, k, v)]
    torch.library.opcheck(torch.ops.accelkit.wkv.default, tuple(args))
    torch.library.opcheck(torch.ops.accelkit.wkv.default, tuple(x.detach().float() for x in args))


def test_compile_fullgraph_matches_eager():
    w, u, k, v, gy = _inputs(2, 9, 11, torch.float32, 2)

    def f(w, u, k, v):
        return ops.wkv(w, -u, k * 2.0, v).sum(dim=1)

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    eager_args = [x.clone().requires_grad_() for x in (w, u, k, v)]
    comp_args = [x.clone().requires_grad_() for x in (w, u, k, v)]
    eager, comp = f(*eager_args), compiled(*comp_args)
    assert_close("compiled", eager.detach().double(), comp)
    comp.sum().backward()
    eager.sum().backward()
    for a, b in zip(eager_args, comp_args, strict=True):
        assert_close("compiled grad", a.grad.double(), b.grad)


def test_bad_inputs_name_the_argument():
    w, u, k, v, _ = _inputs(1, 3, 4, torch.float32, 0)
    with pytest.raises(TypeError, match="k must be a torch.Tensor"):
        ops.wkv(w, u, k.numpy(), v)
    with pytest.raises(ValueError, match="k must have at least 3 dims"):
        ops.wkv(w, u, k[0], v[0])
    with pytest.raises(ValueError, match="v must have dtype"):
        ops.wkv(w, u, k, v.double())
    with pytest.raises(ValueError, match="v has shape"):
        ops.wkv(w, u, k, v[:, :2])
    with pytest.raises(ValueError, match="w has 3 channels"):
        ops.wkv(w[:3], u, k, v)
    with pytest.raises(ValueError, match="u must have at most 1 dims"):
        ops.wkv(w, u[None], k, v)
    with pytest.raises(ValueError, match="k must have dtype"):
        ops.wkv(w, u, k.int(), v.int())


def test_energy_counts_macs():
    w, u, k, v, _ = _inputs(2, 5, 3, torch.float32, 0)
    with energy.counting() as counter:
        ops.wkv(w, u, k, v)
    assert counter.by_op["wkv"] == energy.SynapticOps(acs=0, macs=MACS_PER_STEP * 2 * 5 * 3)


def test_gpu_check_wkv_case_runs_on_cpu_at_tiny_sizes():
    # bench/gpu_check.py's WKV row, on the CPU with a wall-clock timer, so a typo shows here rather than on a GPU.
    import importlib.util
    import time
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("bench_gpu_check_wkv", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def wall_ms(fn, repeats):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) * 1e3 / repeats

    row = module.wkv_case(2, 9, 5, 1, device="cpu", timer=wall_ms)
    assert row["accelkit_ms"] > 0 and row["torch_loop_ms"] > 0
    assert row["max_dy"] < 1e-5 and row["max_dgrad_k"] < 1e-5, row
