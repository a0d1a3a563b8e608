"""flash_attention against the float64 oracle (kernels/attention/reference.py): the Triton kernels through their
launchers (under the interpreter without a GPU), the public op's CPU route with autograd, opcheck, torch.compile,
bad input, and the op on CUDA (cuda-marked).

fp32 is held to the fp32 row of the tolerance table; fp16 and bf16 to FlashAttention's criterion (tests/tolerance.py
assert_within_peer_error): at most 2x (forward) or 3x (backward) the error of a plain PyTorch attention computed in
the same dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from strategies import make_tensor, seeds, sizes
from tolerance import assert_close, assert_within_peer_error

from accelkit import ops
from accelkit.kernels._common import aot
from accelkit.kernels.attention import reference
from accelkit.kernels.flash_attention.triton_kernels import flash_attn_bwd, flash_attn_fwd

HEAD_DIMS = (16, 32, 64, 96, 128, 160, 256)
# D = 20 leaves strides that are not multiples of 8, so the launcher passes them in units of 1 (UNIT = 1), not 8.
TRITON_HEAD_DIMS = (*HEAD_DIMS, 20)
WINDOWS = ((-1, -1), (-1, -1), (0, 0), (3, -1), (5, 2), (-1, 4), (17, 0))
HALF = (torch.float16, torch.bfloat16)
cuda = pytest.mark.cuda


@dataclass(frozen=True)
class Case:
    lens_q: tuple[int, ...]  # one length per sequence; dense cases have B equal lengths
    lens_k: tuple[int, ...]
    varlen: bool
    h_kv: int
    group: int
    d: int
    causal: bool
    window: tuple[int, int]
    softcap: float
    scale: float | None
    layout: str
    seed: int

    @property
    def knobs(self) -> dict:
        return {"causal": self.causal, "window": self.window, "softcap": self.softcap, "scale": self.scale}

    def cu(self, lens: tuple[int, ...]) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)


@st.composite
def cases(draw, *, max_t: int = 70, head_dims=HEAD_DIMS, varlen=None) -> Case:
    varlen = draw(st.booleans()) if varlen is None else varlen
    b = draw(st.integers(1, 3))
    if varlen:
        lens_q = tuple(draw(st.lists(sizes(40, min_value=0), min_size=b, max_size=b)))
        lens_k = tuple(draw(st.lists(sizes(40, min_value=0), min_size=b, max_size=b)))
    else:
        lens_q, lens_k = (draw(sizes(max_t)),) * b, (draw(sizes(max_t)),) * b
    d = draw(st.sampled_from(head_dims))
    # An explicit scale is drawn too, half the default: a larger one (0.3 at D = 256 is 4.8x the default) makes the
    # softmax so peaked that fp32 rounding of the scores alone, in any implementation, exceeds the fp32 tolerance.
    scale = draw(st.sampled_from((None, 0.5 * d**-0.5)))
    return Case(
        lens_q, lens_k, varlen, draw(st.integers(1, 2)), draw(st.sampled_from((1, 2, 3))), d, draw(st.booleans()),
        draw(st.sampled_from(WINDOWS)), draw(st.sampled_from((0.0, 0.0, 1.5, 30.0))), scale,
        draw(st.sampled_from(("contiguous", "heads_first", "strided"))), draw(seeds),
    )  # fmt: skip


def _tensor(shape: tuple[int, ...], dtype, seed: int, layout: str, device="cpu") -> torch.Tensor:
    """[..., T, H, D] in `layout`: contiguous, heads_first (a [.., H, T, D] tensor seen through a transpose, the
    usual non-contiguous attention input), or strided along D (every other element)."""
    if layout == "heads_first":
        swapped = (*shape[:-3], shape[-2], shape[-3], shape[-1])
        return make_tensor(swapped, dtype, seed=seed, scale=1.0).transpose(-2, -3).to(device)
    x = make_tensor(shape, dtype, seed=seed, layout=layout, scale=1.0)
    return x if device == "cpu" else x.to(device)


def _inputs(case: Case, dtype, device="cpu"):
    h_q = case.h_kv * case.group
    if case.varlen:
        lead_q, lead_k = (sum(case.lens_q),), (sum(case.lens_k),)
        cu_q, cu_k = (torch.from_numpy(case.cu(x)).to(device) for x in (case.lens_q, case.lens_k))
        extra = {"cu_seqlens_q": cu_q, "cu_seqlens_k": cu_k}
    else:
        lead_q, lead_k = (len(case.lens_q), case.lens_q[0]), (len(case.lens_k), case.lens_k[0])
        extra = {}
    q = _tensor((*lead_q, h_q, case.d), dtype, case.seed, case.layout, device)
    k = _tensor((*lead_k, case.h_kv, case.d), dtype, case.seed + 1, case.layout, device)
    v = _tensor((*lead_k, case.h_kv, case.d), dtype, case.seed + 2, case.layout, device)
    do = make_tensor((*lead_q, h_q, case.d), dtype, seed=case.seed + 3, scale=1.0).to(device)
    return q, k, v, do, extra


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def _oracle(case: Case, q, k, v, do):
    cu = {}
    if case.varlen:
        cu = {"cu_seqlens_q": case.cu(case.lens_q), "cu_seqlens_k": case.cu(case.lens_k)}
    o, lse = reference.attention(_np(q), _np(k), _np(v), **case.knobs, **cu)
    grads = reference.attention_bwd(_np(q), _np(k), _np(v), o, lse, _np(do), **case.knobs, **cu)
    return (o, lse, *grads)


def _same_precision(case: Case, q, k, v, do):
    """Plain PyTorch attention in the inputs' dtype (FlashAttention's `attention_ref` without upcasting): the
    scores, softmax and products in 16 bits, gradients by autograd. Per sequence for varlen."""
    q, k, v = (x.detach().clone().requires_grad_() for x in (q, k, v))
    scale = case.d**-0.5 if case.scale is None else case.scale
    outs, lses = [], []
    bounds_q, bounds_k = case.cu(case.lens_q), case.cu(case.lens_k)
    for i in range(len(case.lens_q)):
        if case.varlen:
            qs, ks, vs = (
                q[bounds_q[i] : bounds_q[i + 1]],
                k[bounds_k[i] : bounds_k[i + 1]],
                v[bounds_k[i] : bounds_k[i + 1]],
            )
        else:
            qs, ks, vs = q[i], k[i], v[i]
        ks, vs = (x.repeat_interleave(case.group, dim=1) for x in (ks, vs))
        s = torch.einsum("thd,shd->hts", qs, ks) * scale
        if case.softcap > 0:
            s = case.softcap * torch.tanh(s / case.softcap)
        mask = reference.attention_mask(qs.shape[0], ks.shape[0], causal=case.causal, window=case.window)
        s = s.masked_fill(~torch.from_numpy(mask).to(s.device), float("-inf"))
        lses.append(torch.logsumexp(s.float(), dim=-1))
        p = torch.softmax(s, dim=-1).nan_to_num(0.0)
        outs.append(torch.einsum("hts,shd->thd", p, vs))
    out = torch.cat(outs) if case.varlen else torch.stack(outs)
    lse = torch.cat(lses, dim=1) if case.varlen else torch.stack(lses)
    out.backward(do)
    return (out.detach(), lse, q.grad, k.grad, v.grad)


def _check(case: Case, results, q, k, v, do, *, dtype) -> None:
    expected = _oracle(case, q, k, v, do)
    names = ("out", "lse", "dq", "dk", "dv")
    lse_ref, lse = expected[1], results[1].detach().cpu().numpy()
    assert np.array_equal(np.isneginf(lse_ref), np.isneginf(lse)), "rows with no key must have LSE -inf, only they"
    finite = np.isfinite(lse_ref)
    assert results[1].dtype == torch.float32 and results[0].dtype == q.dtype
    if dtype == torch.float32:
        for name, ref, got in zip(names, expected, results, strict=True):
            if name == "lse":
                assert_close(name, ref[finite], lse[finite], dtype=torch.float32)
            else:
                assert_close(name, ref, got)
        return
    peer = _same_precision(case, q, k, v, do)
    for i, (name, ref, got) in enumerate(zip(names, expected, results, strict=True)):
        factor = 2.0 if i < 2 else 3.0
        if name == "lse":
            ref, got, peer_x = ref[finite], lse[finite], peer[1].detach().cpu().numpy()[finite]
        else:
            peer_x = peer[i]
        assert_within_peer_error(name, ref, got, peer_x, dtype=dtype, factor=factor)


def _run_triton(case: Case, dtype, blocks=(None, None), device="cpu"):
    q, k, v, do, extra = _inputs(case, dtype, device)
    out, lse = flash_attn_fwd(q, k, v, **case.knobs, **extra, blocks=blocks)
    grads = flash_attn_bwd(do, q, k, v, out, lse, **case.knobs, **extra, blocks=blocks)
    return (out, lse, *grads), (q, k, v, do)


def _run_op(case: Case, dtype, device="cpu"):
    q, k, v, do, extra = _inputs(case, dtype, device)
    leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    out, lse = ops.flash_attention(*leaves, **case.knobs, **extra, return_lse=True)
    assert out.shape == q.shape and out.is_contiguous()
    out.backward(do)
    return (out, lse, *(x.grad for x in leaves)), (q, k, v, do)


# --- Triton kernels through the launcher (interpreter without a GPU) -----------------------------------------------
@settings(max_examples=30)
@given(case=cases(head_dims=TRITON_HEAD_DIMS), blocks=st.sampled_from(((16, 16), (32, 16), (16, 32), (None, None))))
def test_triton_fp32_matches_oracle(case, blocks):
    results, inputs = _run_triton(case, torch.float32, blocks)
    _check(case, results, *inputs, dtype=torch.float32)


@settings(max_examples=12)
@given(case=cases(max_t=40, head_dims=(16, 20, 64, 96)))
def test_triton_fp16_within_flash_criterion(case):
    # fp16 only: Triton 3.9's interpreter keeps bfloat16 as raw uint16 words, so a bf16 tl.dot multiplies bit
    # patterns (outputs near 1e9); bf16 runs in the cuda-marked tests below and through the CPU route.
    results, inputs = _run_triton(case, torch.float16, (16, 16))
    _check(case, results, *inputs, dtype=torch.float16)


def test_triton_lse_gradient():
    # d lse_i / d s_ij = P_ij: the launcher folds dLSE into delta. Checked against float64 autograd of the oracle
    # written in torch (logsumexp of the masked scores) with causal, window and softcap on.
    case = Case((19,), (23,), False, 2, 2, 24, True, (6, -1), 4.0, None, "contiguous", 5)
    q, k, v, do, _ = _inputs(case, torch.float32)
    dlse = make_tensor((1, 4, 19), torch.float32, seed=9)
    out, lse = flash_attn_fwd(q, k, v, **case.knobs, blocks=(16, 16))
    grads = flash_attn_bwd(do, q, k, v, out, lse, dlse=dlse, **case.knobs, blocks=(16, 16))
    q64, k64, v64 = (x.double().requires_grad_() for x in (q, k, v))
    s = torch.einsum("bthd,bshd->bhts", q64, k64.repeat_interleave(2, dim=2)) * 24**-0.5
    s = 4.0 * torch.tanh(s / 4.0)
    s = s.masked_fill(~torch.from_numpy(reference.attention_mask(19, 23, causal=True, window=(6, -1))), float("-inf"))
    o64 = torch.einsum("bhts,bshd->bthd", torch.softmax(s, -1), v64.repeat_interleave(2, dim=2))
    ((o64 * do.double()).sum() + (torch.logsumexp(s, -1) * dlse.double()).sum()).backward()
    for name, ref, got in zip(("dq", "dk", "dv"), (q64.grad, k64.grad, v64.grad), grads, strict=True):
        assert_close(name, ref, got)


@pytest.mark.parametrize("backend", ["triton", "op"])
def test_empty_rows_give_zero_and_minus_inf(backend):
    # T_q > T_k causal: the first T_q - T_k queries see nothing; a window (0, 0) with T_k = 0 in a varlen batch and a
    # zero-length query sequence too. No NaN anywhere, forward or backward.
    dense = Case((9,), (4,), False, 1, 2, 16, True, (-1, -1), 0.0, None, "contiguous", 1)
    packed = Case((5, 0, 3), (0, 4, 6), True, 1, 1, 32, False, (0, 0), 0.0, None, "contiguous", 2)
    for case in (dense, packed):
        run = _run_triton if backend == "triton" else _run_op
        results, inputs = run(case, torch.float32)
        for x in results:
            assert not torch.isnan(x).any()
        _check(case, results, *inputs, dtype=torch.float32)
    assert torch.isneginf(results[1][:, :5]).all() and (results[0][:5] == 0).all()


def test_aot_specs_cover_dtypes_and_head_dims():
    ids = {s.id for s in aot.discover()}
    kernels = ("flash_fwd_kernel", "flash_bwd_preprocess_kernel", "flash_bwd_dkdv_kernel", "flash_bwd_dq_kernel")
    for dtype in ("fp16", "bf16"):
        for d in (64, 128, 256):
            for kernel in kernels:
                assert f"flash_attention/{kernel}[{dtype},d{d}]" in ids


# --- The public op on the CPU ----------------------------------------------------------------------------------------
def test_op_cpu_blocked_path_outputs_and_gradients_are_contiguous():
    # A hypothesis find: with softcap (the blocked path) and one query head per KV head, the output was a view.
    torch.manual_seed(0)
    leaves = [torch.randn(1, 2, 2, 16, requires_grad=True) for _ in range(3)]
    out = ops.flash_attention(*leaves, softcap=1.5)
    out.sum().backward()
    assert out.is_contiguous() and all(x.grad.is_contiguous() for x in leaves)


@given(case=cases(max_t=100))
def test_op_cpu_fp32_matches_oracle(case):
    results, inputs = _run_op(case, torch.float32)
    _check(case, results, *inputs, dtype=torch.float32)


@settings(max_examples=10)
@given(case=cases(max_t=60, head_dims=(16, 64, 96, 160)), dtype=st.sampled_from(HALF))
def test_op_cpu_half_within_flash_criterion(case, dtype):
    results, inputs = _run_op(case, dtype)
    _check(case, results, *inputs, dtype=dtype)


@pytest.mark.parametrize(("t_q", "t_k"), [(300, 300), (200, 1100), (700, 150)])
@pytest.mark.parametrize("window", [(-1, -1), (-1, 0), (40, 0), (100, 30)])
def test_op_cpu_long_sequences_cross_the_blocks(t_q, t_k, window):
    # Longer than the CPU path's 128 x 512 tiles, for both its fused and its blocked routes.
    case = Case((t_q,), (t_k,), False, 1, 2, 32, False, window, 0.0, None, "heads_first", 3)
    results, inputs = _run_op(case, torch.float32)
    _check(case, results, *inputs, dtype=torch.float32)


def test_op_returns_out_alone_by_default():
    q = torch.randn(2, 5, 2, 16)
    out = ops.flash_attention(q, q, q, causal=True)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape


@pytest.mark.parametrize("varlen", [False, True])
def test_opcheck(varlen):
    case = Case((6, 9), (7, 7), varlen, 2, 2, 16, True, (4, -1), 0.0, None, "contiguous", 4)
    q, k, v, _, extra = _inputs(case, torch.float32)
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    cu_q, cu_k = extra.get("cu_seqlens_q"), extra.get("cu_seqlens_k")
    max_q, max_k = (15, 14) if varlen else (q.shape[1], k.shape[1])
    args = (q, k, v, cu_q, cu_k, max_q, max_k, 0.25, 4, 0, 0.0)
    torch.library.opcheck(torch.ops.accelkit.flash_attention.default, args)


@settings(max_examples=4)
@given(case=cases(max_t=20, head_dims=(16, 20)))
def test_opcheck_drawn_cases(case):
    q, k, v, _, extra = _inputs(case, torch.float32)
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    scale = case.d**-0.5 if case.scale is None else case.scale
    right = 0 if case.causal else case.window[1]
    max_q, max_k = (max(case.lens_q), max(case.lens_k)) if case.varlen else (q.shape[1], k.shape[1])
    args = (q, k, v, extra.get("cu_seqlens_q"), extra.get("cu_seqlens_k"), max_q, max_k, scale, case.window[0],
            right, case.softcap)  # fmt: skip
    torch.library.opcheck(torch.ops.accelkit.flash_attention.default, args)


def test_torch_compile_fullgraph_matches_eager():
    case = Case((33,), (40,), False, 2, 2, 32, True, (-1, -1), 0.0, None, "contiguous", 6)
    q, k, v, do, _ = _inputs(case, torch.float32)

    def f(q, k, v):
        out, lse = ops.flash_attention(q, k, v, causal=True, softcap=20.0, return_lse=True)
        return out * 2, lse

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    eager_leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    comp_leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    eager, comp = f(*eager_leaves), compiled(*comp_leaves)
    torch.testing.assert_close(comp[0], eager[0], rtol=0, atol=0)
    torch.testing.assert_close(comp[1], eager[1], rtol=0, atol=0)
    eager[0].backward(do)
    comp[0].backward(do)
    for a, b in zip(eager_leaves, comp_leaves, strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0)


def test_torch_compile_fullgraph_varlen():
    case = Case((5, 0, 12), (9, 3, 12), True, 1, 2, 16, True, (4, -1), 0.0, None, "contiguous", 8)
    q, k, v, do, extra = _inputs(case, torch.float32)
    leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    compiled = torch.compile(
        lambda q, k, v: ops.flash_attention(q, k, v, causal=True, window=(4, -1), **extra), fullgraph=True
    )
    out = compiled(*leaves)
    out.backward(do)
    _check(case, (out, ops.flash_attention(q, k, v, causal=True, window=(4, -1), **extra, return_lse=True)[1],
                  *(x.grad for x in leaves)), q, k, v, do, dtype=torch.float32)  # fmt: skip


# --- Bad input --------------------------------------------------------------------------------------------------
def _bad_calls():
    fa = ops.flash_attention
    q, k = torch.randn(1, 4, 4, 16), torch.randn(1, 5, 2, 16)
    packed = torch.randn(4, 2, 16)

    def dims(d):
        return torch.randn(1, 4, 2, d), torch.randn(1, 5, 2, d), torch.randn(1, 5, 2, d)

    def cu(*values):
        return torch.tensor(values, dtype=torch.int32)

    def varlen(cu_q, cu_k, **kw):
        return lambda: fa(packed, packed, packed, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, **kw)

    return [
        ("H_q", lambda: fa(torch.randn(1, 4, 3, 16), k, k)),
        ("head dim", lambda: fa(q, torch.randn(1, 5, 2, 32), torch.randn(1, 5, 2, 32))),
        ("head dim", lambda: fa(q, k, torch.randn(1, 5, 2, 32))),
        ("q.shape", lambda: fa(*dims(8))),
        ("q.shape", lambda: fa(*dims(264))),
        ("k has dtype", lambda: fa(q, k.double(), k)),
        ("q must have dtype", lambda: fa(q.double(), k.double(), k.double())),
        ("q must have dtype", lambda: fa(q.int(), k.int(), k.int())),
        ("batch", lambda: fa(q, torch.randn(2, 5, 2, 16), torch.randn(2, 5, 2, 16))),
        ("k and v", lambda: fa(q, k, torch.randn(1, 6, 2, 16))),
        ("q must be", lambda: fa(q[0], k[0], k[0])),
        ("window", lambda: fa(q, k, k, window=(-2, 0))),
        ("softcap", lambda: fa(q, k, k, softcap=-1.0)),
        ("cu_seqlens_k is missing", lambda: fa(packed, packed, packed, cu_seqlens_q=cu(0, 4))),
        ("cu_seqlens_q must be int32", varlen(cu(0, 4).long(), cu(0, 4))),
        ("cu_seqlens_q must start", varlen(cu(0, 3, 2, 4), cu(0, 1, 2, 4))),
        ("cu_seqlens_k must start", varlen(cu(0, 4), cu(0, 3))),
        ("sequences", varlen(cu(0, 4), cu(0, 2, 4))),
        ("max_seqlen_q", varlen(cu(0, 4), cu(0, 4), max_seqlen_q=3)),
        ("max_seqlen_q", lambda: fa(q, k, k, max_seqlen_q=4)),
        ("packed", lambda: fa(q, k, k, cu_seqlens_q=cu(0, 4), cu_seqlens_k=cu(0, 4))),
        ("is on meta", lambda: fa(q, k.to("meta"), k.to("meta"))),
    ]


@pytest.mark.parametrize("launcher", ["op", "triton"])
def test_bad_input_raises_value_error_naming_the_argument(launcher, monkeypatch):
    if launcher == "triton":
        # The launcher shares the op's checks: the same calls, routed to it.
        monkeypatch.setattr(ops, "flash_attention", lambda *a, return_lse=False, **kw: flash_attn_fwd(*a, **kw))
    for match, call in _bad_calls():
        with pytest.raises(ValueError, match=match):
            call()


def test_bad_python_types_raise_type_error():
    q = torch.randn(1, 4, 2, 16)
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        ops.flash_attention(q.numpy(), q, q)
    with pytest.raises(TypeError, match="causal"):
        ops.flash_attention(q, q, q, causal=1)
    with pytest.raises(TypeError, match="scale"):
        ops.flash_attention(q, q, q, scale="0.1")
    with pytest.raises(TypeError, match="window"):
        ops.flash_attention(q, q, q, window=3)


# --- CUDA (skipped without a device) ---------------------------------------------------------------------------------
@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("d", HEAD_DIMS)
@pytest.mark.parametrize("varlen", [False, True])
def test_op_cuda_matches_oracle(dtype, d, varlen):
    lens_q, lens_k = ((77, 1, 130), (90, 45, 130)) if varlen else ((200,) * 2, (333,) * 2)
    for causal, window, softcap in ((False, (-1, -1), 0.0), (True, (-1, -1), 0.0), (True, (64, -1), 30.0)):
        case = Case(lens_q, lens_k, varlen, 2, 3, d, causal, window, softcap, None, "heads_first", d)
        results, inputs = _run_op(case, dtype, device="cuda")
        _check(case, results, *inputs, dtype=dtype)


@cuda
@settings(max_examples=30)
@given(case=cases(max_t=300), dtype=st.sampled_from((torch.float16, torch.bfloat16, torch.float32)))
def test_op_cuda_hypothesis(case, dtype):
    results, inputs = _run_op(case, dtype, device="cuda")
    _check(case, results, *inputs, dtype=dtype)
