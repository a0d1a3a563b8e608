"""Hypothesis strategies: sizes that find edge cases (1, odd, non-powers of two), non-contiguous views, dtypes."""

import hypothesis.strategies as st
import torch

# Sizes that break tiling: 1, odd, primes, one past and one short of powers of two and word sizes.
EDGE_SIZES = (1, 2, 3, 5, 7, 13, 31, 32, 33, 63, 64, 65, 100, 127, 129)
FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
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
