"""Large CPU outputs backed by transparent huge pages.

A fresh torch CPU tensor of many MiB is new anonymous memory: every 4 KiB page faults and is zeroed by the kernel on
first write. For a memory-bound kernel that writes its output once (the spiking neurons move 5 T N elements in
total) those faults can take as long as the kernel itself. Where Linux runs transparent huge pages in `madvise`
mode (the common default), asking for them on the untouched buffer turns 512 faults into one per 2 MiB. torch's own
allocator does the same for every allocation when THP_MEM_ALLOC_ENABLE=1 is set; this asks only for the outputs of
our kernels. The advice is a hint: where it is refused (another OS, THP off, an address torch recycled) nothing
changes but the speed.
"""

from __future__ import annotations

import ctypes
import sys

import torch

HUGE_PAGE_BYTES = 2 * 1024 * 1024
# Below a few huge pages the fault savings are microseconds and the madvise call costs as much.
MIN_ADVISED_BYTES = 4 * HUGE_PAGE_BYTES
_MADV_HUGEPAGE = 14  # <linux/mman.h>


def _libc_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


_MADVISE = _libc_madvise()


def advise_huge_pages(t: torch.Tensor) -> torch.Tensor:
    """Ask for huge pages over the 2 MiB-aligned interior of a CPU tensor's storage, before it is written; returns t."""
    nbytes = t.untyped_storage().nbytes()
    if _MADVISE is None or t.device.type != "cpu" or nbytes < MIN_ADVISED_BYTES:
        return t
    start = t.untyped_storage().data_ptr()
    first = -(-start // HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES
    last = (start + nbytes) // HUGE_PAGE_BYTES * HUGE_PAGE_BYTES
    if last > first:
        _MADVISE(first, last - first, _MADV_HUGEPAGE)
    return t


def output_like(x: torch.Tensor) -> torch.Tensor:
    """torch.empty_like(x) for a kernel's output, on huge pages when it is large (see the module docstring)."""
    return advise_huge_pages(torch.empty_like(x, memory_format=torch.contiguous_format))
