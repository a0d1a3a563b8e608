"""Strategies the fuzz targets share: tensors of any dtype, layout and device, and wrongly typed Python values.

Tensors are drawn as a `TensorSpec` and built inside the call, so a failing example prints as a short readable
description (dtype, shape, layout, device) that rebuilds the same tensor from its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import hypothesis.strategies as st
import numpy as np
import torch

FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
WORDS = (torch.int32, torch.int64)
OTHER = (torch.int8, torch.uint8, torch.int16, torch.bool, torch.complex64)
ALL_DTYPES = FLOATS + WORDS + OTHER

# Edge sizes: empty, 1, odd, one short of and one past the 32- and 64-bit words.
DIMS = (0, 1, 2, 3, 5, 31, 32, 33, 63, 64, 65, 100)
# Declared sizes far beyond memory; only meta tensors (no storage) and zero-stride views take them.
HUGE_DIMS = (2**20, 2**31 - 1, 2**31, 2**32 + 1, 2**40)
# A CPU view of one element expanded to 2^22 elements: large in declared size, a single float of storage, and an
# output of at most 2^22 floats (16 MiB) when an op materialises it.
CPU_HUGE_LAST = 2**22
LAYOUTS = ("contiguous", "strided", "transposed", "flipped", "expanded-rows", "expanded-last")


@dataclass(frozen=True)
class TensorSpec:
    dtype: torch.dtype
    shape: tuple[int, ...]
    layout: str = "contiguous"
    device: str = "cpu"
    specials: bool = False  # NaN, +-Inf and -0.0 among the values
    fill: str = "normal"  # normal | bits (uniform random words) | ones (every bit set)
    valid_bits: int | None = None  # words: clear every bit at or past this position of a row (padding)
    requires_grad: bool = False
    seed: int = 0

    def __repr__(self) -> str:
        extras = [self.layout, self.device]
        if self.specials:
            extras.append("nan/inf")
        if self.fill != "normal":
            extras.append(f"fill={self.fill}")
        if self.valid_bits is not None:
            extras.append(f"valid_bits={self.valid_bits}")
        if self.requires_grad:
            extras.append("requires_grad")
        return f"T({str(self.dtype).removeprefix('torch.')}{list(self.shape)} {' '.join(extras)} seed={self.seed})"

    def build(self) -> torch.Tensor:
        shape = self.shape
        if self.device == "meta":
            t = torch.empty(shape, dtype=self.dtype, device="meta")
            return t.requires_grad_() if self.requires_grad and t.is_floating_point() else t
        if math.prod(shape) == 0:
            # No elements: an expanded or strided base of (1, 2^31) would still allocate its 2^31 floats.
            t = self._values(shape)
        elif self.layout == "expanded-rows" and len(shape) >= 1:
            t = self._values((1, *shape[1:])).expand(shape)
        elif self.layout == "expanded-last" and len(shape) >= 1:
            t = self._values((*shape[:-1], 1)).expand(shape)
        elif self.layout == "strided" and len(shape) >= 1:
            t = self._values((*shape[:-1], 2 * shape[-1]))[..., ::2]
        elif self.layout == "transposed" and len(shape) >= 2:
            t = self._values((*shape[:-2], shape[-1], shape[-2])).transpose(-1, -2)
        elif self.layout == "flipped" and len(shape) >= 1:
            t = self._values(shape).flip(-1)
        else:
            t = self._values(shape)
        if self.requires_grad and t.is_floating_point():
            t = t.detach().requires_grad_()
        return t

    def _values(self, shape: tuple[int, ...]) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        if self.dtype in WORDS and self.fill != "normal":
            return self._words(shape, gen)
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
        if self.specials and x.numel():
            flat = x.view(-1)
            picks = torch.randint(0, 5, flat.shape, generator=gen)
            for code, value in enumerate((math.nan, math.inf, -math.inf, -0.0)):
                flat[picks == code] = value
        if self.dtype == torch.bool:
            return x > 0
        if not (self.dtype.is_floating_point or self.dtype.is_complex):
            info = torch.iinfo(self.dtype)
            return torch.nan_to_num(x * 4).round().clamp(info.min, info.max).to(self.dtype)
        return x.to(self.dtype)

    def _words(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        bits = 32 if self.dtype == torch.int32 else 64
        if self.fill == "ones":
            t = torch.full(shape, -1, dtype=self.dtype)
        else:
            info = torch.iinfo(self.dtype)
            t = torch.randint(info.min, info.max, shape, generator=gen, dtype=self.dtype)
        if self.valid_bits is None or not shape:
            return t
        return t & padding_masks(shape[-1], bits, self.valid_bits, self.dtype)


def padding_masks(words: int, bits: int, valid: int, dtype: torch.dtype) -> torch.Tensor:
    """Per word of a row: ones on the first `valid` bits of the row, zeros on the padding past them."""
    masks = []
    for i in range(words):
        keep = min(bits, max(0, valid - i * bits))
        masks.append((1 << keep) - 1)
    unsigned = np.array(masks, dtype=np.uint32 if bits == 32 else np.uint64)
    return torch.from_numpy(unsigned.view(np.int32 if bits == 32 else np.int64).copy()).to(dtype)


@st.composite
def tensors(
    draw,
    dtypes=ALL_DTYPES,
    *,
    min_dims: int = 0,
    max_dims: int = 3,
    dims=None,
    huge: bool = True,
    grad: bool = False,
) -> TensorSpec:
    """Any dtype of `dtypes` (usually all of them, the wrong ones included), ndim in [min_dims, max_dims], on the
    CPU or the meta device, in any layout; `dims` fixes some sizes ({axis: size}, negative axes allowed)."""
    dtype = draw(st.sampled_from(dtypes))
    ndim = draw(st.integers(min_dims, max_dims))
    shape = [draw(st.sampled_from(DIMS)) for _ in range(ndim)]
    for axis, size in (dims or {}).items():
        if -ndim <= axis < ndim:
            shape[axis] = size
    device = draw(st.sampled_from(("cpu", "cpu", "cpu", "meta")))
    layout = draw(st.sampled_from(LAYOUTS))
    if huge and ndim and draw(st.integers(0, 7)) == 0:
        # One draw in eight is huge in declared size: any dim on meta, the last one of an expanded CPU view.
        if device == "meta":
            shape[draw(st.integers(0, ndim - 1))] = draw(st.sampled_from(HUGE_DIMS))
        else:
            shape = [1] * (ndim - 1) + [CPU_HUGE_LAST]
            layout = "expanded-last"
    fill = draw(st.sampled_from(("normal", "bits", "bits", "ones"))) if dtype in WORDS else "normal"
    return TensorSpec(
        dtype=dtype,
        shape=tuple(shape),
        layout=layout,
        device=device,
        specials=draw(st.booleans()) if dtype.is_floating_point else False,
        fill=fill,
        requires_grad=grad and dtype.is_floating_point and draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def wrong_values(*, valid: tuple = ()) -> st.SearchStrategy:
    """Python values of every wrong kind a caller passes by mistake, and `valid` ones among them."""
    wrong = st.sampled_from(
        (
            None,
            True,
            False,
            0,
            -1,
            2**63,
            10**30,
            2.5,
            float("nan"),
            float("inf"),
            "3",
            "",
            b"3",
            [3],
            (3,),
            {"k": 3},
            np.int64(3),
            np.int32(-3),
            np.float32(3.0),
            np.array([3]),
            object(),
        )
    )
    return st.one_of(wrong, st.sampled_from(valid)) if valid else wrong


def numpy_int(value: int):
    """The same integer as a NumPy scalar, as arrays' shapes and reductions hand them out."""
    return np.int64(value)
