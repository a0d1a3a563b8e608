"""Argument checks for flash_attention, shared by the public op, the CPU path and the Triton launchers, so every path
refuses a bad input the same way before any kernel runs (TypeError for a wrong Python type, ValueError naming the
argument for a wrong dtype, rank, device, size or value).

`check_args` looks only at metadata (dtypes, shapes, devices), so it also runs on fake tensors while torch.compile
traces; `check_cu_seqlens_values` reads the prefix sums themselves, so the op runs it inside its implementation,
where the tensors are real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from accelkit.kernels._common.checks import check_float, check_same_device, check_tensor
from accelkit.kernels._common.words import as_int

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# flash-attn's limit (flash_api.cpp checks head_size <= 256); 16 is the smallest K of a 16-bit tensor-core dot.
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 256


@dataclass(frozen=True)
class Problem:
    """One call's sizes and knobs, checked. Causal is folded into the window: causal means right side 0.

    batch, max_q and max_k are B, T_q and T_k for a dense call; for a packed call batch is the number of sequences
    and max_q / max_k the longest sequence (max_seqlen_*, or 0 until the prefix sums have been read).
    """

    varlen: bool
    batch: int
    max_q: int
    max_k: int
    heads_q: int
    heads_kv: int
    head_dim: int
    scale: float
    left: int
    right: int
    softcap: float

    @property
    def group(self) -> int:
        return self.heads_q // self.heads_kv


def check_window(window: Any, causal: bool) -> tuple[int, int]:
    """(left, right) with -1 for unbounded; causal cuts the right side at the diagonal (right = 0)."""
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise TypeError(f"window must be a pair (left, right) of ints, got {window!r}")
    left, right = (as_int(w, "window") for w in window)
    if left < -1 or right < -1:
        raise ValueError(f"window sides must be >= 0, or -1 for unbounded; got {tuple(window)}")
    return left, 0 if causal else right


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, rank: int) -> None:
    check_tensor("q", q, DTYPES)
    for name, x in (("k", k), ("v", v)):
        check_tensor(name, x)
        if x.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but q has {q.dtype}; q, k and v must share one dtype")
    check_same_device(("q", q), ("k", k), ("v", v))
    layout = "[B, T, H, D]" if rank == 4 else "packed [total, H, D] (cu_seqlens given)"
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.dim() != rank:
            raise ValueError(f"{name} must be {layout}, got shape {tuple(x.shape)}")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k and v must agree on every axis but the head dim; got {tuple(k.shape)}, {tuple(v.shape)}")
    d = q.shape[-1]
    if k.shape[-1] != d or v.shape[-1] != d:
        raise ValueError(f"q, k and v must share the head dim; got {q.shape[-1]}, {k.shape[-1]}, {v.shape[-1]}")
    if not MIN_HEAD_DIM <= d <= MAX_HEAD_DIM:
        raise ValueError(f"head dim D = {d} (q.shape[-1]) must lie in [{MIN_HEAD_DIM}, {MAX_HEAD_DIM}]")
    h_q, h_kv = q.shape[-2], k.shape[-2]
    if h_kv < 1 or h_q % h_kv:
        raise ValueError(f"H_q = {h_q} (q) must be a multiple of H_kv = {h_kv} (k), and H_kv >= 1")


def _check_cu(name: str, cu: Any, q: Tensor) -> Tensor:
    check_tensor(name, cu)
    if cu.dtype != torch.int32:
        raise ValueError(f"{name} must be int32 prefix sums [B + 1], got dtype {cu.dtype}")
    if cu.dim() != 1 or cu.shape[0] < 1:
        raise ValueError(f"{name} must be 1-D [B + 1], got shape {tuple(cu.shape)}")
    if cu.device != q.device:
        raise ValueError(f"{name} is on {cu.device} but q is on {q.device}")
    return cu


def _check_max(name: str, value: Any) -> int:
    if value is None:
        return 0
    value = as_int(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_args(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    scale: Any = None,
    window: Any = (-1, -1),
    softcap: Any = 0.0,
    cu_seqlens_q: Any = None,
    cu_seqlens_k: Any = None,
    max_seqlen_q: Any = None,
    max_seqlen_k: Any = None,
) -> Problem:
    """Checks every argument that needs no data read; returns the call's Problem."""
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    left, right = check_window(window, causal)
    softcap = check_float("softcap", softcap)
    if softcap < 0:
        raise ValueError(f"softcap must be >= 0 (0 disables it), got {softcap}")
    varlen = cu_seqlens_q is not None or cu_seqlens_k is not None
    if varlen and (cu_seqlens_q is None or cu_seqlens_k is None):
        missing = "cu_seqlens_k" if cu_seqlens_k is None else "cu_seqlens_q"
        raise ValueError(f"{missing} is missing: cu_seqlens_q and cu_seqlens_k must be given together")
    if not varlen and (max_seqlen_q is not None or max_seqlen_k is not None):
        raise ValueError("max_seqlen_q / max_seqlen_k go with cu_seqlens_q / cu_seqlens_k, which were not given")
    _check_qkv(q, k, v, 3 if varlen else 4)
    d = q.shape[-1]
    scale = d**-0.5 if scale is None else check_float("scale", scale)
    if varlen:
        cu_q, cu_k = _check_cu("cu_seqlens_q", cu_seqlens_q, q), _check_cu("cu_seqlens_k", cu_seqlens_k, q)
        if cu_q.shape != cu_k.shape:
            raise ValueError(f"cu_seqlens_q has {cu_q.shape[0] - 1} sequences but cu_seqlens_k has {cu_k.shape[0] - 1}")
        batch, max_q, max_k = (
            cu_q.shape[0] - 1,
            _check_max("max_seqlen_q", max_seqlen_q),
            _check_max("max_seqlen_k", max_seqlen_k),
        )
    else:
        if not q.shape[0] == k.shape[0]:
            raise ValueError(f"q and k must share the batch size B; got {q.shape[0]} and {k.shape[0]}")
        batch, max_q, max_k = q.shape[0], q.shape[1], k.shape[1]
    return Problem(varlen, batch, max_q, max_k, q.shape[-2], k.shape[-2], d, scale, left, right, softcap)


def _check_prefix(name: str, cu: Tensor, total: int, given_max: int, max_name: str) -> int:
    values = cu.tolist()
    if values[0] != 0 or any(b < a for a, b in zip(values[:-1], values[1:], strict=True)) or values[-1] != total:
        raise ValueError(f"{name} must start at 0, never decrease and end at {total}; got {values}")
    longest = max((b - a for a, b in zip(values[:-1], values[1:], strict=True)), default=0)
    if given_max and given_max < longest:
        raise ValueError(f"{max_name} = {given_max} is shorter than the longest sequence of {name} ({longest})")
    return longest


def check_cu_seqlens_values(problem: Problem, cu_q: Tensor, cu_k: Tensor, total_q: int, total_k: int) -> Problem:
    """Reads the prefix sums (a device sync on CUDA): ValueError unless each starts at 0, never decreases and ends at
    its packed length, or when a given max_seqlen is shorter than the longest sequence. Returns the Problem with
    the true longest lengths."""
    max_q = _check_prefix("cu_seqlens_q", cu_q, total_q, problem.max_q, "max_seqlen_q")
    max_k = _check_prefix("cu_seqlens_k", cu_k, total_k, problem.max_k, "max_seqlen_k")
    return Problem(**{**problem.__dict__, "max_q": max_q, "max_k": max_k})
