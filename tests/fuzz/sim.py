"""Fuzz targets for the simulator's Python API: Gemm, Conv, Hardware, simulate_layer, simulate and the networks.

Sizes run from 1 to 2^40 (native mode is closed form, so any size must finish at once, with exact cycle counts
that stay non-negative); wrong values are every Python type a caller might pass (floats, bools, NumPy integers,
None, strings). A successful call must return the right type with consistent numbers; an invalid one may raise
only ValueError or TypeError naming the field or argument.
"""

from __future__ import annotations

import math

import hypothesis.strategies as st
import numpy as np

from accelkit.sim import Conv, Gemm, Hardware, simulate, simulate_layer
from accelkit.sim.engine import LayerStats
from accelkit.sim.networks import NETWORKS, get_network
from accelkit.sim.report import Report
from accelkit.sim.scalesim.engine import to_compat_layer
from fuzz.core import Case, Target
from fuzz.values import numpy_int, wrong_values

SIZES = (1, 2, 3, 7, 16, 33, 64, 100)
# Far past any real layer: native mode must still answer (closed form) or refuse by name, never overflow int64.
HUGE = (2**31, 2**40, 2**62)
NETWORK_SPELLINGS = (*NETWORKS, "ResNet-50", "resnet_50", " RESNET50 ", "bert-base", "alexnet", "", "resnet50x")
# Utilisation is a percentage; float rounding of a 100% layer may land a hair above it. Compat mode reproduces
# SCALE-Sim 3.0.0 quirks included, and SCALE-Sim counts 104 cycles for 3x5x7 = 105 MACs on a 1x1 OS array
# (100.96%), so only native mode is held to the bound.
UTIL_MAX = 100.0 + 1e-6


def _size(draw, *, huge: bool = True, wrong: bool = True):
    """Mostly a small valid size; sometimes a huge one, a NumPy integer, or a wrong value."""
    pick = draw(st.integers(0, 9))
    if pick == 0 and wrong:
        return draw(wrong_values())
    if pick == 1 and huge:
        return draw(st.sampled_from(HUGE))
    if pick == 2:
        return numpy_int(draw(st.sampled_from(SIZES)))
    return draw(st.sampled_from(SIZES))


def _args_text(args: tuple, kwargs: dict) -> str:
    return ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])


# --- workloads and hardware ---


@st.composite
def _gemms(draw, huge: bool = True) -> tuple:
    name = draw(st.sampled_from(("g", "layer 1", "")) if draw(st.integers(0, 9)) else wrong_values())
    return (name, *(_size(draw, huge=huge) for _ in range(3)))


def gemm_case(args: tuple) -> Case:
    def check(g) -> None:
        assert isinstance(g, Gemm), f"Gemm() returned a {type(g).__name__}"
        assert (g.m, g.n, g.k) == tuple(int(v) for v in args[1:]), f"Gemm holds {(g.m, g.n, g.k)}, given {args[1:]}"
        assert g.macs == g.m * g.n * g.k > 0, f"Gemm.macs = {g.macs}"

    return Case(f"Gemm({_args_text(args, {})})", lambda _: Gemm(*args), check, names=("name", "m", "n", "k"))


@st.composite
def _gemm_cases(draw) -> Case:
    return gemm_case(draw(_gemms()))


CONV_FIELDS = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters")
CONV_OPTIONAL = ("stride_h", "stride_w", "pad_h", "pad_w", "batch", "groups")


@st.composite
def _conv_kwargs(draw, huge: bool = True, wrong: bool = True) -> dict:
    kwargs = {"name": "c"}
    for field in CONV_FIELDS:
        kwargs[field] = _size(draw, huge=huge, wrong=wrong)
    for field in CONV_OPTIONAL:
        if draw(st.booleans()):
            kwargs[field] = (
                0 if field.startswith("pad") and draw(st.booleans()) else _size(draw, huge=huge, wrong=wrong)
            )
    return kwargs


def conv_case(kwargs: dict) -> Case:
    def check(c) -> None:
        assert isinstance(c, Conv), f"Conv() returned a {type(c).__name__}"
        assert c.ofmap_h >= 1 and c.ofmap_w >= 1, f"output {c.ofmap_h}x{c.ofmap_w} for {kwargs}"
        g = c.gemms()
        assert min(g.m, g.n, g.k, g.count) >= 1, f"Conv.gemms() = {g}"
        assert c.macs == g.m * g.n * g.k * g.count, f"Conv.macs = {c.macs}, gemms give {g}"

    return Case(f"Conv({_args_text((), kwargs)})", lambda _: Conv(**kwargs), check, names=tuple(kwargs))


@st.composite
def _conv_cases(draw) -> Case:
    return conv_case(draw(_conv_kwargs()))


