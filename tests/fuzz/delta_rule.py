"""Fuzz targets for accelkit.ops.delta_rule and accelkit.nn.DeltaNet.

An op case draws a mostly consistent problem (dense [B, T, H, K] / [B, T, H, V], or packed with cu_seqlens) in any
dtype, layout and device (CPU or meta), with or without g, initial_state, scale, l2 norm, chunk size and mode, then
breaks one thing at times (dtype, rank, T or H of v, beta's shape, head dims over 256, cu_seqlens dtype or values,
B != 1 with cu_seqlens, the initial state's shape, wrongly typed knobs). A successful call returns o shaped like v in
q's dtype and a float32 [N, H, K, V] final state; small all-finite CPU cases with l2-normalised keys, beta in [0, 1]
and g <= 0 must match the float64 oracle at least as well as a plain token loop in the input's dtype (the
FlashAttention criterion, tests/tolerance.py). Anything invalid may raise only ValueError or TypeError naming an
argument.
"""

from __future__ import annotations

import hypothesis.strategies as st
import torch
from tolerance import assert_within_peer_error

from accelkit import ops
from accelkit.kernels.delta_rule import reference as ref
from fuzz.core import Case, Target
from fuzz.values import FLOATS, LAYOUTS, TensorSpec, wrong_values

NAMES = ("q", "k", "v", "beta", "g", "scale", "initial_state", "output_final_state", "cu_seqlens", "chunk_size",
         "use_qk_l2norm", "mode", "K", "V", "B must be 1", "T, H")  # fmt: skip
_CHECK_ELEMENTS = 2**12


def _maybe(draw, good, *bad):
    return draw(st.sampled_from(bad)) if bad and draw(st.integers(0, 7)) == 0 else good


def _spec(draw, dtype, shape, device) -> TensorSpec:
    return TensorSpec(dtype=dtype, shape=tuple(shape), layout=draw(st.sampled_from(LAYOUTS)), device=device,
                      specials=draw(st.integers(0, 9)) == 0, seed=draw(st.integers(0, 2**16)))  # fmt: skip


