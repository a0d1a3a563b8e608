"""Workloads: a GEMM C[M,N] = A[M,K] B[K,N] and a 2-D convolution, both frozen and validated on construction.

A convolution runs on the array as `groups` independent GEMMs (im2col): per group M = batch*Ho*Wo output pixels,
K = R*S*C/groups window elements and N = filters/groups.
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass

# Sizes are exact Python ints everywhere in native mode, so any size would work; 2^63 - 1 (int64's largest) is
# the cap so that every product the reports carry (MACs up to 2^189, words, cycles) still converts to a float
# (largest about 2^1024) for utilisation, bandwidth and energy.
MAX_SIZE = 2**63 - 1


def check_int(owner: str, name: str, value: object, *, minimum: int, maximum: int = MAX_SIZE) -> int:
    """`value` as a Python int in [minimum, maximum]; NumPy integers are accepted, bools and floats are not.
    Raises TypeError or ValueError naming `owner.name`."""
    # numbers.Integral takes NumPy integer scalars but not arrays (an ndarray has __index__ too, and raises).
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}.{name} must be an int, got {type(value).__name__} {value!r}")
    number = operator.index(value)
    if not minimum <= number <= maximum:
        raise ValueError(f"{owner}.{name} must be an int in [{minimum}, {maximum}], got {show_int(number)}")
    return number


def show_int(number: int) -> str:
    """`number` for an error message; a huge one by its size (str() refuses ints of over 4,300 digits)."""
    return str(number) if number.bit_length() <= 128 else f"an int of {number.bit_length()} bits"


def _check_ints(obj: object, names: tuple[str, ...], *, minimum: int) -> None:
    for name in names:
        # Frozen dataclass: store the plain int (a NumPy integer would overflow in products such as M*N*K).
        object.__setattr__(obj, name, check_int(type(obj).__name__, name, getattr(obj, name), minimum=minimum))


def _check_name(obj: object) -> None:
    if not isinstance(obj.name, str):
        raise TypeError(f"{type(obj).__name__}.name must be a string, got {type(obj.name).__name__} {obj.name!r}")


@dataclass(frozen=True)
class GemmDims:
    """One GEMM the array executes: C[m, n] = sum_k A[m, k] B[k, n], `count` times back to back."""

    m: int
    n: int
    k: int
    count: int = 1


@dataclass(frozen=True)
class Gemm:
    """C[M,N] = A[M,K] B[K,N]; A plays the IFMAP, B the filter and C the OFMAP."""

    name: str
    m: int
    n: int
    k: int

    def __post_init__(self) -> None:
        _check_name(self)
        _check_ints(self, ("m", "n", "k"), minimum=1)

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k

    def gemms(self) -> GemmDims:
        return GemmDims(self.m, self.n, self.k)


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution over an NHWC input; filters are R x S (filter_h x filter_w) over channels/groups.

    Output size follows the usual floor rule with zero padding: Ho = (H + 2*pad_h - R) // stride_h + 1.
    """

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    batch: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        _check_name(self)
        _check_ints(
            self,
            (
                "ifmap_h",
                "ifmap_w",
                "filter_h",
                "filter_w",
                "channels",
                "num_filters",
                "stride_h",
                "stride_w",
                "batch",
                "groups",
            ),
            minimum=1,
        )
        _check_ints(self, ("pad_h", "pad_w"), minimum=0)
        if self.filter_h > self.ifmap_h + 2 * self.pad_h:
            raise ValueError(
                f"Conv.filter_h={self.filter_h} exceeds the padded ifmap height {self.ifmap_h + 2 * self.pad_h}"
            )
        if self.filter_w > self.ifmap_w + 2 * self.pad_w:
            raise ValueError(
                f"Conv.filter_w={self.filter_w} exceeds the padded ifmap width {self.ifmap_w + 2 * self.pad_w}"
            )
        if self.channels % self.groups or self.num_filters % self.groups:
            raise ValueError(
                f"Conv.groups={self.groups} must divide channels={self.channels} and num_filters={self.num_filters}"
            )

    @property
    def ofmap_h(self) -> int:
        return (self.ifmap_h + 2 * self.pad_h - self.filter_h) // self.stride_h + 1

    @property
    def ofmap_w(self) -> int:
        return (self.ifmap_w + 2 * self.pad_w - self.filter_w) // self.stride_w + 1

    @property
    def depthwise(self) -> bool:
        return self.groups == self.channels == self.num_filters

    @property
    def gemm_m(self) -> int:
        return self.batch * self.ofmap_h * self.ofmap_w

    @property
    def gemm_k(self) -> int:
        return self.filter_h * self.filter_w * self.channels // self.groups

    @property
    def gemm_n(self) -> int:
        return self.num_filters // self.groups

    @property
    def macs(self) -> int:
        return self.groups * self.gemm_m * self.gemm_n * self.gemm_k

    def gemms(self) -> GemmDims:
        return GemmDims(self.gemm_m, self.gemm_n, self.gemm_k, self.groups)
