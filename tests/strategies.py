"""Hypothesis strategies: sizes that find edge cases (1, odd, non-powers of two), non-contiguous views, dtypes;
and, in their own section at the end, the simulator's layers and accelerators."""

import hypothesis.strategies as st
import torch

from accelkit.kernels._common.dtypes import FLOAT_DTYPES
from accelkit.sim.hardware import Hardware
from accelkit.sim.workloads import Conv, Gemm

# Sizes that break tiling: 1, odd, primes, one past and one short of powers of two and word sizes.
EDGE_SIZES = (1, 2, 3, 5, 7, 13, 31, 32, 33, 63, 64, 65, 100, 127, 129)
LAYOUTS = ("contiguous", "strided", "transposed")


def sizes(max_value: int = 129, *, min_value: int = 1) -> st.SearchStrategy[int]:
    edge = [s for s in EDGE_SIZES if min_value <= s <= max_value]
    return st.one_of(st.sampled_from(edge), st.integers(min_value, max_value))


def shapes(ndim: int, max_value: int = 129, *, min_value: int = 1) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[sizes(max_value, min_value=min_value)] * ndim)


def make_tensor(
    shape: tuple[int, ...], dtype: torch.dtype, *, seed: int, layout: str = "contiguous", scale: float = 1.5
) -> torch.Tensor:
    """A tensor of `shape` whose memory layout is `layout`: 'strided' slices every other element of the last dim,
    'transposed' stores the last two dims swapped. Values are N(0, scale^2) with a few exact zeros."""
    gen = torch.Generator().manual_seed(seed)
    if layout == "contiguous" or len(shape) == 0:
        base = torch.randn(shape, generator=gen, dtype=torch.float64)
        view = base
    elif layout == "strided":
        base = torch.randn((*shape[:-1], 2 * shape[-1]), generator=gen, dtype=torch.float64)
        view = base[..., ::2]
    elif layout == "transposed" and len(shape) >= 2:
        base = torch.randn((*shape[:-2], shape[-1], shape[-2]), generator=gen, dtype=torch.float64)
        view = base.transpose(-1, -2)
    else:
        return make_tensor(shape, dtype, seed=seed, layout="strided", scale=scale)
    view = view * scale
    view[torch.rand(view.shape, generator=gen) < 0.05] = 0.0
    if layout == "contiguous":
        return view.to(dtype)
    # Re-apply the view to a tensor of the target dtype so the result stays non-contiguous.
    holder = torch.full(base.shape, float("nan"), dtype=dtype)
    holder_view = holder[..., ::2] if layout == "strided" else holder.transpose(-1, -2)
    holder_view.copy_(view)
    return holder_view


seeds = st.integers(0, 2**31 - 1)
layouts = st.sampled_from(LAYOUTS)
float_dtypes = st.sampled_from(FLOAT_DTYPES)


# --- Simulator (accelkit.sim): layers and accelerators --------------------------------------------------------------
SIM_DATAFLOWS = ("os", "ws", "is")


@st.composite
def sim_convs(draw, *, max_side=20, max_filter=5, max_per_group=6, scalesim_expressible=False):
    """Random `accelkit.sim` convolutions with padding, batch, groups and depthwise layers.

    SCALE-Sim (compat mode) has no padding, batch or groups, and rounds the output size up where the usual rule
    rounds down, so `scalesim_expressible` draws strides that tile the input exactly (then `max_side` bounds the
    output side, not the input's).
    """
    groups = 1 if scalesim_expressible else draw(st.integers(1, 4))
    channels = groups * draw(st.integers(1, max_per_group))
    depthwise = not scalesim_expressible and channels == groups and draw(st.booleans())
    filters = channels if depthwise else groups * draw(st.integers(1, max_per_group))
    fh, fw = draw(st.integers(1, max_filter)), draw(st.integers(1, max_filter))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if scalesim_expressible:
        ph = pw = 0
        h = (draw(st.integers(1, max_side)) - 1) * sh + fh
        w = (draw(st.integers(1, max_side)) - 1) * sw + fw
    else:
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        h = draw(st.integers(max(1, fh - 2 * ph), max(max_side, fh)))
        w = draw(st.integers(max(1, fw - 2 * pw), max(max_side, fw)))
    return Conv(
        name="conv",
        ifmap_h=h,
        ifmap_w=w,
        filter_h=fh,
        filter_w=fw,
        channels=channels,
        num_filters=filters,
        stride_h=sh,
        stride_w=sw,
        pad_h=ph,
        pad_w=pw,
        batch=1 if scalesim_expressible else draw(st.integers(1, 3)),
        groups=groups,
    )


def sim_gemms(max_dim: int = 80) -> st.SearchStrategy:
    dims = st.integers(1, max_dim)
    return st.builds(Gemm, name=st.just("gemm"), m=dims, n=dims, k=dims)


@st.composite
def sim_hardware(draw, *, scalesim_expressible=False, min_side=None, max_side=40):
    """Random arrays and memories. SCALE-Sim needs SRAMs of 100+ words and whole-number bandwidths, and on a
    1x1 array its `folds x per_fold - 1` cycle count drops below one cycle per MAC, so compat gets 2x2 and up
    unless `min_side` says otherwise."""
    smallest = min_side if min_side is not None else (2 if scalesim_expressible else 1)
    srams = [1024, 16 * 1024, 1 << 20] if scalesim_expressible else [64, 1024, 16 * 1024, 1 << 20]
    return Hardware(
        rows=draw(st.integers(smallest, max_side)),
        cols=draw(st.integers(smallest, max_side)),
        dataflow=draw(st.sampled_from(SIM_DATAFLOWS)),
        ifmap_sram_bytes=draw(st.sampled_from(srams)),
        filter_sram_bytes=draw(st.sampled_from(srams)),
        ofmap_sram_bytes=draw(st.sampled_from(srams)),
        dram_bw_words_per_cycle=draw(
            st.sampled_from([None, 1, 4, 10, 64] if scalesim_expressible else [None, 0.5, 4, 10, 64])
        ),
    )
