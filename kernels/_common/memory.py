"""Output tensors for the C++ CPU launchers, from the extension's result pool.

A fresh torch CPU tensor of many MiB is new anonymous memory: every 4 KiB page faults and is zeroed by the kernel on
first write. For a memory-bound kernel that writes its output once (the spiking neurons move 5 T N elements in
total) those faults can take as long as the kernel itself. The extension's result pool (csrc/bindings.h,
`new_result`, also behind the binary GEMM's results) hands out 2 MiB-aligned buffers on transparent huge pages and
keeps a few freed ones for the next result of the same size, so a model that makes the same output every call
writes into memory that is already mapped.
"""

from __future__ import annotations

import math

import torch

from accelkit._native import native

_POOLED = {torch.float32: "float32", torch.float64: "float64"}


def output_like(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised C-contiguous CPU tensor of x's shape and dtype, from the result pool (torch.empty_like for
    dtypes the pool does not serve)."""
    if x.device.type != "cpu" or x.dtype not in _POOLED:
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    array = native().empty_result(1, math.prod(x.shape), _POOLED[x.dtype])
    return torch.from_numpy(array).view(x.shape)