def _peer(q, k, v, beta, g, h0, scale, cu):
    """The token recurrence in the input's own dtype (no upcast), one sequence at a time."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    n = q.shape[0] if cu is None else len(cu) - 1
    o = torch.zeros_like(v)
    for i in range(n):
        row, sl = (i, slice(None)) if cu is None else (0, slice(int(cu[i]), int(cu[i + 1])))
        state = torch.zeros(q.shape[2], q.shape[3], v.shape[3], dtype=q.dtype) if h0 is None else h0[i].to(q.dtype)
        for t in range(*sl.indices(q.shape[1])):
            if g is not None:
                state = torch.exp(g[row, t])[:, None, None] * state
            kt = k[row, t]
            err = v[row, t] - torch.einsum("hk,hkv->hv", kt, state)
            state = state + beta[row, t][:, None, None] * kt[:, :, None] * err[:, None, :]
            o[row, t] = torch.einsum("hk,hkv->hv", q[row, t] * scale, state)
    return o


@st.composite
def _cases(draw) -> Case:
    dtype = _maybe(draw, draw(st.sampled_from(FLOATS)), torch.int32, torch.complex64)
    device = draw(st.sampled_from(("cpu", "cpu", "cpu", "meta")))
    varlen = draw(st.booleans())
    b = 1 if varlen else draw(st.sampled_from((0, 1, 2)))
    b = _maybe(draw, b, 2) if varlen else b
    lens = [draw(st.sampled_from((0, 1, 5, 17, 33))) for _ in range(draw(st.integers(1, 3)))]
    t = sum(lens) if varlen else lens[0]
    h = draw(st.sampled_from((0, 1, 2)))
    kd = _maybe(draw, draw(st.sampled_from((1, 16, 20, 64))), 257, 0)
    vd = _maybe(draw, draw(st.sampled_from((1, 16, 24))), 300)
    q_shape = _maybe(draw, (b, t, h, kd), (t, h, kd), (b, t + 1, h, kd))
    v_shape = _maybe(draw, (b, t, h, vd), (b, t + 1, h, vd), (b, t, h + 1, vd))
    beta_shape = _maybe(draw, (b, t, h), (b, t), (b, t, h, 1))
    q_spec, k_spec = _spec(draw, dtype, q_shape, device), _spec(draw, dtype, (b, t, h, kd), device)
    v_spec = _spec(draw, _maybe(draw, dtype, torch.float64), v_shape, device)
    beta_spec = _spec(draw, _maybe(draw, dtype if dtype in FLOATS[:1] + FLOATS[2:] else torch.float32, torch.int64),
                      beta_shape, device)  # fmt: skip
    n = len(lens) if varlen else b
    g_spec = _spec(draw, torch.float32, beta_shape, device) if draw(st.booleans()) else None
    h0_spec = None
    if draw(st.booleans()):
        h0_shape = _maybe(draw, (n, h, kd, vd), (n + 1, h, kd, vd), (n, h, vd, kd))
        h0_spec = _spec(draw, _maybe(draw, torch.float32, torch.float16), h0_shape, device)
    kwargs = {}
    for key, good, bad in (("scale", st.sampled_from((None, 0.5, 2.0)), wrong_values()),
                           ("chunk_size", st.sampled_from((16, 32, 64)), st.sampled_from((0, 8, 128, 64.0))),
                           ("mode", st.sampled_from(("chunk", "recurrent")), st.sampled_from(("fused", None))),
                           ("use_qk_l2norm", st.booleans(), wrong_values()),
                           ("output_final_state", st.booleans(), wrong_values())):  # fmt: skip
        if draw(st.booleans()):
            kwargs[key] = draw(good) if draw(st.integers(0, 7)) else draw(bad)
    cu = None
    if varlen:
        cu = [0, *torch.tensor(lens).cumsum(0).tolist()]
        cu = _maybe(draw, cu, cu[::-1], [*cu[:-1], cu[-1] + 1])
    cu_dtype = _maybe(draw, torch.int64, torch.int32, torch.float32)

    def call(_):
        q, k, v, beta = (s.build() for s in (q_spec, k_spec, v_spec, beta_spec))
        g = None if g_spec is None else -g_spec.build().abs()
        h0 = None if h0_spec is None else h0_spec.build()
        cu_t = None if cu is None else torch.tensor(cu, dtype=cu_dtype, device=device)
        result = ops.delta_rule(q, k, v, beta, g=g, initial_state=h0, cu_seqlens=cu_t, **kwargs)
        return (q, k, v, beta, g, h0), result

    def check(out) -> None:
        (q, k, v, beta, g, h0), (o, state) = out
        assert o.shape == v.shape and o.dtype == q.dtype and o.device == q.device, f"o {o.dtype}{list(o.shape)}"
        if kwargs.get("output_final_state"):
            assert state.shape == (n, h, kd, vd) and state.dtype == torch.float32, f"state {list(state.shape)}"
        else:
            assert state is None
        small = q.device.type == "cpu" and q.numel() + v.numel() <= _CHECK_ELEMENTS and kwargs.get("use_qk_l2norm")
        tensors = [x for x in (q, k, v, beta, g, h0) if x is not None]
        if small and all(bool(torch.isfinite(x.double()).all()) for x in tensors) and bool((beta >= 0).all()):
            beta_u = beta.clamp(max=1.0)
            if not torch.equal(beta_u, beta):
                return
            args = [None if x is None else x.double().numpy() for x in (q, k, v, beta, g, h0)]
            want, _ = ref.recurrence(*args[:4], g=args[4], scale=kwargs.get("scale"), initial_state=args[5],
                                     cu_seqlens=cu, use_qk_l2norm=True)  # fmt: skip
            from accelkit.kernels.delta_rule.cpu import l2norm

            qn, kn = l2norm(q.float()).to(q.dtype), l2norm(k.float()).to(q.dtype)
            peer = _peer(qn, kn, v, beta, g, h0, kwargs.get("scale"), cu)
            assert_within_peer_error("delta_rule", want, o, peer, dtype=q.dtype)

    describe = (f"delta_rule(q={q_spec!r}, k={k_spec!r}, v={v_spec!r}, beta={beta_spec!r}, g={g_spec!r}, "
                f"h0={h0_spec!r}, cu={cu!r} {cu_dtype}, {kwargs!r})")  # fmt: skip
    return Case(describe, call, check, names=NAMES)


@st.composite
def _layer_cases(draw) -> Case:
    """accelkit.nn.DeltaNet: drawn (sometimes wrong) constructor arguments, then a forward and backward on [B, T, D]."""
    from accelkit.nn import DeltaNet

    hidden = _maybe(draw, draw(st.sampled_from((8, 16, 32))), 0, 8.0)
    kwargs = {}
    for key, good, bad in (("head_dim", st.sampled_from((None, 4, 16)), st.sampled_from((0, 300, "4"))),
                           ("value_dim", st.sampled_from((None, 8)), st.sampled_from((-1, 257))),
                           ("use_short_conv", st.booleans(), wrong_values()),
                           ("use_gate", st.booleans(), wrong_values()),
                           ("allow_neg_eigval", st.booleans(), wrong_values()),
                           ("mode", st.sampled_from(("chunk", "recurrent")), st.sampled_from(("x", None))),
                           ("chunk_size", st.sampled_from((16, 64)), st.sampled_from((0, 48)))):  # fmt: skip
        if draw(st.booleans()):
            kwargs[key] = draw(good) if draw(st.integers(0, 7)) else draw(bad)
    heads = _maybe(draw, draw(st.sampled_from((1, 2))), 0)
    b, t = draw(st.sampled_from((0, 1, 2))), draw(st.sampled_from((0, 1, 9, 20)))
    x_dim = hidden if isinstance(hidden, int) else 8
    x_spec = _spec(draw, _maybe(draw, torch.float32, torch.float64, torch.int64), (b, t, _maybe(draw, x_dim, 3)),
                   "cpu")  # fmt: skip
    x_spec = TensorSpec(**{**x_spec.__dict__, "specials": False, "layout": "contiguous"})

    def call(_):
        layer = DeltaNet(hidden, heads, **kwargs)
        x = x_spec.build().requires_grad_(x_spec.dtype.is_floating_point)
        y = layer(x)
        if x.requires_grad:
            y.sum().backward()
        return x, y

    def check(out) -> None:
        x, y = out
        assert y.shape == x.shape and y.dtype == x.dtype, f"y {y.dtype}{list(y.shape)}"
        assert bool(torch.isfinite(y).all()), "non-finite output from finite input"
        if x.numel():
            assert x.grad is not None and x.grad.shape == x.shape

    return Case(f"DeltaNet({hidden!r}, {heads!r}, {kwargs!r})({x_spec!r})", call, check,
                names=("hidden_size", "num_heads", "head_dim", "value_dim", "use_short_conv", "use_gate",
                       "allow_neg_eigval", "mode", "chunk_size", "conv_size", "x"))  # fmt: skip


TARGETS = [Target("ops.delta_rule", _cases()), Target("nn.DeltaNet", _layer_cases(), scale=0.2)]
