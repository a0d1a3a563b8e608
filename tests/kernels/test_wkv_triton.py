"""WKV's Triton kernels against the float64 oracle (the interpreter without a GPU: tiny shapes), and the op on a
CUDA device (cuda-marked)."""

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from strategies import FLOAT_DTYPES, seeds, sizes
from tolerance import assert_close

from accelkit import ops
from accelkit.kernels.wkv import reference
from accelkit.kernels.wkv.triton_kernels import BLOCK_C, wkv_bwd, wkv_fwd

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(batch, steps, channels, dtype, seed, device=DEVICE):
    gen = torch.Generator().manual_seed(seed)
    w = -torch.randn(channels, generator=gen, dtype=torch.float64).exp()
    u = torch.randn(channels, generator=gen, dtype=torch.float64)
    k, v, gy = (torch.randn((batch, steps, channels), generator=gen, dtype=torch.float64) * 2 for _ in range(3))
    return [x.to(dtype).to(device) for x in (w, u, k, v, gy)]


def _np(*xs):
    return [x.detach().double().cpu().numpy() for x in xs]


@settings(max_examples=6)
@given(
    batch=st.integers(0, 2),
    steps=st.integers(0, 5),
    channels=st.sampled_from((1, 7, BLOCK_C + 3)) | sizes(2 * BLOCK_C),
    dtype=st.sampled_from((torch.float32, torch.float64)),
    seed=seeds,
)
def test_kernels_match_oracle(batch, steps, channels, dtype, seed):
    w, u, k, v, gy = _inputs(batch, steps, channels, dtype, seed)
    y = wkv_fwd(w, u, k, v)
    assert y.dtype == dtype
    assert_close("wkv_fwd", reference.wkv(*_np(w, u, k, v)), y)
    for name, ref, got in zip(
        ("gw", "gu", "gk", "gv"), reference.wkv_grads(*_np(w, u, k, v, gy)), wkv_bwd(w, u, k, v, gy), strict=True
    ):
        assert_close(name, ref, got)


def test_launchers_reject_bad_operands():
    w, u, k, v, gy = _inputs(1, 2, 3, torch.float32, 0)
    with pytest.raises(ValueError, match="v must have dtype"):
        wkv_fwd(w, u, k, v.double())
    with pytest.raises(ValueError, match="k must be contiguous"):
        wkv_fwd(w, u, k.transpose(1, 2), v)
    with pytest.raises(ValueError, match="gy has shape"):
        wkv_bwd(w, u, k, v, gy[:, :1])
    with pytest.raises(ValueError, match="k must have dtype"):
        wkv_fwd(w, u, k.half(), v.half())


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_op_on_cuda_matches_oracle(dtype):
    w, u, k, v, gy = _inputs(3, 100, 2 * BLOCK_C + 5, dtype, 4, device="cuda")
    args = [x.requires_grad_() for x in (w, u, k, v)]
    y = ops.wkv(*args)
    assert_close("wkv", reference.wkv(*_np(w, u, k, v)), y)
    y.backward(gy)
    for name, x, g in zip("wukv", args, reference.wkv_grads(*_np(w, u, k, v, gy)), strict=True):
        assert_close(f"grad {name}", g, x.grad)
