"""The Triton spiking-neuron kernels against the float64 oracle (under the interpreter without a GPU: tiny shapes):
forward spikes exactly and membranes, BPTT gradients for x, v_init and PLIF's decay (summed over several
programs), every surrogate and flag; on a GPU also through accelkit.ops with backend="triton"."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from spiking_cases import V_RESETS, grid
from tolerance import assert_close

from accelkit.kernels.spiking import reference as ref
from accelkit.kernels.spiking.triton_kernels import BLOCK, neuron_backward_triton, neuron_forward_triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _check(t, n, dtype, kind, decay_input, v_reset, surrogate, detach_reset, with_v_init, seed):
    decay = {"lif": 0.5, "plif": 0.25, "if": 0.0}[kind]
    decay_input = decay_input and kind != "if"
    x = grid((t, n), seed, dtype=dtype).to(DEVICE)
    v0 = grid((n,), seed + 1, lo=-8, hi=8, dtype=dtype).to(DEVICE) if with_v_init else None
    gs = grid((t, n), seed + 2, lo=-16, hi=16, dtype=dtype).to(DEVICE)
    gv = grid((t, n), seed + 3, lo=-16, hi=16, dtype=dtype).to(DEVICE)
    gl = grid((n,), seed + 4, lo=-16, hi=16, dtype=dtype).to(DEVICE)
    decay_t = torch.tensor([decay], dtype=dtype, device=DEVICE)
    opts = dict(decay_input=decay_input, v_threshold=1.0, v_reset=v_reset)
    spikes, v_seq, v_last, h_seq = neuron_forward_triton(x, v0, decay_t, store_v_seq=True, **opts)
    alpha = ref.DEFAULT_ALPHA[surrogate]
    gx, gv0, gd = neuron_backward_triton(
        x, h_seq, v0, gs, gv, gl, decay_t, want_decay=kind == "plif", surrogate=surrogate, alpha=alpha,
        detach_reset=detach_reset, **opts,
    )  # fmt: skip
    np64 = lambda a: None if a is None else a.double().cpu().numpy()  # noqa: E731
    oracle_kind = "if" if kind == "if" else "lif"
    s_ref, v_ref, h_ref = ref.neuron_forward(np64(x), np64(v0), kind=oracle_kind, decay=decay, **opts)
    gv_all = np64(gv).copy()
    if t:
        gv_all[-1] += np64(gl)
    gx_ref, gv0_ref, gd_ref = ref.neuron_backward(
        np64(x), np64(v0), np64(gs), gv_all, kind=oracle_kind, decay=decay, surrogate=surrogate, alpha=alpha,
        detach_reset=detach_reset, **opts,
    )  # fmt: skip
    if t == 0:
        gv0_ref = np64(gl)
    np.testing.assert_array_equal(np64(spikes), s_ref)
    assert_close("v_seq", v_ref, v_seq)
    assert_close("h_seq", h_ref, h_seq)
    if t:
        assert_close("v_last", v_ref[-1], v_last)
    assert_close("grad x", gx_ref, gx)
    assert_close("grad v_init", gv0_ref, gv0)
    if kind == "plif":
        assert_close("grad decay", np.array([gd_ref]), gd.to(dtype))


@settings(max_examples=12)
@given(
    t=st.integers(0, 4),
    n=st.sampled_from((1, 7, 33, BLOCK + 3)),
    dtype=st.sampled_from((torch.float32, torch.float64)),
    kind=st.sampled_from(("lif", "if", "plif")),
    decay_input=st.booleans(),
    v_reset=st.sampled_from(V_RESETS),
    surrogate=st.sampled_from(ref.SURROGATES),
    detach_reset=st.booleans(),
    with_v_init=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_triton_kernels_match_oracle(
    t, n, dtype, kind, decay_input, v_reset, surrogate, detach_reset, with_v_init, seed
):
    _check(t, n, dtype, kind, decay_input, v_reset, surrogate, detach_reset, with_v_init, seed)


@pytest.mark.parametrize("surrogate", ref.SURROGATES)
def test_plif_decay_gradient_over_programs(surrogate):
    """Three programs' partial sums make PLIF's decay gradient (SpikingJelly #151 lost all but one block's)."""
    _check(3, 2 * BLOCK + 5, torch.float32, "plif", True, 0.0, surrogate, False, True, 11)


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_cuda_ops_match_cpu(dtype, backend):
    """On a GPU: PLIF through the Triton and the CUDA C (CuPy) kernels equals the CPU path (spikes exactly)."""
    from accelkit import ops

    if backend == "cuda":
        pytest.importorskip("cupy")

    x = grid((6, 4, 301), 0, dtype=dtype).requires_grad_()
    w = torch.tensor([0.0], requires_grad=True)
    xc = x.detach().cuda().requires_grad_()
    wc = w.detach().cuda().requires_grad_()
    s, v = ops.plif(x, w, return_v=True)
    (s.sum() + v.sum()).backward()
    sc, vc = ops.plif(xc, wc, return_v=True, backend=backend)
    (sc.sum() + vc.sum()).backward()
    assert torch.equal(s, sc.cpu())
    assert_close("v", v.double(), vc.cpu())
    assert_close("grad x", x.grad.double(), xc.grad.cpu())
    assert_close("grad w", w.grad.double(), wc.grad.cpu())
