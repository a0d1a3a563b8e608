"""C++ CPU launchers of decode attention (csrc/attention_decode.cpp): torch tensors in, torch tensors out.

Both launchers run the same C++ kernel; they differ only in the schedule from schedule.py that partitions the
LeanTiles (block_n keys of one (sequence, KV head) output tile) among programs, which OpenMP threads pick up in
dynamic order:

- `lean_attention_cpu`: stream-K, `lean_schedule`: num_programs contiguous ranges of equal size (within one tile)
  that cross output-tile boundaries. A range that holds several whole tiles of one sequence reads their KV heads
  together, key by key, one contiguous run of the [.., T, H_kv, D] cache per key.
- `split_kv_attention_cpu`: Flash-Decoding, `split_kv_schedule`: every output tile cut into num_splits pieces, one
  program each, whatever the lengths.

Queries and outputs may be float32, float64, float16 or bfloat16 (the kernel computes in float32: queries are
converted, the output is cast back to q's dtype). Caches are float32 or bfloat16 (widened to float32 in registers);
their rows of D must be contiguous, other strides are read as they are (a cache with a strided D is copied). The
C++ side picks the AVX-512, AVX2 or portable path at run time; `isa` forces one.
"""

from __future__ import annotations

import torch

from accelkit._native import native
from accelkit.kernels._common.checks import check_tensor
from accelkit.kernels.lean_attention.schedule import LeanSchedule, lean_schedule, split_kv_schedule

# Keys per LeanTile on the CPU: 256 keys of one head at D = 128 are 128 KiB of float32 K and 128 KiB of V, so the
# stream-K balance (within one LeanTile per program) is within a quarter of a MiB, and even a 1M-key cache makes
# 4096 tiles per head, a schedule NumPy builds in microseconds.
CPU_BLOCK_N = 256
_Q_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_CACHE_DTYPES = (torch.float32, torch.bfloat16)
_INDEX_DTYPES = (torch.int32, torch.int64)


def default_threads() -> int:
    """The threads the C++ kernel runs on: the OpenMP default of the extension."""
    return int(native().cpu_features()["threads"])


def decode_isa() -> str:
    """The vector path isa='auto' runs on this CPU: 'avx512', 'avx2' or 'scalar'."""
    return native().decode_attention_isa()


def lean_attention_cpu(
    q4: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cache_seqlens: torch.Tensor,
    block_table: torch.Tensor | None,
    scale: float | None,
    num_programs: int | None,
    *,
    block_n: int = CPU_BLOCK_N,
    isa: str = "auto",
    threads: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stream-K decode attention: q4 [B, T_q, H_q, D] (T_q <= 16) over k_cache/v_cache [B, T_cache, H_kv, D] (or
    pages [num_blocks, page_size, H_kv, D] with block_table int32 [B, max_blocks]), cache_seqlens [B] keys per
    sequence including the T_q new tokens -> (out [B, T_q, H_q, D] in q4's dtype, lse float32 [B, H_q, T_q]).

    num_programs None: one program per thread. Query t sees keys j <= cache_seqlens[b] - T_q + t; a query that sees
    no key gets output 0 and LSE -inf.
    """
    args = _Operands(q4, k_cache, v_cache, cache_seqlens, block_table, scale)
    programs = default_threads() if num_programs is None else num_programs
    schedule = lean_schedule(args.lengths, args.h_kv, block_n, programs)
    return args.run(schedule, isa, threads)


def split_kv_attention_cpu(
    q4: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cache_seqlens: torch.Tensor,
    block_table: torch.Tensor | None,
    scale: float | None,
    num_splits: int | None,
    *,
    block_n: int = CPU_BLOCK_N,
    isa: str = "auto",
    threads: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flash-Decoding's fixed split-KV over the same arguments as `lean_attention_cpu`: each output tile cut into
    num_splits pieces. num_splits None: the fewest splits that give every thread a program (ceil(threads / tiles)).
    """
    args = _Operands(q4, k_cache, v_cache, cache_seqlens, block_table, scale)
    if num_splits is None:
        tiles = max(1, args.batch * args.h_kv)
        num_splits = -(-default_threads() // tiles)
    schedule = split_kv_schedule(args.lengths, args.h_kv, block_n, num_splits)
    return args.run(schedule, isa, threads)


def _cpu_tensor(name: str, x, dtypes: tuple[torch.dtype, ...], dims: int) -> torch.Tensor:
    check_tensor(name, x, dtypes, min_dim=dims, max_dim=dims)
    if x.device.type != "cpu":
        raise ValueError(f"{name} must be on the CPU, got device {x.device}")
    return x.detach().resolve_conj().resolve_neg()


def _cache_array(name: str, cache: torch.Tensor):
    """The NumPy view the C++ side reads: float32 as is, bfloat16 as its int16 bit patterns (NumPy has no
    bfloat16); a cache whose rows of D are not contiguous is copied."""
    if cache.shape[-1] > 1 and cache.stride(-1) != 1:
        cache = cache.contiguous()
    return (cache.view(torch.int16) if cache.dtype == torch.bfloat16 else cache).numpy()


class _Operands:
    """The checked, converted arguments of one call; `run` launches the kernel with a schedule."""

    def __init__(self, q4, k_cache, v_cache, cache_seqlens, block_table, scale) -> None:
        q4 = _cpu_tensor("q", q4, _Q_DTYPES, 4)
        k_cache = _cpu_tensor("k_cache", k_cache, _CACHE_DTYPES, 4)
        v_cache = _cpu_tensor("v_cache", v_cache, _CACHE_DTYPES, 4)
        if v_cache.dtype != k_cache.dtype:
            raise ValueError(f"v_cache has dtype {v_cache.dtype} but k_cache has {k_cache.dtype}")
        lengths = _cpu_tensor("cache_seqlens", cache_seqlens, _INDEX_DTYPES, 1)
        if block_table is not None:
            block_table = _cpu_tensor("block_table", block_table, (torch.int32,), 2)
        self.batch, self.t_q, self.h_q, self.head_dim = q4.shape
        self.h_kv = k_cache.shape[2]
        if lengths.shape[0] != self.batch:
            raise ValueError(f"cache_seqlens must have B = {self.batch} entries, got shape {tuple(lengths.shape)}")
        self.lengths = lengths.to(torch.int64).contiguous().numpy()
        if scale is None:
            if self.head_dim == 0:
                raise ValueError("scale: the default D**-0.5 needs head dim D >= 1; pass scale")
            scale = self.head_dim**-0.5
        self.scale = float(scale)
        self.out_dtype = q4.dtype
        self.q = q4 if q4.dtype == torch.float32 else q4.float()
        self.k, self.v = _cache_array("k_cache", k_cache), _cache_array("v_cache", v_cache)
        self.block_table = None if block_table is None else block_table.numpy()

    def run(self, schedule: LeanSchedule, isa: str, threads: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.empty((self.batch, self.t_q, self.h_q, self.head_dim), dtype=torch.float32)
        lse = torch.empty((self.batch, self.h_q, self.t_q), dtype=torch.float32)
        native().decode_attention(
            self.q.numpy(),
            self.k,
            self.v,
            self.lengths,
            self.block_table,
            self.scale,
            schedule.block_n,
            schedule.tile_offsets,
            schedule.program_starts,
            schedule.first_program,
            schedule.num_pieces,
            schedule.piece_offsets,
            out.numpy(),
            lse.numpy(),
            isa,
            0 if threads is None else threads,
        )
        return (out if self.out_dtype == torch.float32 else out.to(self.out_dtype)), lse
