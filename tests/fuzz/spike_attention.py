"""Fuzz targets for the spike-driven attention ops: accelkit.ops.sdsa_v1, sdsa_v2 and spike_binary_matmul.

A case draws q, k, v [T, B, H, N, D] (or s [..., K] and w [N, K]) of any float dtype (a wrong one at times), small
edge sizes (empty included; huge declared sizes on the meta device), any layout, CPU or meta, with NaN/Inf at times,
{0,1} spikes or raw normal values, and the knob (v_threshold, scale) mostly valid and sometimes of a wrong type or
value. A successful call returns the result shaped and typed as documented; small all-finite CPU cases match the
float64 oracle (sdsa_v1 only on {0,1} spikes, where its threshold compares are exact). Anything invalid may raise
only ValueError or TypeError naming an argument.
"""

from __future__ import annotations

import hypothesis.strategies as st
import torch

from accelkit import ops
from accelkit.kernels._common.tolerance import outside
from accelkit.kernels.spike_attention import reference as ref
from fuzz.core import Case, Target
from fuzz.values import FLOATS, HUGE_DIMS, LAYOUTS, TensorSpec, wrong_values

NAMES = ("q", "k", "v", "v_threshold", "scale", "s", "w")
_CHECK_ELEMENTS = 2**12
_SMALL = (0, 1, 2, 3, 5, 7)


def _maybe(draw, good, *bad):
    return draw(st.sampled_from(bad)) if bad and draw(st.integers(0, 7)) == 0 else good


def _spec(draw, dtype, shape, device) -> TensorSpec:
    return TensorSpec(
        dtype=dtype,
        shape=tuple(shape),
        layout=draw(st.sampled_from(LAYOUTS)),
        device=device,
        specials=draw(st.integers(0, 7)) == 0,
        seed=draw(st.integers(0, 2**16)),
    )


def _finite_cpu(*xs) -> bool:
    return all(x.device.type == "cpu" and bool(torch.isfinite(x.double()).all()) for x in xs)


def _as_spikes(x: torch.Tensor, spikes: bool) -> torch.Tensor:
    """x, or its {0,1} spikes (x > 0) written back through the same view, so the layout survives."""
    if not spikes or x.device.type == "meta" or not x.is_floating_point() or x.stride().count(0):
        return x
    return x.detach().copy_((x > 0).to(x.dtype))


def _check_values(name, want, got, dtype) -> None:
    bad = outside(want, got.detach().double().numpy(), dtype)
    assert not bad.any(), f"{name}: {int(bad.sum())} of {bad.size} outputs outside the tolerance of {dtype}"


@st.composite
def _sdsa_cases(draw, version: int) -> Case:
    dtype = _maybe(draw, draw(st.sampled_from(FLOATS)), torch.int32, torch.bool)
    device = draw(st.sampled_from(("cpu", "cpu", "cpu", "meta")))
    shape = [draw(st.sampled_from(_SMALL)) for _ in range(5)]
    if device == "meta" and draw(st.integers(0, 7)) == 0:
        shape[draw(st.integers(0, 4))] = draw(st.sampled_from(HUGE_DIMS))
    shape = _maybe(draw, tuple(shape), tuple(shape[1:]), (*shape, 2))
    specs = [
        _spec(draw, _maybe(draw, dtype, torch.float64), _maybe(draw, shape, (*shape[:-1], 9)), device) for _ in range(3)
    ]
    spikes = draw(st.booleans())
    knob_name = "v_threshold" if version == 1 else "scale"
    kwargs = {}
    if draw(st.booleans()):
        good = (0.5, 1.0, 2.5) if version == 1 else (0.125, 0.25, -1.0)
        kwargs[knob_name] = draw(st.one_of(st.sampled_from(good), wrong_values(valid=(0.0, -0.5))))
    fn = ops.sdsa_v1 if version == 1 else ops.sdsa_v2

    def call(_):
        q, k, v = (_as_spikes(s.build(), spikes) for s in specs)
        return (q, k, v), fn(q, k, v, **kwargs)

    def check(out) -> None:
        (q, k, v), y = out
        assert isinstance(y, torch.Tensor), f"result is a {type(y).__name__}"
        assert y.shape == q.shape and y.dtype == q.dtype and y.device == q.device
        if not _finite_cpu(q, k, v) or q.numel() > _CHECK_ELEMENTS or (version == 1 and not spikes):
            return
        args = [x.detach().double().numpy() for x in (q, k, v)]
        if version == 1:
            _check_values("sdsa_v1", ref.sdsa_v1(*args, kwargs.get("v_threshold", 0.5)), y, torch.float64)
        elif q.dtype == torch.float64:
            _check_values("sdsa_v2", ref.sdsa_v2(*args, kwargs.get("scale", 0.125)), y, torch.float64)

    describe = f"sdsa_v{version}(q={specs[0]!r}, k={specs[1]!r}, v={specs[2]!r}, spikes={spikes}, {kwargs!r})"
    return Case(describe, call, check, names=NAMES)


@st.composite
def _matmul_cases(draw) -> Case:
    dtype = _maybe(draw, draw(st.sampled_from(FLOATS)), torch.int32, torch.complex64)
    device = draw(st.sampled_from(("cpu", "cpu", "cpu", "meta")))
    lead = tuple(draw(st.sampled_from(_SMALL)) for _ in range(draw(st.integers(0, 2))))
    k = draw(st.sampled_from((0, 1, 5, 63, 64, 65, 130)))
    n = draw(st.sampled_from((0, 1, 3, 17)))
    if device == "meta" and draw(st.integers(0, 7)) == 0:
        k = draw(st.sampled_from(HUGE_DIMS))
    s_spec = _spec(draw, dtype, _maybe(draw, (*lead, k), ()), device)
    w_spec = _spec(draw, _maybe(draw, dtype, torch.float64), _maybe(draw, (n, k), (n, k + 1), (k,)), device)
    spikes = draw(st.booleans())

    def call(_):
        s, w = _as_spikes(s_spec.build(), spikes), w_spec.build()
        return (s, w), ops.spike_binary_matmul(s, w)

    def check(out) -> None:
        (s, w), y = out
        assert isinstance(y, torch.Tensor), f"result is a {type(y).__name__}"
        assert y.shape == (*s.shape[:-1], w.shape[0]) and y.dtype == s.dtype and y.device == s.device
        if _finite_cpu(s, w) and y.numel() <= _CHECK_ELEMENTS and s.shape[-1] <= 256:
            want = ref.spike_binary_matmul(s.detach().double().numpy(), w.detach().double().numpy())
            _check_values("spike_binary_matmul", want, y, torch.float64)

    describe = f"spike_binary_matmul(s={s_spec!r}, w={w_spec!r}, spikes={spikes})"
    return Case(describe, call, check, names=NAMES)


TARGETS = [
    Target("ops.sdsa_v1", _sdsa_cases(1)),
    Target("ops.sdsa_v2", _sdsa_cases(2)),
    Target("ops.spike_binary_matmul", _matmul_cases()),
]
