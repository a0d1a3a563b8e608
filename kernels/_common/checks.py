"""Argument checks shared by the public ops and their launchers, so every path refuses a bad input the same way,
before anything runs: TypeError when the Python type is wrong (not a tensor), ValueError naming the argument for
a wrong dtype, rank, device or size."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import torch
from torch import Tensor

# Elements of one result tensor. Beyond this the byte count of an int64 or float64 result overflows int64, which
# is where torch's own size arithmetic breaks.
MAX_ELEMENTS = 2**60


def _host_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - platforms without sysconf
        return None


# Read once at import: torch.compile cannot trace os.sysconf, and the machine's memory does not change.
_HOST_MEMORY = _host_memory_bytes()


def _memory_bytes(device: torch.device) -> int | None:
    """Total memory of `device`: an allocation larger than this can never succeed. None where unknown."""
    if device.type == "cpu":
        return _HOST_MEMORY
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return None


def check_bool(name: str, value: object) -> bool:
    """value itself when it is a bool; 0, 1 and other truthy objects are refused, not converted."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_real(name: str, value: object) -> float:
    """A finite real number (int, float, NumPy scalars; not bool) as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_float(name: str, value: object) -> float:
    """A finite Python int or float (not bool, not NumPy scalars) as a float: the stricter form the attention and
    delta-rule ops have always taken for their scale and softcap."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_tensor(
    name: str,
    x: Any,
    dtypes: tuple[torch.dtype, ...] | None = None,
    *,
    min_dim: int = 0,
    max_dim: int | None = None,
) -> Tensor:
    """x, checked: a Tensor (TypeError otherwise) with a dtype in `dtypes` and min_dim <= x.dim() <= max_dim."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if dtypes is not None and x.dtype not in dtypes:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise ValueError(f"{name} must have dtype in ({allowed}), got {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dims, got shape {tuple(x.shape)}")
    if max_dim is not None and x.dim() > max_dim:
        raise ValueError(f"{name} must have at most {max_dim} dims, got shape {tuple(x.shape)}")
    return x


def check_same_device(first: tuple[str, Tensor], *others: tuple[str, Tensor]) -> None:
    """ValueError naming both arguments when any of `others` is on another device than `first`."""
    name, x = first
    for other_name, y in others:
        if y.device != x.device:
            raise ValueError(f"{other_name} is on {y.device} but {name} is on {x.device}")


def check_result_size(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
    """ValueError naming the argument(s) whose sizes ask for a tensor (a result, or a copy an op must make) that cannot
    exist: over MAX_ELEMENTS elements, or more bytes than `device` has memory. Checked before anything is allocated,
    so a huge or stride-0 expanded input fails with a message instead of an allocator error."""
    if torch.compiler.is_compiling() or not all(isinstance(s, int) for s in shape):
        return  # while tracing: sizes may be symbolic, and the compiled call runs the op, which checks again
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise ValueError(f"{name}: the tensor of shape {tuple(shape)} this call needs has over {MAX_ELEMENTS} elements")
    limit = _memory_bytes(device)
    nbytes = count * dtype.itemsize
    if limit is not None and nbytes > limit:
        raise ValueError(
            f"{name}: the tensor of shape {tuple(shape)} this call needs ({nbytes} bytes of {dtype}) exceeds the "
            f"{limit} bytes of memory on {device}"
        )
