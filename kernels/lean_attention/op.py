"""Decode attention over a KV cache as torch.library ops: Lean Attention (stream-K) and Flash-Decoding's split-KV.

`lean_attention` and `split_kv_attention` take one new token per sequence (q [B, H_q, D]) or a short chunk
(q [B, T_q, H_q, D], T_q <= 16) and a contiguous ([B, T_cache, H_kv, D]) or paged ([num_blocks, page_size, H_kv, D]
with block_table [B, max_blocks]) cache; see kernels/attention/reference.decode_attention for the semantics, which
both follow. CUDA tensors run the Triton kernel of triton_kernels.py, CPU tensors the C++ kernels (cpu.py). Decode
has no backward, so neither op registers autograd.

Arguments are checked in two places, both before any kernel runs: shapes, dtypes and devices in the public
functions (traceable by torch.compile), and the values of cache_seqlens and block_table inside the op, since they
need the data (one device-to-host copy of B + 1 integers; the schedule needs cache_seqlens on the host anyway).
"""

from __future__ import annotations

import math
import operator

import numpy as np
import torch
from torch import Tensor

from accelkit.kernels._common.checks import check_same_device, check_tensor

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# The C++ CPU path reads float32 and bfloat16 caches (cpu.py); the Triton path all of DTYPES.
CPU_DTYPES = (torch.bfloat16, torch.float32)
MAX_HEAD_DIM = 256
# A chunk of at most 16 queries (speculative tokens): the tile's GROUP * T_q rows stay a few row blocks of 16.
MAX_CHUNK = 16
# Programs past the LeanTile count get empty ranges, so a cap changes nothing but the size of the schedule's arrays
# (8 bytes a program): 2^20 programs is 8 MiB. Splits multiply the B * H_kv output tiles, so their cap is smaller;
# flash-attn's own heuristic stops at 128 (../shared/reference/attention.md 4.1).
MAX_PROGRAMS = 2**20
MAX_SPLITS = 1024


def _check_inputs(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, cache_seqlens: Tensor, block_table: Tensor | None
) -> Tensor:
    """The shape, dtype and device checks; returns q as [B, T_q, H_q, D]."""
    check_tensor("q", q, DTYPES, min_dim=3, max_dim=4)
    check_tensor("k_cache", k_cache, min_dim=4, max_dim=4)
    check_tensor("v_cache", v_cache, min_dim=4, max_dim=4)
    check_tensor("cache_seqlens", cache_seqlens, (torch.int32,), min_dim=1, max_dim=1)
    for name, x in (("k_cache", k_cache), ("v_cache", v_cache)):
        if x.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but q has {q.dtype}")
    others = [("k_cache", k_cache), ("v_cache", v_cache), ("cache_seqlens", cache_seqlens)]
    if block_table is not None:
        check_tensor("block_table", block_table, (torch.int32,), min_dim=2, max_dim=2)
        others.append(("block_table", block_table))
    check_same_device(("q", q), *others)
    if q.device.type == "cpu" and q.dtype not in CPU_DTYPES:
        raise ValueError(f"q has dtype {q.dtype}; on the CPU the caches and q must be float32 or bfloat16")
    q4 = q if q.dim() == 4 else q.unsqueeze(1)
    batch, t_q, h_q, d = q4.shape
    if t_q > MAX_CHUNK:
        raise ValueError(f"q holds T_q={t_q} queries per sequence; at most {MAX_CHUNK} are supported")
    if v_cache.shape != k_cache.shape:
        raise ValueError(f"v_cache has shape {tuple(v_cache.shape)} but k_cache has {tuple(k_cache.shape)}")
    if k_cache.shape[-1] != d:
        raise ValueError(f"k_cache has head dim {k_cache.shape[-1]} but q has {d}")
    if not 1 <= d <= MAX_HEAD_DIM:
        raise ValueError(f"q has head dim {d}; supported head dims are 1 to {MAX_HEAD_DIM}")
    h_kv = k_cache.shape[2]
    if h_kv == 0 or h_q % h_kv:
        raise ValueError(f"q has {h_q} heads, not a multiple of k_cache's {h_kv} KV heads")
    if cache_seqlens.shape[0] != batch:
        raise ValueError(f"cache_seqlens has {cache_seqlens.shape[0]} entries but q has batch {batch}")
    if block_table is None and k_cache.shape[0] != batch:
        raise ValueError(f"k_cache has batch {k_cache.shape[0]} but q has {batch} (pass block_table for a paged cache)")
    if block_table is not None:
        if block_table.shape[0] != batch:
            raise ValueError(f"block_table has {block_table.shape[0]} rows but q has batch {batch}")
        if k_cache.shape[1] == 0:
            raise ValueError("k_cache has page size 0")
    return q4


