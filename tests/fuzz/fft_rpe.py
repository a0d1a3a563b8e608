"""Fuzz target for accelkit.ops.rpe_kernel_attention (kernelized attention with a relative-position bias).

A case draws a mostly consistent self-attention problem (q, k [B, T, H, D], v [B, T, H, D_v], rpe_bias [H, 2T - 1],
features [m, D] or a seed) in any dtype, layout and device (CPU or meta), then breaks one thing at times: a wrong
dtype, rank or length (rpe_bias of 2T, T_k != T_q, features with another D or no rows), a wrongly typed knob. A
successful call returns [B, T, H, D_v] in q's dtype; small all-finite CPU cases with normalised q, k must match the
float64 oracle (kernels/fft_rpe/reference.py) within the one tolerance table. Anything invalid may raise only
ValueError or TypeError naming an argument.
"""

from __future__ import annotations

import hypothesis.strategies as st
import torch

from accelkit import ops
from accelkit.kernels._common.tolerance import outside
from accelkit.kernels.fft_rpe import reference as ref
from fuzz.core import Case, Target
from fuzz.values import FLOATS, LAYOUTS, TensorSpec, wrong_values

NAMES = ("q", "k", "v", "rpe_bias", "features", "num_features", "causal", "normalize_qk", "eps", "seed", "method")
NAMES = (*NAMES, "T_k", "dim")
_CHECK_ELEMENTS = 2**12


def _maybe(draw, good, *bad):
    """Usually `good`; one draw in eight one of `bad`."""
    return draw(st.sampled_from(bad)) if bad and draw(st.integers(0, 7)) == 0 else good


def _spec(draw, dtype, shape, device) -> TensorSpec:
    return TensorSpec(
        dtype=dtype, shape=tuple(shape), layout=draw(st.sampled_from(LAYOUTS)), device=device,
        specials=draw(st.integers(0, 9)) == 0, seed=draw(st.integers(0, 2**16)),
    )  # fmt: skip


@st.composite
def _cases(draw) -> Case:
    dtype = _maybe(draw, draw(st.sampled_from(FLOATS)), torch.int32, torch.complex64)
    device = draw(st.sampled_from(("cpu", "cpu", "cpu", "meta")))
    b, t, h = (draw(st.sampled_from(s)) for s in ((0, 1, 2), (0, 1, 2, 5, 17, 64), (0, 1, 3)))
    d, dv = draw(st.sampled_from((1, 4, 16, 0))), draw(st.sampled_from((1, 3, 16)))
    q_shape = _maybe(draw, (b, t, h, d), (b, t, d), (1, b, t, h, d))
    k_shape = _maybe(draw, (b, t, h, d), (b, t + 1, h, d), (b, t, h, d + 1))
    v_shape = _maybe(draw, (b, t, h, dv), (b, t + 1, h, dv))
    bias_shape = _maybe(draw, (h, max(2 * t - 1, 0)), (h, 2 * t), (h + 1, max(2 * t - 1, 0)), (2 * t,))
    specs = [_spec(draw, dtype, s, device) for s in (q_shape, k_shape, v_shape)]
    specs.append(_spec(draw, _maybe(draw, dtype, torch.float64), bias_shape, device))
    kwargs = {}
    m = draw(st.sampled_from((1, 5, 32)))
    if draw(st.booleans()):
        kwargs["features"] = _spec(draw, torch.float32, _maybe(draw, (m, d), (m, d + 1), (0, d)), device)
    else:
        kwargs["num_features"] = _maybe(draw, m, 0, -3, 2.0)
        kwargs["seed"] = _maybe(draw, draw(st.integers(0, 9)), -1, "1")
    for knob, good in (("causal", st.booleans()), ("method", st.sampled_from(("auto", "fft", "direct")))):
        if draw(st.booleans()):
            kwargs[knob] = draw(st.one_of(good, wrong_values()) if draw(st.integers(0, 7)) == 0 else good)
    if draw(st.integers(0, 3)) == 0:
        kwargs["eps"] = draw(st.one_of(st.sampled_from((0.0, 1e-3)), wrong_values()))

    def call(_):
        q, k, v, bias = (s.build() for s in specs)
        built = {key: (val.build() if isinstance(val, TensorSpec) else val) for key, val in kwargs.items()}
        return q, k, v, bias, built, ops.rpe_kernel_attention(q, k, v, bias, **built)

    def check(out) -> None:
        q, k, v, bias, built, result = out
        assert isinstance(result, torch.Tensor), f"result is a {type(result).__name__}"
        want_shape = (*q.shape[:3], v.shape[-1])
        assert result.shape == want_shape and result.dtype == q.dtype and result.device == q.device, (
            f"output {result.dtype}{list(result.shape)} on {result.device}, expected {q.dtype}{list(want_shape)}"
        )
        small = q.device.type == "cpu" and q.numel() + v.numel() <= _CHECK_ELEMENTS
        # The oracle comparison needs every input finite, the drawn features included (NaN features give NaN on
        # both sides, which no tolerance accepts).
        finite = (
            small
            and "features" in built
            and all(bool(torch.isfinite(x.double()).all()) for x in (q, k, v, bias, built["features"]))
        )
        if finite:
            w = built["features"]
            if w.dtype != torch.float64 and q.dtype != torch.float64:
                w = w.float()
            want = ref.rpe_kernel_attention(
                *(x.double().numpy() for x in (q, k, v, bias, w.to(q.dtype if q.dtype == torch.float64 else w.dtype))),
                causal=bool(built.get("causal", False)), eps=float(built.get("eps", 1e-6)),
            )  # fmt: skip
            bad = outside(want, result.double().numpy(), q.dtype)
            assert not bad.any(), f"{int(bad.sum())} of {bad.size} outputs outside the tolerance of {q.dtype}"

    describe = (
        f"rpe_kernel_attention(q={specs[0]!r}, k={specs[1]!r}, v={specs[2]!r}, rpe_bias={specs[3]!r}, {kwargs!r})"
    )
    return Case(describe, call, check, names=NAMES)


