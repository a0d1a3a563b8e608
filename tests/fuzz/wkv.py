"""Fuzz target for SpikeGPT's WKV: accelkit.ops.wkv.

A case draws k, v [B, T, C] and w, u [C] of any float dtype (a wrong dtype at times), edge sizes (empty included),
any layout, on the CPU or meta device, with NaN/Inf at times, and breaks one thing now and then: a wrong rank, a
mismatched shape, channel count or dtype, a Python value where a tensor belongs. A successful call returns y shaped
and typed like k; finite inputs give finite outputs (the offsets keep every exp() argument <= 0, whatever w, u and
k); small all-finite float64 CPU cases match the float64 oracle. Anything invalid may raise only ValueError or
TypeError naming an argument.
"""

from __future__ import annotations

import hypothesis.strategies as st
import torch

from accelkit import ops
from accelkit.kernels._common.tolerance import outside
from accelkit.kernels.wkv import reference as ref
from fuzz.core import Case, Target
from fuzz.values import FLOATS, HUGE_DIMS, LAYOUTS, TensorSpec, wrong_values

NAMES = ("w", "u", "k", "v")
_CHECK_ELEMENTS = 2**11


def _maybe(draw, good, *bad):
    """Usually `good`; one draw in eight one of `bad`."""
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


@st.composite
def _wkv_cases(draw) -> Case:
    dtype = _maybe(draw, draw(st.sampled_from(FLOATS)), torch.int32, torch.complex64)
    device = draw(st.sampled_from(("cpu", "cpu", "cpu", "meta")))
    batch, steps = draw(st.sampled_from((0, 1, 2, 3))), draw(st.sampled_from((0, 1, 2, 5, 33, 100)))
    channels = draw(st.sampled_from((0, 1, 5, 31, 32, 33, 65)))
    if device == "meta" and draw(st.integers(0, 7)) == 0:
        steps = draw(st.sampled_from(HUGE_DIMS))
    shape = _maybe(draw, (batch, steps, channels), (steps, channels), (1, batch, steps, channels))
    k_spec = _spec(draw, dtype, shape, device)
    v_spec = _spec(draw, _maybe(draw, dtype, torch.float64), _maybe(draw, shape, (batch, steps + 1, channels)), device)
    w_spec = _spec(draw, _maybe(draw, dtype, torch.float32, torch.int64), _maybe(draw, (channels,), (channels + 1,)),
                   _maybe(draw, device, "meta", "cpu"))  # fmt: skip
    u_spec = _spec(draw, dtype, _maybe(draw, (channels,), (1, channels)), device)
    wrong = draw(st.integers(0, 15)) == 0
    wrong_value = draw(wrong_values()) if wrong else None
    wrong_at = draw(st.integers(0, 3))

    def call(_):
        args = [w_spec.build(), u_spec.build(), k_spec.build(), v_spec.build()]
        if wrong:
            args[wrong_at] = wrong_value
        return args, ops.wkv(*args)

    def check(out) -> None:
        (w, u, k, v), y = out
        assert isinstance(y, torch.Tensor), f"result is a {type(y).__name__}"
        assert y.shape == k.shape and y.dtype == k.dtype and y.device == k.device, (
            f"output {y.dtype}{list(y.shape)} on {y.device} for k {k.dtype}{list(k.shape)}"
        )
        if y.device.type != "cpu" or not all(bool(torch.isfinite(x.double()).all()) for x in (w, u, k, v)):
            return
        y64 = y.double()
        assert bool(torch.isfinite(y64).all()), "finite inputs gave a non-finite output"
        if k.dtype == torch.float64 and k.numel() <= _CHECK_ELEMENTS:
            want = ref.wkv(*(x.numpy() for x in (w, u, k, v)))
            bad = outside(want, y64.numpy(), k.dtype)
            assert not bad.any(), f"{int(bad.sum())} of {bad.size} outputs outside the float64 tolerance"

    describe = f"wkv(w={w_spec!r}, u={u_spec!r}, k={k_spec!r}, v={v_spec!r}, wrong={wrong_value!r}@{wrong_at})"
    return Case(describe, call, check, names=NAMES)


TARGETS = [Target("ops.wkv", _wkv_cases())]
