"""Fuzz target for accelkit.ops.flash_attention.

A case draws a mostly consistent problem (dense [B, T, H, D] or packed with cu_seqlens) in any dtype, layout and
device (CPU or meta), with causal, window, softcap and scale, then breaks one thing at times (dtype, rank, head
dims, H_q not a multiple of H_kv, cu_seqlens dtype or values, wrongly typed knobs). A successful call must return
out shaped and typed like q (and a float32 LSE); small all-finite CPU cases must match the float64 oracle within
the tolerance table. Anything invalid may raise only ValueError or TypeError naming an argument.
"""

from __future__ import annotations

import hypothesis.strategies as st
import torch
from tolerance import assert_within_peer_error

from accelkit import ops
from accelkit.kernels.attention import reference as ref
from fuzz.core import Case, Target
from fuzz.values import FLOATS, LAYOUTS, TensorSpec, wrong_values

NAMES = ("q", "k", "v", "causal", "scale", "window", "softcap", "cu_seqlens_q", "cu_seqlens_k", "max_seqlen_q",
         "max_seqlen_k", "return_lse", "head dim", "H_q")  # fmt: skip
_CHECK_ELEMENTS = 2**14


def _maybe(draw, good, *bad):
    return draw(st.sampled_from(bad)) if bad and draw(st.integers(0, 7)) == 0 else good


def _spec(draw, dtype, shape, device) -> TensorSpec:
    return TensorSpec(dtype=dtype, shape=tuple(shape), layout=draw(st.sampled_from(LAYOUTS)), device=device,
                      specials=draw(st.integers(0, 7)) == 0, seed=draw(st.integers(0, 2**16)))  # fmt: skip