def _check_values(cache_seqlens: Tensor, block_table: Tensor | None, k_cache: Tensor) -> np.ndarray:
    """cache_seqlens within the cache, and every page a sequence reaches inside k_cache; returns the lengths as
    int64 on the host. The table is checked where it lives, and the lengths travel to the host together with the
    index of the first bad entry: one device-to-host copy of B + 1 integers per call."""
    lengths = cache_seqlens.detach().to(torch.int64)
    parts = [lengths]
    if block_table is not None:
        page_size, num_blocks = k_cache.shape[1], k_cache.shape[0]
        pages = (lengths.clamp(min=0) + page_size - 1) // page_size
        columns = torch.arange(block_table.shape[1], device=block_table.device)
        bad = (columns[None, :] < pages[:, None]) & ((block_table < 0) | (block_table >= num_blocks))
        flat = bad.flatten()
        first = flat.to(torch.int64).argmax() if flat.numel() else torch.zeros((), dtype=torch.int64)
        parts.append(torch.where(flat.any(), first, -1).view(1).to(lengths.device))
    host = torch.cat(parts).cpu().numpy()
    lengths_host, first_bad = host[: lengths.numel()], (int(host[-1]) if block_table is not None else -1)
    if lengths_host.size and lengths_host.min() < 0:
        raise ValueError(f"cache_seqlens must be non-negative, got {int(lengths_host.min())}")
    longest = int(lengths_host.max()) if lengths_host.size else 0
    if block_table is None:
        if longest > k_cache.shape[1]:
            raise ValueError(f"cache_seqlens reaches {longest} but the cache holds {k_cache.shape[1]} keys")
        return lengths_host
    capacity = block_table.shape[1] * k_cache.shape[1]
    if longest > capacity:
        raise ValueError(
            f"cache_seqlens reaches {longest} but block_table maps at most {capacity} keys "
            f"({block_table.shape[1]} pages of {k_cache.shape[1]})"
        )
    if first_bad >= 0:
        b, j = divmod(first_bad, block_table.shape[1])
        raise ValueError(
            f"block_table[{b}, {j}] = {int(block_table[b, j])} points outside the {k_cache.shape[0]} blocks of k_cache"
        )
    return lengths_host


def _check_scale(scale: float | None, d: int) -> float:
    if scale is None:
        return d**-0.5
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a float or None, got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return float(scale)


def _check_count(name: str, value: int | None, limit: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or None, got bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}") from None
    if not 1 <= number <= limit:
        raise ValueError(f"{name} must be in [1, {limit}], got {number}")
    return number


