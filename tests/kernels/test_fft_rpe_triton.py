"""The Triton feature-map kernels of rpe_kernel_attention (row max, phi, and dL/dx with the shift's gradient) against
the float64 oracle and autograd, under the interpreter when there is no GPU."""

import hypothesis.strategies as st
import numpy as np
import torch
from hypothesis import given, settings
from strategies import layouts, make_tensor, seeds
from tolerance import assert_close

from accelkit.kernels.fft_rpe import cpu, reference
from accelkit.kernels.fft_rpe.triton_kernels import prf_backward, prf_forward, prf_row_max

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
dtypes = st.sampled_from((torch.float32, torch.float64))


def _case(rows, d, m, dtype, seed, layout):
    x = make_tensor((rows, 3, d), dtype, seed=seed, layout=layout).to(DEVICE)
    w = make_tensor((m, d), dtype, seed=seed + 1, scale=1.0).to(DEVICE)
    return x, w


# Interpreter time grows with the blocks walked: rows and m stay a few blocks of 32, D up to 70 (BLOCK_D 128).
@settings(max_examples=8)
@given(rows=st.integers(1, 40), d=st.integers(1, 70), m=st.integers(1, 70), dtype=dtypes, layout=layouts, seed=seeds)
def test_row_max_and_features_match_oracle(rows, d, m, dtype, seed, layout):
    x, w = _case(rows, d, m, dtype, seed % 2**20, layout)
    top, arg = prf_row_max(x, w)
    logits = reference.feature_logits(x.double().cpu().numpy(), w.double().cpu().numpy())
    assert_close("row max", logits.max(-1), top)
    # The argmax must attain the max (ties between columns are allowed to pick either).
    picked = np.take_along_axis(logits, arg.cpu().numpy()[..., None], -1)[..., 0]
    assert_close("value at argmax", logits.max(-1), torch.from_numpy(picked).to(dtype))
    phi = prf_forward(x, w, top)
    want = np.exp(logits - logits.max(-1, keepdims=True)) / np.sqrt(m)
    assert_close("phi", want, phi)


@settings(max_examples=8)
@given(
    rows=st.integers(1, 40), d=st.integers(1, 70), m=st.integers(1, 70), dtype=dtypes, layout=layouts, seed=seeds,
    is_query=st.booleans(),
)  # fmt: skip
def test_backward_matches_autograd(rows, d, m, dtype, seed, layout, is_query):
    x, w = _case(rows, d, m, dtype, seed % 2**20, layout)
    x64, w64 = x.double().cpu(), w.double().cpu()
    leaf = x64.clone().requires_grad_()
    logits = cpu.logits(leaf, w64)
    # Queries: each row's own max (so the shift is differentiated); keys: one max over the rows of each column
    # of x's middle axis, like one (batch, head) of the op.
    shift = logits.max(-1).values if is_query else logits.amax((0, 2))[None, :].expand(rows, 3)
    phi = torch.exp(logits - shift[..., None]) / m**0.5
    grad_phi = make_tensor(phi.shape, torch.float64, seed=seed % 2**20 + 2)
    phi.backward(grad_phi)
    top, arg = prf_row_max(x, w)
    extra = None
    if not is_query:
        top, t_star = top.max(0)
        top = top[None].expand(rows, 3)
        total = (grad_phi * phi.detach()).sum((0, 2)).to(dtype).to(DEVICE)
        extra = torch.zeros((rows, 3), dtype=dtype, device=DEVICE).scatter_(0, t_star[None], -total[None])
    dx = prf_backward(x, w, top, arg, extra, grad_phi.to(dtype).to(DEVICE))
    # The float32 gradient sums m products of magnitude |g phi w|: compare against the float64 one in that dtype.
    assert_close("dx", leaf.grad, dx)
