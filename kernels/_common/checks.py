"""Argument checks shared by the public ops and their launchers, so every path refuses a bad input the same way,
before anything runs: TypeError when the Python type is wrong (not a tensor), ValueError naming the argument for
a wrong dtype, rank, device or size."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

# Elements of one result tensor. Beyond this the byte count of an int64 or float64 result overflows int64, which
# is where torch's own size arithmetic breaks.
MAX_ELEMENTS = 2**60


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


def check_result_size(name: str, shape: tuple[int, ...]) -> None:
    """ValueError naming the argument whose sizes give a result of more than MAX_ELEMENTS elements."""
    if all(isinstance(s, int) for s in shape) and math.prod(shape) > MAX_ELEMENTS:
        raise ValueError(f"{name} gives a result of shape {tuple(shape)}, over {MAX_ELEMENTS} elements")