def _run(
    kind: str, q4: Tensor, k_cache: Tensor, v_cache: Tensor, cache_seqlens: Tensor, block_table: Tensor | None,
    scale: float, count: int | None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    lengths = _check_values(cache_seqlens, block_table, k_cache)
    if q4.numel() == 0:
        # No query (B, T_q or H_q of 0): nothing to launch; an empty batch would be a schedule of no programs.
        batch, t_q, h_q, _ = q4.shape
        lse = torch.full((batch, h_q, t_q), float("-inf"), dtype=torch.float32, device=q4.device)
        return torch.zeros(q4.shape, dtype=q4.dtype, device=q4.device), lse
    if q4.device.type == "cpu":
        from accelkit.kernels.lean_attention import cpu

        launch = cpu.lean_attention_cpu if kind == "lean" else cpu.split_kv_attention_cpu
        return launch(q4, k_cache, v_cache, cache_seqlens, block_table, scale, count)
    from accelkit.kernels.lean_attention import triton_kernels

    launch = triton_kernels.lean_attention_triton if kind == "lean" else triton_kernels.split_kv_attention_triton
    # The lengths already on the host build the schedule: no second device-to-host copy.
    return launch(q4, k_cache, v_cache, cache_seqlens, block_table, scale, count, lengths=lengths)


def _fake(q4: Tensor) -> tuple[Tensor, Tensor]:
    batch, t_q, h_q, _ = q4.shape
    # The kernels return fresh contiguous tensors whatever q's layout, so the fake does too.
    out = torch.empty(q4.shape, dtype=q4.dtype, device=q4.device)
    return out, torch.empty((batch, h_q, t_q), dtype=torch.float32, device=q4.device)


@torch.library.custom_op("accelkit::lean_attention", mutates_args=())
def _lean_op(
    q4: Tensor, k_cache: Tensor, v_cache: Tensor, cache_seqlens: Tensor, block_table: Tensor | None,
    scale: float, num_programs: int | None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    return _run("lean", q4, k_cache, v_cache, cache_seqlens, block_table, scale, num_programs)


@_lean_op.register_fake
def _(q4, k_cache, v_cache, cache_seqlens, block_table, scale, num_programs):
    return _fake(q4)


@torch.library.custom_op("accelkit::split_kv_attention", mutates_args=())
def _split_kv_op(
    q4: Tensor, k_cache: Tensor, v_cache: Tensor, cache_seqlens: Tensor, block_table: Tensor | None,
    scale: float, num_splits: int | None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    return _run("split", q4, k_cache, v_cache, cache_seqlens, block_table, scale, num_splits)


@_split_kv_op.register_fake
def _(q4, k_cache, v_cache, cache_seqlens, block_table, scale, num_splits):
    return _fake(q4)


def _shape_result(q: Tensor, out4: Tensor, lse3: Tensor, return_lse: bool):
    if q.dim() == 3:
        out4, lse3 = out4.squeeze(1), lse3.squeeze(2)
    return (out4, lse3) if return_lse else out4


def lean_attention(
    q: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    cache_seqlens: Tensor,
    *,
    block_table: Tensor | None = None,
    scale: float | None = None,
    num_programs: int | None = None,
    return_lse: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Lean Attention: decode attention over a KV cache, its LeanTiles split evenly among num_programs programs.

    q [B, H_q, D] (one new token) or [B, T_q, H_q, D] (T_q <= 16); k_cache, v_cache [B, T_cache, H_kv, D], or paged
    [num_blocks, page_size, H_kv, D] with block_table [B, max_blocks] int32 (key j of sequence b in page
    block_table[b, j // page_size], slot j % page_size); cache_seqlens [B] int32 counts each sequence's valid keys,
    the T_q new ones included, and query t sees keys j <= cache_seqlens[b] - T_q + t. H_q is a multiple of H_kv
    (GQA). Returns the output, shaped and typed like q, or (output, lse) with lse float32 [B, H_q] ([B, H_q, T_q]
    for a chunk), natural log; a query that sees no key gets output 0 and lse -inf. scale defaults to D**-0.5;
    num_programs (default: the SM count on CUDA, the thread count on CPU) does not change the result beyond
    rounding.
    """
    q4 = _check_inputs(q, k_cache, v_cache, cache_seqlens, block_table)
    scale = _check_scale(scale, q4.shape[-1])
    out4, lse3 = _lean_op(
        q4,
        k_cache,
        v_cache,
        cache_seqlens,
        block_table,
        scale,
        _check_count("num_programs", num_programs, MAX_PROGRAMS),
    )
    return _shape_result(q, out4, lse3, return_lse)


def split_kv_attention(
    q: Tensor,
    k_cache: Tensor,
    v_cache: Tensor,
    cache_seqlens: Tensor,
    *,
    block_table: Tensor | None = None,
    scale: float | None = None,
    num_splits: int | None = None,
    return_lse: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Flash-Decoding: like `lean_attention`, but every (sequence, KV head) is split into num_splits equal KV
    ranges whatever its length (default: flash-attn's wave-efficiency heuristic), the baseline Lean Attention
    balances better on ragged batches. Same arguments, shapes and results as `lean_attention`."""
    q4 = _check_inputs(q, k_cache, v_cache, cache_seqlens, block_table)
    scale = _check_scale(scale, q4.shape[-1])
    out4, lse3 = _split_kv_op(
        q4, k_cache, v_cache, cache_seqlens, block_table, scale, _check_count("num_splits", num_splits, MAX_SPLITS)
    )
    return _shape_result(q, out4, lse3, return_lse)
