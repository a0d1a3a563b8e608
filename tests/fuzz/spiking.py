"""Fuzz targets for the spiking neurons: accelkit.ops.lif, if_neuron, plif, multispike and the accelkit.nn modules
LIFNode, IFNode, ParametricLIFNode.

A case draws x_seq of any dtype, rank (0 to 3), size (empty included), layout and device (CPU or meta), with NaN/Inf
at times, and the knobs (tau, v_threshold, v_reset, surrogate, alpha, flags) mostly valid and sometimes of a wrong
type or value. A successful call returns spikes shaped and typed like x_seq, each 0 or 1 where the input is finite
(multispike: an integer in 0..levels); small all-finite float64 CPU cases must match the float64 oracle. Anything
invalid may raise only ValueError or TypeError naming an argument.
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import torch

from accelkit import nn, ops
from accelkit.kernels.spiking import reference as ref
from fuzz.core import Case, Target
from fuzz.values import FLOATS, LAYOUTS, TensorSpec, wrong_values

NAMES = ("x_seq", "v_init", "w", "tau", "v_threshold", "v_reset", "surrogate", "alpha", "decay_input",
         "detach_reset", "return_v", "backend", "levels", "x", "init_tau", "surrogate_function", "step_mode",
         "store_v_seq")  # fmt: skip
_CHECK_ELEMENTS = 2**12


def _maybe(draw, good, *bad):
    return draw(st.sampled_from(bad)) if bad and draw(st.integers(0, 7)) == 0 else good


def _knob(draw, good):
    return draw(st.one_of(st.just(good), wrong_values(valid=(good,)))) if draw(st.integers(0, 5)) == 0 else good


@st.composite
def _x_spec(draw):
    dtype = _maybe(draw, draw(st.sampled_from(FLOATS)), torch.int32, torch.bool)
    rank = _maybe(draw, draw(st.integers(1, 3)), 0)
    shape = tuple(draw(st.sampled_from((0, 1, 2, 3, 7, 33))) for _ in range(rank))
    return TensorSpec(
        dtype=dtype,
        shape=shape,
        layout=draw(st.sampled_from(LAYOUTS)),
        device=draw(st.sampled_from(("cpu", "cpu", "cpu", "meta"))),
        specials=draw(st.integers(0, 7)) == 0,
        seed=draw(st.integers(0, 2**16)),
    )


def _check_spikes(x, spikes, v=None):
    assert isinstance(spikes, torch.Tensor), f"result is a {type(spikes).__name__}"
    assert spikes.shape == x.shape and spikes.dtype == x.dtype and spikes.device == x.device
    if v is not None:
        assert v.shape == x.shape and v.dtype == x.dtype
    if x.device.type == "cpu" and x.numel() and bool(torch.isfinite(x.double()).all()):
        values = set(spikes.double().unique().tolist())
        assert values <= {0.0, 1.0}, f"spikes take values {sorted(values)}"


@st.composite
def _neuron_cases(draw, kind: str) -> Case:
    x_spec = draw(_x_spec())
    with_v = draw(st.booleans())
    v_shape = _maybe(draw, x_spec.shape[1:], x_spec.shape, (5,))
    v_spec = TensorSpec(dtype=_maybe(draw, x_spec.dtype, torch.float64), shape=v_shape, device=x_spec.device, seed=1)
    kwargs = dict(
        v_threshold=_knob(draw, 1.0),
        v_reset=_knob(draw, draw(st.sampled_from((0.0, -0.5, None)))),
        surrogate=_knob(draw, draw(st.sampled_from(ref.SURROGATES))),
        alpha=_knob(draw, None),
        detach_reset=_knob(draw, draw(st.booleans())),
        return_v=_knob(draw, draw(st.booleans())),
    )
    if kind != "if_neuron":
        kwargs["decay_input"] = _knob(draw, draw(st.booleans()))
    if kind == "lif":
        kwargs["tau"] = _knob(draw, draw(st.sampled_from((2.0, 1.5, 7.0))))
    w_shape = _maybe(draw, (1,), (), (2,))
    fn = getattr(ops, kind)

    def call(_):
        x = x_spec.build()
        v_init = v_spec.build() if with_v else None
        if kind == "plif":
            w = torch.zeros(w_shape, device=x_spec.device)
            return x, v_init, fn(x, w, v_init, **kwargs)
        return x, v_init, fn(x, v_init, **kwargs)

    def check(out) -> None:
        x, v_init, result = out
        spikes, v = result if kwargs["return_v"] is True else (result, None)
        _check_spikes(x, spikes, v)
        small = x.device.type == "cpu" and x.dtype == torch.float64 and 0 < x.numel() <= _CHECK_ELEMENTS
        if small and bool(torch.isfinite(x).all()) and (v_init is None or bool(torch.isfinite(v_init).all())):
            decay = {"lif": 1.0 / float(kwargs.get("tau", 2.0)), "plif": 0.5, "if_neuron": 0.0}[kind]
            v0 = None if v_init is None else v_init.double().reshape(-1).numpy()
            want, _, _ = ref.neuron_forward(
                x.reshape(x.shape[0], -1).numpy(), v0, kind="if" if kind == "if_neuron" else "lif", decay=decay,
                decay_input=bool(kwargs.get("decay_input", True)), v_threshold=float(kwargs["v_threshold"]),
                v_reset=None if kwargs["v_reset"] is None else float(kwargs["v_reset"]),
            )  # fmt: skip
            assert np.array_equal(spikes.reshape(want.shape).numpy(), want), "spikes differ from the oracle"

    describe = f"ops.{kind}(x_seq={x_spec!r}, v_init={v_spec if with_v else None!r}, w_shape={w_shape}, {kwargs!r})"
    return Case(describe, call, check, names=NAMES)


@st.composite
def _multispike_cases(draw) -> Case:
    x_spec = draw(_x_spec())
    levels = _knob(draw, draw(st.sampled_from((1, 2, 4, 8))))

    def call(_):
        x = x_spec.build()
        return x, ops.multispike(x, levels=levels)

    def check(out) -> None:
        x, y = out
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        if x.device.type == "cpu" and x.numel() and bool(torch.isfinite(x.double()).all()):
            y64 = y.double()
            assert bool((y64 == y64.round()).all()) and float(y64.min()) >= 0 and float(y64.max()) <= levels

    return Case(f"ops.multispike(x={x_spec!r}, levels={levels!r})", call, check, names=NAMES)


@st.composite
def _module_cases(draw, name: str) -> Case:
    x_spec = draw(_x_spec())
    kwargs = dict(
        v_threshold=_knob(draw, 1.0),
        v_reset=_knob(draw, draw(st.sampled_from((0.0, None)))),
        detach_reset=_knob(draw, draw(st.booleans())),
        step_mode=_knob(draw, "m"),
        store_v_seq=_knob(draw, draw(st.booleans())),
    )
    if name == "LIFNode":
        kwargs["tau"] = _knob(draw, 2.0)
    if name == "ParametricLIFNode":
        kwargs["init_tau"] = _knob(draw, 2.0)
    calls = draw(st.integers(1, 3))

    def call(_):
        x = x_spec.build()
        node = getattr(nn, name)(**kwargs)
        outs = [node(x) for _ in range(calls)]
        node.reset()
        return x, outs

    def check(out) -> None:
        x, outs = out
        for spikes in outs:
            _check_spikes(x, spikes)

    return Case(f"nn.{name}({kwargs!r}) x {calls} on {x_spec!r}", call, check, names=NAMES)


# Seven targets share one code path (the spiking_neuron op), so each draws 0.4 x the profile's examples (10 in CI).
TARGETS = [
    *(Target(f"ops.{kind}", _neuron_cases(kind), scale=0.4) for kind in ("lif", "if_neuron", "plif")),
    Target("ops.multispike", _multispike_cases(), scale=0.4),
    *(Target(f"nn.{name}", _module_cases(name), scale=0.4) for name in ("LIFNode", "IFNode", "ParametricLIFNode")),
]