HARDWARE_INTS = ("ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "word_bytes")


@st.composite
def _hardware_kwargs(draw, wrong: bool = True) -> dict:
    kwargs = {"rows": _size(draw, wrong=wrong), "cols": _size(draw, wrong=wrong)}
    if draw(st.booleans()):
        kwargs["dataflow"] = draw(
            st.sampled_from(("os", "ws", "is", "OS", "xs")) if draw(st.integers(0, 5)) else wrong_values()
        )
    for name in HARDWARE_INTS:
        if draw(st.integers(0, 2)) == 0:
            kwargs[name] = (
                draw(st.sampled_from((1, 2, 64, 1024, 65536, 2**40)))
                if draw(st.integers(0, 5))
                else draw(wrong_values())
            )
    if draw(st.booleans()):
        kwargs["dram_bw_words_per_cycle"] = draw(
            st.sampled_from((None, 0.5, 1, 4, 10.0, 1e12)) if draw(st.integers(0, 4)) else wrong_values()
        )
    if draw(st.integers(0, 3)) == 0:
        kwargs["clock_mhz"] = draw(st.sampled_from((1.0, 700, 1e-3, 1e9)) if draw(st.booleans()) else wrong_values())
    return kwargs


def hardware_case(kwargs: dict) -> Case:
    def check(hw) -> None:
        assert isinstance(hw, Hardware), f"Hardware() returned a {type(hw).__name__}"
        assert hw.pes == int(kwargs["rows"]) * int(kwargs["cols"]) >= 1, f"Hardware.pes = {hw.pes}"

    return Case(f"Hardware({_args_text((), kwargs)})", lambda _: Hardware(**kwargs), check, names=tuple(kwargs))


@st.composite
def _hardware_cases(draw) -> Case:
    return hardware_case(draw(_hardware_kwargs()))


# --- simulate_layer and simulate ---


def _stats_ok(stats, layer) -> None:
    assert isinstance(stats, LayerStats), f"got a {type(stats).__name__}, not LayerStats"
    # Compat mode simulates SCALE-Sim's reading of a Conv, which rounds the output size up where a stride does not
    # divide the input (sim/README.md lists this difference), so its MACs are those of the SCALE-Sim layer.
    macs = to_compat_layer(layer).macs if stats.mode == "compat" else layer.macs
    assert stats.macs == macs, f"LayerStats.macs = {stats.macs}, the layer has {macs} in {stats.mode} mode"
    assert stats.total_cycles >= stats.compute_cycles >= 1, (
        f"cycles: total {stats.total_cycles}, compute {stats.compute_cycles}"
    )
    assert stats.stall_cycles >= 0, f"stall_cycles = {stats.stall_cycles}"
    for name in ("overall_util_pct", "mapping_efficiency_pct", "compute_util_pct"):
        value = getattr(stats, name)
        assert 0.0 <= value <= (UTIL_MAX if stats.mode == "native" else math.inf), f"{name} = {value}"


@st.composite
def _layers(draw, small: bool = False):
    """A valid Gemm or Conv (small, or up to 2^62 in any dimension), or sometimes not a layer at all."""
    pick = draw(st.integers(0, 9))
    if pick == 0:
        return draw(wrong_values())
    try:
        if pick <= 5:
            return Gemm(*draw(_gemms(huge=not small)))
        return Conv(**draw(_conv_kwargs(huge=not small, wrong=False)))
    except (ValueError, TypeError):
        # An invalid draw (say, a filter larger than the ifmap): the constructor's own target covers it.
        return Gemm("fallback", 3, 5, 7)


@st.composite
def _hardwares(draw):
    pick = draw(st.integers(0, 9))
    if pick == 0:
        return draw(wrong_values())
    if pick <= 3:
        return draw(st.sampled_from(("tpu_v1", "eyeriss", "TPU_V1_like", "Eyeriss ", "gpu")))
    try:
        return Hardware(**draw(_hardware_kwargs(wrong=False)))
    except (ValueError, TypeError):
        return Hardware(4, 4)


def _options(draw) -> dict:
    kwargs = {}
    if draw(st.booleans()):
        kwargs["mode"] = draw(st.sampled_from(("native", "compat", "Native", "scalesim")))
    if draw(st.integers(0, 3)) == 0:
        kwargs["accumulate_on_chip"] = draw(st.sampled_from((True, False, 1, "yes", None)))
    return kwargs


@st.composite
def _simulate_layer_cases(draw) -> Case:
    layer, hw, kwargs = draw(_layers()), draw(_hardwares()), _options(draw)

    def call(_):
        return simulate_layer(layer, hw, **kwargs)

    return Case(
        f"simulate_layer({layer!r}, {hw!r}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})",
        call,
        lambda stats: _stats_ok(stats, layer),
        names=("layer", "hw", "hardware", "mode", "accumulate_on_chip", "compat", "Gemm", "Conv", "Hardware"),
    )


@st.composite
def _simulate_cases(draw) -> Case:
    kind = draw(st.sampled_from(("network", "layer", "list", "wrong")))
    kwargs = _options(draw)
    if kind == "network":
        workload = draw(st.sampled_from(NETWORK_SPELLINGS))
        if draw(st.booleans()):
            kwargs["batch"] = draw(st.sampled_from((1, 2, 2**20, 0, -1, 1.5, True, numpy_int(2))))
        if draw(st.integers(0, 2)) == 0:
            kwargs["seq_len"] = draw(st.sampled_from((1, 128, 512, 1024, 4096, 0, None, 64.0)))
    elif kind == "layer":
        workload = draw(_layers(small=True))
    elif kind == "list":
        workload = draw(st.lists(_layers(small=True), max_size=4))
    else:
        workload = draw(wrong_values())
    if kind in ("layer", "list") and draw(st.integers(0, 2)) == 0:
        # Functional mode does every MAC in NumPy, so only small layers (at most 100^3 MACs here) draw it.
        kwargs["functional"] = draw(st.sampled_from((True, False, "fold", "cycle", "yes", 1)))
    return simulate_case(kind, workload, draw(_hardwares()), kwargs)


def simulate_case(kind: str, workload, hw, kwargs: dict) -> Case:
    """kind: network (a name), layer, list or wrong (what `workload` is)."""

    def call(_):
        return simulate(workload, hw, **kwargs)

    def check(report) -> None:
        assert isinstance(report, Report), f"simulate returned a {type(report).__name__}"
        if kind == "network":
            options = {k: kwargs[k] for k in ("batch", "seq_len") if k in kwargs}
            expected = get_network(workload, **options)
        else:
            expected = [workload] if kind == "layer" else list(workload)
        assert len(report) == len(expected), f"report has {len(report)} layers, the workload {len(expected)}"
        for result, layer in zip(report.layers, expected, strict=True):
            _stats_ok(result.stats, layer)

    return Case(
        f"simulate({workload!r}, {hw!r}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})",
        call,
        check,
        names=(
            "workload",
            "hardware",
            "mode",
            "batch",
            "seq_len",
            "functional",
            "accumulate_on_chip",
            "name",
            "compat",
            "Gemm",
            "Conv",
            "Hardware",
        ),
    )


@st.composite
def _network_cases(draw) -> Case:
    name = draw(st.one_of(st.sampled_from(NETWORK_SPELLINGS), wrong_values()))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["batch"] = draw(st.one_of(st.sampled_from((1, 8, 2**40, numpy_int(4))), wrong_values()))
    if draw(st.booleans()):
        kwargs["seq_len"] = draw(st.one_of(st.sampled_from((1, 16, 512, 1024, 1025)), wrong_values()))
    return network_case(name, kwargs)


def network_case(name, kwargs: dict) -> Case:
    def check(layers) -> None:
        assert isinstance(layers, list) and layers, f"get_network returned {type(layers).__name__} {layers!r:.80}"
        for layer in layers:
            assert isinstance(layer, (Gemm, Conv)), f"a layer is a {type(layer).__name__}"
            assert layer.macs > 0, f"layer {layer.name} has {layer.macs} MACs"

    return Case(
        f"get_network({name!r}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})",
        lambda _: get_network(name, **kwargs),
        check,
        names=("name", "batch", "seq_len"),
    )


# Reproducers of bugs the fuzzer found (see README.md); each runs first in every fuzz run of its target.
CONV_NUMPY_ARRAY = conv_case(
    dict(name="c", ifmap_h=np.array([3]), ifmap_w=4, filter_h=1, filter_w=1, channels=1, num_filters=1)
)
HARDWARE_NUMPY_ARRAY = hardware_case(dict(rows=np.array([3]), cols=4))
# 12 encoders x 12 heads x 2 attention GEMMs per batch item: 2^40 items never finish building.
BERT_HUGE_BATCH = network_case("bert_base", {"batch": 2**40})
# batch x 512 tokens overflows Gemm.m's int64 range; the error must name batch, not Gemm.m.
BERT_BATCH_PAST_INT64 = network_case("bert_base", {"batch": 2**63})

TARGETS = [
    Target("sim.Gemm", _gemm_cases(), examples=(gemm_case(("g", 2**40, 2**20, numpy_int(3))),)),
    Target("sim.Conv", _conv_cases(), examples=(CONV_NUMPY_ARRAY,)),
    Target("sim.Hardware", _hardware_cases(), examples=(HARDWARE_NUMPY_ARRAY,)),
    Target("sim.simulate_layer", _simulate_layer_cases()),
    Target("sim.simulate", _simulate_cases(), timeout_s=20.0),
    Target("sim.networks", _network_cases(), examples=(BERT_HUGE_BATCH, BERT_BATCH_PAST_INT64)),
]