@st.composite
def _layer_cases(draw) -> Case:
    """accelkit.nn.RPEKernelAttention: drawn (sometimes wrong) constructor arguments, then training calls (features
    redrawn every interval) and an eval call on a drawn input."""
    from accelkit.nn import RPEKernelAttention

    dims = st.sampled_from((1, 4, 6, 0))
    dim, heads = draw(st.one_of(dims, wrong_values())), draw(st.one_of(st.sampled_from((1, 2, 3)), wrong_values()))
    kwargs = {"max_len": _maybe(draw, draw(st.sampled_from((1, 5, 9))), 0, None, 2.0)}
    if draw(st.booleans()):
        kwargs["num_features"] = _maybe(draw, draw(st.sampled_from((1, 8))), 0, "8")
    if draw(st.booleans()):
        kwargs["feature_redraw_interval"] = _maybe(draw, draw(st.sampled_from((None, 0, 1, 2))), -1, 1.5)
    if draw(st.booleans()):
        kwargs["causal"] = _maybe(draw, draw(st.booleans()), 1, None)
    good_dim = dim if isinstance(dim, int) and not isinstance(dim, bool) and 0 <= dim <= 6 else 4
    x_shape = _maybe(draw, (draw(st.sampled_from((0, 1, 2))), draw(st.sampled_from((0, 1, 5, 9, 10))), good_dim),
                     (2, good_dim), (1, 3, good_dim + 1))  # fmt: skip
    x_spec = _spec(draw, _maybe(draw, torch.float32, torch.float64, torch.int32), x_shape, "cpu")

    def call(_):
        layer = RPEKernelAttention(dim, heads, **kwargs)
        x = x_spec.build()
        outs = [layer(x) for _ in range(3)]
        layer.eval()
        with torch.no_grad():
            outs.append(layer(x))
        return x, outs

    def check(out) -> None:
        x, outs = out
        for y in outs:
            assert isinstance(y, torch.Tensor) and y.shape == x.shape and y.dtype == x.dtype, f"output {y!r:.80}"

    names = ("dim", "heads", "max_len", "num_features", "feature_redraw_interval", "causal", "x")
    return Case(f"RPEKernelAttention({dim!r}, {heads!r}, {kwargs!r})({x_spec!r})", call, check, names=names)


TARGETS = [Target("ops.rpe_kernel_attention", _cases()), Target("nn.RPEKernelAttention", _layer_cases())]