@st.composite
def _cases(draw) -> Case:
    dtype = _maybe(draw, draw(st.sampled_from(FLOATS)), torch.int32, torch.complex64)
    device = draw(st.sampled_from(("cpu", "cpu", "cpu", "meta")))
    varlen = draw(st.booleans())
    b = draw(st.sampled_from((0, 1, 2, 3)))
    h_kv = draw(st.sampled_from((1, 2)))
    h_q = h_kv * draw(st.sampled_from((1, 2, 3))) + _maybe(draw, 0, 1)
    d = _maybe(draw, draw(st.sampled_from((16, 20, 64, 96))), 8, 257, 0)
    lens_q = [draw(st.sampled_from((0, 1, 5, 33))) for _ in range(max(b, 1))]
    lens_k = [draw(st.sampled_from((0, 1, 7, 40))) for _ in range(max(b, 1))]
    if varlen:
        q_shape, k_shape = (sum(lens_q), h_q, d), (sum(lens_k), h_kv, d)
    else:
        q_shape, k_shape = (b, lens_q[0], h_q, d), (b, lens_k[0], h_kv, d)
    q_shape = _maybe(draw, q_shape, q_shape[1:], (1, *q_shape))
    v_shape = _maybe(draw, k_shape, (*k_shape[:-1], d + 1))
    kv_dtype = _maybe(draw, dtype, torch.float64, torch.float16)
    q_spec, k_spec, v_spec = (_spec(draw, t, s, device) for t, s in ((dtype, q_shape), (kv_dtype, k_shape),
                                                                         (kv_dtype, v_shape)))  # fmt: skip
    kwargs = {}
    if draw(st.booleans()):
        kwargs["causal"] = draw(st.one_of(st.booleans(), wrong_values()))
    if draw(st.booleans()):
        kwargs["window"] = draw(st.one_of(st.sampled_from(((-1, -1), (3, 0), (0, 5), (-2, 1))), wrong_values()))
    if draw(st.integers(0, 3)) == 0:
        kwargs["softcap"] = draw(st.one_of(st.sampled_from((0.0, 2.0, -1.0)), wrong_values()))
    if draw(st.integers(0, 3)) == 0:
        kwargs["scale"] = draw(st.one_of(st.sampled_from((None, 0.5, 1e-3)), wrong_values()))
    cu_q = cu_k = None
    if varlen:
        cu_q = [0, *torch.tensor(lens_q).cumsum(0).tolist()]
        cu_k = [0, *torch.tensor(lens_k).cumsum(0).tolist()]
        cu_q = _maybe(draw, cu_q, cu_q[::-1], [*cu_q[:-1], cu_q[-1] + 1])
    cu_dtype = _maybe(draw, torch.int32, torch.int64, torch.float32)
    return_lse = draw(st.booleans())

    def call(_):
        q, k, v = q_spec.build(), k_spec.build(), v_spec.build()
        extra = {}
        if varlen:
            extra = {"cu_seqlens_q": torch.tensor(cu_q, dtype=cu_dtype, device=device),
                     "cu_seqlens_k": torch.tensor(cu_k, dtype=cu_dtype, device=device)}  # fmt: skip
        return q, k, v, extra, ops.flash_attention(q, k, v, **kwargs, **extra, return_lse=return_lse)

    def check(out) -> None:
        q, k, v, extra, result = out
        out_t, lse = result if return_lse else (result, None)
        assert out_t.shape == q.shape and out_t.dtype == q.dtype and out_t.device == q.device
        if lse is not None:
            want = (q.shape[1], q.shape[0]) if varlen else (q.shape[0], q.shape[2], q.shape[1])
            assert lse.shape == want and lse.dtype == torch.float32, f"lse {lse.dtype}{list(lse.shape)}"
        small = q.device.type == "cpu" and q.numel() + k.numel() <= _CHECK_ELEMENTS
        if small and all(bool(torch.isfinite(x.double()).all()) for x in (q, k, v)):
            cu = {key: val.numpy() for key, val in extra.items()}
            knobs = {key: kwargs[key] for key in ("causal", "window", "softcap", "scale") if key in kwargs}
            want, _ = ref.attention(q.double().numpy(), k.double().numpy(), v.double().numpy(), **knobs, **cu)
            # Values of 2 x randn at any scale make a softmax peaked enough that a plain attention in the same
            # precision misses the flat table too, so the bar is FlashAttention's: within 2x of that attention.
            peer = _same_precision(q, k, v, knobs, cu)
            assert_within_peer_error("flash_attention", want, out_t, peer, dtype=q.dtype)

    describe = (f"flash_attention(q={q_spec!r}, k={k_spec!r}, v={v_spec!r}, cu_q={cu_q!r}, cu_k={cu_k!r} "
                f"{cu_dtype}, return_lse={return_lse}, {kwargs!r})")  # fmt: skip
    return Case(describe, call, check, names=NAMES)


def _same_precision(q, k, v, knobs: dict, cu: dict) -> torch.Tensor:
    """Plain softmax attention in q's dtype (no upcast), one sequence at a time, masked as the oracle masks."""
    scale = knobs.get("scale") or q.shape[-1] ** -0.5
    if cu:
        bq, bk = cu["cu_seqlens_q"], cu["cu_seqlens_k"]
        seqs = [(q[bq[i] : bq[i + 1]], k[bk[i] : bk[i + 1]], v[bk[i] : bk[i + 1]]) for i in range(len(bq) - 1)]
    else:
        seqs = list(zip(q, k, v, strict=True))
    outs = []
    for qs, ks, vs in seqs:
        group = qs.shape[1] // max(ks.shape[1], 1)
        ks, vs = (x.repeat_interleave(group, dim=1) for x in (ks, vs))
        s = torch.einsum("thd,shd->hts", qs, ks) * scale
        if knobs.get("softcap"):
            s = knobs["softcap"] * torch.tanh(s / knobs["softcap"])
        mask = ref.attention_mask(qs.shape[0], ks.shape[0], causal=knobs.get("causal", False),
                                  window=knobs.get("window", (-1, -1)))  # fmt: skip
        s = s.masked_fill(~torch.from_numpy(mask), float("-inf"))
        outs.append(torch.einsum("hts,shd->thd", torch.softmax(s, dim=-1).nan_to_num(0.0), vs))
    if not outs:
        return torch.empty_like(q)
    return torch.cat(outs) if cu else torch.stack(outs)


TARGETS = [Target("ops.flash_attention", _cases())]
