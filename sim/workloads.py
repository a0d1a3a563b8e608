"""Workloads: a GEMM C[M,N] = A[M,K] B[K,N] and a 2-D convolution, both frozen and validated on construction.

A convolution runs on the array as `groups` independent GEMMs (im2col): per group M = batch*Ho*Wo output pixels,
K = R*S*C/groups window elements and N = filters/groups.
"""

from __future__ import annotations

from dataclasses import dataclass


def _check_ints(obj: object, names: tuple[str, ...], *, minimum: int) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{type(obj).__name__}.{name} must be an int >= {minimum}, got {value!r}")


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
        if not isinstance(self.name, str):
            raise ValueError(f"Gemm.name must be a string, got {self.name!r}")
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
        if not isinstance(self.name, str):
            raise ValueError(f"Conv.name must be a string, got {self.name!r}")
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
