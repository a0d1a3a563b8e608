"""Argument checks for delta_rule, shared by the public op and the launchers, so every path refuses a bad input the
same way before any kernel runs: TypeError for a wrong Python type, ValueError naming the argument otherwise.

`check_args` reads only metadata, so it runs on fake tensors while torch.compile traces; `check_cu_seqlens_values`
reads the prefix sums and runs inside the op's implementation, where tensors are real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from accelkit.kernels._common.checks import check_bool, check_float, check_same_device, check_tensor
from accelkit.kernels._common.words import as_int

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# fla's limit (chunk_delta_h.py asserts K <= 256): the Triton state tile holds all of K.
MAX_HEAD_DIM = 256
CHUNK_SIZES = (16, 32, 64)
MODES = ("chunk", "recurrent")


@dataclass(frozen=True)
class Problem:
    """One call's sizes and knobs, checked. batch is N: B, or the number of packed sequences."""

    batch: int
    seqlen: int
    heads: int
    key_dim: int
    value_dim: int
    scale: float
    chunk_size: int
    mode: str
    varlen: bool
    gated: bool
    use_qk_l2norm: bool


def _check_qkv(q: Any, k: Any, v: Any) -> None:
    check_tensor("q", q, DTYPES)
    for name, x in (("k", k), ("v", v)):
        check_tensor(name, x)
        if x.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but q has {q.dtype}; q, k and v must share one dtype")
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.dim() != 4:
            raise ValueError(f"{name} must be [B, T, H, D], got shape {tuple(x.shape)}")
    check_same_device(("q", q), ("k", k), ("v", v))
    if q.shape != k.shape:
        raise ValueError(f"q and k must have one shape [B, T, H, K]; got {tuple(q.shape)} and {tuple(k.shape)}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v must share B, T, H with k; got v {tuple(v.shape)} and k {tuple(k.shape)}")
    for name, d in (("K (k.shape[-1])", k.shape[-1]), ("V (v.shape[-1])", v.shape[-1])):
        if not 1 <= d <= MAX_HEAD_DIM:
            raise ValueError(f"head dim {name} = {d} must lie in [1, {MAX_HEAD_DIM}]")


def _check_per_token(name: str, x: Any, q: Tensor) -> None:
    check_tensor(name, x, DTYPES)
    if tuple(x.shape) != tuple(q.shape[:3]):
        raise ValueError(f"{name} must be [B, T, H] = {tuple(q.shape[:3])}, got shape {tuple(x.shape)}")
    check_same_device(("q", q), (name, x))


def _check_cu(cu: Any, q: Tensor) -> int:
    check_tensor("cu_seqlens", cu, (torch.int64, torch.int32))
    if cu.dim() != 1 or cu.shape[0] < 2:
        raise ValueError(f"cu_seqlens must be 1-D prefix sums [N + 1] with N >= 1, got shape {tuple(cu.shape)}")
    check_same_device(("q", q), ("cu_seqlens", cu))
    if q.shape[0] != 1:
        raise ValueError(f"with cu_seqlens the sequences are packed along T, so B must be 1; got B = {q.shape[0]}")
    return cu.shape[0] - 1


def check_args(
    q: Any,
    k: Any,
    v: Any,
    beta: Any,
    *,
    g: Any = None,
    scale: Any = None,
    initial_state: Any = None,
    output_final_state: Any = False,
    cu_seqlens: Any = None,
    chunk_size: Any = 64,
    use_qk_l2norm: Any = False,
    mode: Any = "chunk",
) -> Problem:
    """Checks every argument that needs no data read; returns the call's Problem."""
    check_bool("output_final_state", output_final_state)
    check_bool("use_qk_l2norm", use_qk_l2norm)
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, got {type(mode).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    chunk_size = as_int(chunk_size, "chunk_size")
    if chunk_size not in CHUNK_SIZES:
        raise ValueError(f"chunk_size must be one of {CHUNK_SIZES}, got {chunk_size}")
    _check_qkv(q, k, v)
    _check_per_token("beta", beta, q)
    if g is not None:
        _check_per_token("g", g, q)
    batch = q.shape[0]
    if cu_seqlens is not None:
        batch = _check_cu(cu_seqlens, q)
    kd, vd = k.shape[-1], v.shape[-1]
    if initial_state is not None:
        check_tensor("initial_state", initial_state, (torch.float32,))
        want = (batch, q.shape[2], kd, vd)
        if tuple(initial_state.shape) != want:
            raise ValueError(f"initial_state must be [N, H, K, V] = {want}, got shape {tuple(initial_state.shape)}")
        check_same_device(("q", q), ("initial_state", initial_state))
    scale = kd**-0.5 if scale is None else check_float("scale", scale)
    return Problem(batch, q.shape[1], q.shape[2], kd, vd, scale, chunk_size, mode, cu_seqlens is not None,
                   g is not None, use_qk_l2norm)  # fmt: skip


def check_cu_seqlens_values(cu: Tensor, total: int) -> list[int]:
    """The prefix sums as a list (a device sync on CUDA): ValueError unless they start at 0, never decrease and end
    at the packed length T. Empty sequences are allowed; their final state is their initial state."""
    values = [int(c) for c in cu.tolist()]
    if values[0] != 0 or any(b < a for a, b in zip(values[:-1], values[1:], strict=True)) or values[-1] != total:
        raise ValueError(f"cu_seqlens must start at 0, never decrease and end at T = {total}; got {values}")
    return values
