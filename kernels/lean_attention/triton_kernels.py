"""Triton kernels of Lean Attention (stream-K decode) and, with another schedule, Flash-Decoding's split-KV.

One kernel serves both: program p walks the global LeanTile range the schedule gives it (schedule.py). For each
output tile o = b * H_kv + h it meets, it runs online softmax over its KV blocks for the R = GROUP * T_Q query rows
of that tile (row r is query head h * GROUP + r // T_Q at chunk position r % T_Q), in row blocks of BLOCK_M. A
program that covers a whole tile writes the final output; otherwise it writes its partial (output, LSE) to a piece
slot and increments the tile's counter; the program that sees old == num_pieces[o] - 1 arrives last, so every other
piece is written, and it merges them (the merge of kernels/attention/softmax_state.py) into the output. Nobody
waits on anybody, so any grid size is deadlock-free, in the interpreter (programs run one after another) and on a
GPU with fewer resident CTAs than programs (README.md).

Inside the kernel scores and LSEs are base 2 (scale * log2(e) folded into the scores, exp2 instead of exp); the
partial buffers hold base-2 LSEs and the public LSE is converted back to the natural log.

The cache is addressed through a block table always: a contiguous cache [B, T_cache, H_kv, D] is one page of
T_cache slots per sequence with table [[0], [1], ..., [B - 1]], so one compiled kernel serves both layouts.

DOT_F32 turns both products into fp32 ones: Triton 3.9's interpreter computes bf16 tl.dot wrongly (errors near 1e10
on N(0, 1) inputs when this was written) while bf16 -> fp32 is exact, so the launcher sets it for bf16 under the
interpreter only; compiled kernels keep 16-bit tensor-core products.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import triton
import triton.language as tl
from torch import Tensor

from accelkit.kernels._common.aot import AotSpec
from accelkit.kernels.lean_attention.schedule import LeanSchedule, lean_schedule, split_kv_schedule

LOG2E = 1.4426950408889634
# ln(2): the base-2 LSE of the kernel times LN2 is the natural-log LSE of the public API.
LN2: tl.constexpr = tl.constexpr(0.6931471805599453)


@triton.jit
def _head_dim_mask(BLOCK_D: tl.constexpr, D: tl.constexpr):
    """[BLOCK_D] mask of the real head-dim columns; all-true constant at a power-of-two D, so that masked loads
    along D keep their full contiguity and vectorise."""
    if D == BLOCK_D:
        return tl.full([BLOCK_D], 1, tl.int1)
    else:
        return tl.arange(0, BLOCK_D) < D


@triton.jit
def _piece(
    q_ptr, k_ptr, v_ptr, table_ptr, b, h, r0, lo, hi, seqlen, page_size,
    s_qb, s_qt, s_qh, s_qd, s_kb, s_kt, s_kh, s_kd, s_vb, s_vt, s_vh, s_vd, s_tb,
    qk_scale, GROUP, T_Q,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, D: tl.constexpr, DOT_F32: tl.constexpr,
):  # fmt: skip
    """Online softmax of rows [r0, r0 + BLOCK_M) of tile (b, h) over KV blocks [lo, hi) -> (m, l, acc), base 2."""
    i_m = r0 + tl.arange(0, BLOCK_M)
    i_n = tl.arange(0, BLOCK_N)
    i_d = tl.arange(0, BLOCK_D)
    m_row = i_m < GROUP * T_Q
    m_d = _head_dim_mask(BLOCK_D, D)
    i_t = i_m % T_Q
    i_head = (h * GROUP + i_m // T_Q).to(tl.int64)
    o_q = b * s_qb + i_t.to(tl.int64) * s_qt + i_head * s_qh
    p_q = q_ptr + o_q[:, None] + i_d[None, :] * s_qd
    b_q = tl.load(p_q, mask=m_row[:, None] & m_d[None, :], other=0.0)
    if DOT_F32:
        b_q = b_q.to(tl.float32)
    # Query t sees keys j <= seqlen - T_Q + t (the T_Q new tokens are the last keys of the cache).
    last_key = seqlen - T_Q + i_t
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for blk in range(lo, hi):
        i_j = blk * BLOCK_N + i_n
        m_j = i_j < seqlen
        page = tl.load(table_ptr + b * s_tb + i_j // page_size, mask=m_j, other=0).to(tl.int64)
        slot = (i_j % page_size).to(tl.int64)
        p_k = k_ptr + (page * s_kb + slot * s_kt + h * s_kh)[:, None] + i_d[None, :] * s_kd
        p_v = v_ptr + (page * s_vb + slot * s_vt + h * s_vh)[:, None] + i_d[None, :] * s_vd
        b_k = tl.load(p_k, mask=m_j[:, None] & m_d[None, :], other=0.0)
        b_v = tl.load(p_v, mask=m_j[:, None] & m_d[None, :], other=0.0)
        if DOT_F32:
            b_k = b_k.to(tl.float32)
            b_v = b_v.to(tl.float32)
        # [BLOCK_M, BLOCK_D] @ [BLOCK_D, BLOCK_N] -> [BLOCK_M, BLOCK_N]
        b_s = tl.dot(b_q, tl.trans(b_k), input_precision="ieee") * qk_scale
        visible = m_row[:, None] & (i_j[None, :] <= last_key[:, None])
        b_s = tl.where(visible, b_s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(b_s, 1))
        # A row that has seen no key yet keeps m = -inf; shifting it by 0 gives exp2(-inf) = 0, never -inf - -inf.
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - shift)
        b_p = tl.exp2(b_s - shift[:, None])
        l_i = l_i * alpha + tl.sum(b_p, 1)
        # [BLOCK_M, BLOCK_N] @ [BLOCK_N, BLOCK_D] -> [BLOCK_M, BLOCK_D]
        acc = acc * alpha[:, None] + tl.dot(b_p.to(b_v.dtype), b_v, input_precision="ieee")
        m_i = m_new
    return m_i, l_i, acc


@triton.jit
def _finalize(m_i, l_i, acc):
    """(o, lse2) of a state; rows that saw no key get o = 0 and lse2 = -inf."""
    seen = l_i > 0.0
    denom = tl.where(seen, l_i, 1.0)
    o = tl.where(seen[:, None], acc / denom[:, None], 0.0)
    lse2 = tl.where(seen, m_i + tl.log2(denom), float("-inf"))
    return o, lse2


@triton.jit
def _store_final(
    out_ptr, lse_ptr, o, lse2, b, h, r0, s_ob, s_ot, s_oh, s_od, H_Q, GROUP, T_Q,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    i_m = r0 + tl.arange(0, BLOCK_M)
    i_d = tl.arange(0, BLOCK_D)
    m_row = i_m < GROUP * T_Q
    i_head = (h * GROUP + i_m // T_Q).to(tl.int64)
    i_t = (i_m % T_Q).to(tl.int64)
    p_o = out_ptr + (b * s_ob + i_t * s_ot + i_head * s_oh)[:, None] + i_d[None, :] * s_od
    tl.store(p_o, o.to(out_ptr.dtype.element_ty), mask=m_row[:, None] & _head_dim_mask(BLOCK_D, D)[None, :])
    # lse is [B, H_q, T_q] contiguous, and rows of one tile are consecutive there: (b * H_q + h * GROUP) * T_q + r.
    tl.store(lse_ptr + (b * H_Q + h * GROUP) * T_Q + i_m, lse2 * LN2, mask=m_row)


@triton.jit
def _merge_pieces(
    part_o_ptr, part_lse_ptr, slot0, n_pieces, r0, R,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """Merge n_pieces partials (o, lse2) at slots slot0.. for rows [r0, r0 + BLOCK_M) -> (o, lse2)."""
    i_m = r0 + tl.arange(0, BLOCK_M)
    i_d = tl.arange(0, BLOCK_D)
    m_row = i_m < R
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for i in range(n_pieces):
        slot = (slot0 + i).to(tl.int64)
        # .cg: read from L2, never from a line another SM's write may have left stale in this SM's L1.
        lse_i = tl.load(part_lse_ptr + slot * R + i_m, mask=m_row, other=float("-inf"), cache_modifier=".cg")
        p_o = part_o_ptr + (slot * R + i_m)[:, None] * D + i_d[None, :]
        o_i = tl.load(p_o, mask=m_row[:, None] & _head_dim_mask(BLOCK_D, D)[None, :], other=0.0, cache_modifier=".cg")
        m_new = tl.maximum(m_i, lse_i)
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - shift)
        w = tl.exp2(lse_i - shift)
        l_i = l_i * alpha + w
        acc = acc * alpha[:, None] + o_i * w[:, None]
        m_i = m_new
    return _finalize(m_i, l_i, acc)


@triton.jit
def lean_attention_kernel(
    q_ptr, k_ptr, v_ptr, table_ptr, seqlens_ptr, out_ptr, lse_ptr,
    part_o_ptr, part_lse_ptr, counters_ptr,
    tile_offsets_ptr, program_starts_ptr, first_program_ptr, num_pieces_ptr, piece_offsets_ptr, first_tile_ptr,
    s_qb, s_qt, s_qh, s_qd, s_kb, s_kt, s_kh, s_kd, s_vb, s_vt, s_vh, s_vd, s_tb, s_ob, s_ot, s_oh, s_od,
    page_size, H_Q, H_KV, GROUP, T_Q, qk_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, D: tl.constexpr, UNIT: tl.constexpr,
    DOT_F32: tl.constexpr,
):  # fmt: skip
    """Program p: every piece of its LeanTile range [program_starts[p], program_starts[p + 1]).

    Strides other than the head dim's arrive in units of UNIT elements: UNIT = 16 tells the compiler that every row
    of q, K, V and the output starts 16-element aligned, so their loads and stores vectorise (the JIT infers that
    from strides it sees divisible by 16; the AOT build sees no values). The launcher passes UNIT = 1 otherwise.
    """
    s_qb, s_qt, s_qh = s_qb * UNIT, s_qt * UNIT, s_qh * UNIT
    s_kb, s_kt, s_kh = s_kb * UNIT, s_kt * UNIT, s_kh * UNIT
    s_vb, s_vt, s_vh = s_vb * UNIT, s_vt * UNIT, s_vh * UNIT
    s_ob, s_ot, s_oh = s_ob * UNIT, s_ot * UNIT, s_oh * UNIT
    p = tl.program_id(0)
    g = tl.load(program_starts_ptr + p)
    end = tl.load(program_starts_ptr + p + 1)
    o = tl.load(first_tile_ptr + p)
    R = GROUP * T_Q
    while g < end:
        tile_start = tl.load(tile_offsets_ptr + o)
        tile_end = tl.load(tile_offsets_ptr + o + 1)
        # A tile with no LeanTile (a sequence of length 0) or one already behind g is skipped; o then moves on.
        if tile_end > g:
            piece_end = tl.minimum(end, tile_end)
            b = (o // H_KV).to(tl.int64)
            h = (o % H_KV).to(tl.int64)
            seqlen = tl.load(seqlens_ptr + b)
            n_pieces = tl.load(num_pieces_ptr + o)
            slot = tl.load(piece_offsets_ptr + o) + p - tl.load(first_program_ptr + o)
            for r0 in range(0, R, BLOCK_M):
                m_i, l_i, acc = _piece(
                    q_ptr, k_ptr, v_ptr, table_ptr, b, h, r0, g - tile_start, piece_end - tile_start, seqlen,
                    page_size, s_qb, s_qt, s_qh, s_qd, s_kb, s_kt, s_kh, s_kd, s_vb, s_vt, s_vh, s_vd, s_tb,
                    qk_scale, GROUP, T_Q, BLOCK_M, BLOCK_N, BLOCK_D, D, DOT_F32,
                )  # fmt: skip
                o_r, lse2 = _finalize(m_i, l_i, acc)
                if n_pieces == 1:
                    _store_final(out_ptr, lse_ptr, o_r, lse2, b, h, r0, s_ob, s_ot, s_oh, s_od, H_Q, GROUP, T_Q,
                                 BLOCK_M, BLOCK_D, D)  # fmt: skip
                else:
                    i_m = r0 + tl.arange(0, BLOCK_M)
                    i_d = tl.arange(0, BLOCK_D)
                    m_row = i_m < R
                    row = slot.to(tl.int64) * R + i_m
                    tl.store(part_lse_ptr + row, lse2, mask=m_row)
                    tl.store(
                        part_o_ptr + row[:, None] * D + i_d[None, :],
                        o_r,
                        mask=m_row[:, None] & _head_dim_mask(BLOCK_D, D)[None, :],
                    )
            if n_pieces > 1:
                # Every thread's partial stores complete before the release below publishes them.
                tl.debug_barrier()
                old = tl.atomic_add(counters_ptr + o, 1, sem="acq_rel", scope="gpu")
                if old == n_pieces - 1:
                    # Last to arrive: all other pieces are written. Reset the counter so the buffer is all
                    # zeros again after the launch and can be reused without a memset.
                    tl.atomic_xchg(counters_ptr + o, 0, sem="relaxed", scope="gpu")
                    slot0 = tl.load(piece_offsets_ptr + o)
                    for r0 in range(0, R, BLOCK_M):
                        o_r, lse2 = _merge_pieces(part_o_ptr, part_lse_ptr, slot0, n_pieces, r0, R,
                                                  BLOCK_M, BLOCK_D, D)  # fmt: skip
                        _store_final(out_ptr, lse_ptr, o_r, lse2, b, h, r0, s_ob, s_ot, s_oh, s_od, H_Q, GROUP, T_Q,
                                     BLOCK_M, BLOCK_D, D)  # fmt: skip
            g = piece_end
        o += 1


# --- Launchers ------------------------------------------------------------------------------------------------------

# Rows per block: tl.dot needs at least 16, and a decode tile has GROUP * T_Q rows (8 for Llama-style GQA at T_Q = 1),
# so larger row blocks would mostly multiply padding. Tiles with more rows loop over row blocks.
BLOCK_M = 16
NUM_WARPS = 4
NUM_STAGES = 2


# Bytes of one K (or V) block: 64 keys x 128 dims in fp16. Larger blocks spilled registers in the AOT build (fp32
# at D = 128 with 64 keys: 568 bytes on sm_80), so wider or fp32 rows get fewer keys per LeanTile.
BLOCK_BYTES = 16 * 1024
MAX_BLOCK_N = 64


def block_sizes(head_dim: int, itemsize: int) -> tuple[int, int]:
    """(BLOCK_N, BLOCK_D) for a head dim and element size: BLOCK_D the next power of two (at least 16); BLOCK_N, the
    keys per LeanTile, at most 64 and at most BLOCK_BYTES per block: fp16 64/64/32 and fp32 64/32/16 keys at
    D = 64/128/256."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    return max(16, min(MAX_BLOCK_N, BLOCK_BYTES // (block_d * itemsize))), block_d


def _device_programs(device: torch.device) -> int:
    """Default program count: one per SM on CUDA (every program resident, one wave), the thread count elsewhere."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, torch.get_num_threads())


def split_count(num_tiles: int, max_blocks: int, num_sms: int, max_splits: int = 128) -> int:
    """Flash-Decoding's split-count heuristic (flash-attn csrc/flash_attn/flash_api.cpp num_splits_heuristic,
    ../shared/reference/attention.md 4.1): no split when the tiles alone fill 80% of the SMs, else the smallest
    split count whose wave efficiency is within 85% of the best, skipping counts that give the same blocks per split."""
    if num_tiles >= 0.8 * num_sms or max_blocks <= 1:
        return 1
    limit = min(max_splits, num_sms, max_blocks)

    def efficiency(s: int) -> float:
        waves = num_tiles * s / num_sms
        return waves / math.ceil(waves)

    def eligible(s: int) -> bool:
        return s == 1 or math.ceil(max_blocks / s) != math.ceil(max_blocks / (s - 1))

    best = max(efficiency(s) for s in range(1, limit + 1) if eligible(s))
    return next(s for s in range(1, limit + 1) if eligible(s) and efficiency(s) >= 0.85 * best)


def _paging(k_cache: Tensor, block_table: Tensor | None, batch: int) -> tuple[Tensor, int]:
    """(table, page_size): the paged cache's own, or one page of T_cache slots per sequence for a contiguous one."""
    if block_table is not None:
        return block_table, k_cache.shape[1]
    table = torch.arange(batch, dtype=torch.int32, device=k_cache.device).view(batch, 1)
    return table, max(1, k_cache.shape[1])


def _schedule_tensors(schedule: LeanSchedule, device: torch.device) -> list[Tensor]:
    names = ("tile_offsets", "program_starts", "first_program", "num_pieces", "piece_offsets", "program_first_tile")
    arrays = [np.asarray(getattr(schedule, n), dtype=np.int32) for n in names]
    # One host-to-device copy; each array starts on a 16-byte boundary (4 int32), as the AOT build assumes.
    # An empty array still gets 4 entries, so its pointer stays inside the buffer.
    padded = [np.pad(a, (0, (-len(a)) % 4 if len(a) else 4)) for a in arrays]
    flat = torch.from_numpy(np.concatenate(padded)).to(device)
    views, start = [], 0
    for a, pad in zip(arrays, padded, strict=True):
        views.append(flat[start : start + max(len(a), 1)])
        start += len(pad)
    return views


def run_schedule(
    q4: Tensor, k_cache: Tensor, v_cache: Tensor, cache_seqlens: Tensor, block_table: Tensor | None,
    scale: float, schedule: LeanSchedule,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Launch one program per schedule range: q4 [B, T_q, H_q, D] -> (out4 like q4, lse3 float32 [B, H_q, T_q]).

    Arguments are checked by the op (op.py); sequences of length 0 keep the zeros / -inf they are allocated with,
    since no program visits them.
    """
    batch, t_q, h_q, d = q4.shape
    h_kv = k_cache.shape[2]
    block_n, block_d = block_sizes(d, q4.element_size())
    if schedule.block_n != block_n:
        raise ValueError(f"schedule.block_n is {schedule.block_n}, the kernel's LeanTile for D={d} is {block_n}")
    device = q4.device
    out = torch.zeros(q4.shape, dtype=q4.dtype, device=device)
    lse = torch.full((batch, h_q, t_q), float("-inf"), dtype=torch.float32, device=device)
    if schedule.total_lean_tiles == 0 or q4.numel() == 0:
        return out, lse
    rows = (h_q // h_kv) * t_q
    pieces = max(schedule.total_pieces, 1)
    part_o = torch.empty((pieces, rows, d), dtype=torch.float32, device=device)
    part_lse = torch.empty((pieces, rows), dtype=torch.float32, device=device)
    counters = torch.zeros(max(schedule.num_tiles, 1), dtype=torch.int32, device=device)
    table, page_size = _paging(k_cache, block_table, batch)
    seqlens = cache_seqlens.to(device=device, dtype=torch.int32)
    strides = [list(x.stride()) for x in (q4, k_cache, v_cache, out)]
    unit = ALIGN if all(s % ALIGN == 0 for st in strides for s in st[:3]) else 1
    for st in strides:
        st[:3] = [s // unit for s in st[:3]]
    q_s, k_s, v_s, o_s = strides
    lean_attention_kernel[(schedule.num_programs,)](
        q4, k_cache, v_cache, table, seqlens, out, lse, part_o, part_lse, counters,
        *_schedule_tensors(schedule, device),
        *q_s, *k_s, *v_s, table.stride(0), *o_s,
        page_size, h_q, h_kv, h_q // h_kv, t_q, scale * LOG2E,
        BLOCK_M=BLOCK_M, BLOCK_N=block_n, BLOCK_D=block_d, D=d, UNIT=unit,
        DOT_F32=q4.dtype == torch.bfloat16 and _interpreted(), num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    return out, lse


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _lengths(cache_seqlens: Tensor) -> np.ndarray:
    # The schedule is built on the host: one device-to-host copy of B int32 per call.
    return cache_seqlens.detach().to("cpu", torch.int64).numpy()


def lean_attention_triton(
    q4: Tensor, k_cache: Tensor, v_cache: Tensor, cache_seqlens: Tensor, block_table: Tensor | None,
    scale: float, num_programs: int | None, *, lengths: np.ndarray | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Lean Attention: the stream-K schedule over num_programs programs (default: one per SM). `lengths`, when
    given, is cache_seqlens already on the host."""
    programs = num_programs if num_programs is not None else _device_programs(q4.device)
    block_n = block_sizes(q4.shape[-1], q4.element_size())[0]
    lengths = _lengths(cache_seqlens) if lengths is None else lengths
    schedule = lean_schedule(lengths, k_cache.shape[2], block_n, programs)
    return run_schedule(q4, k_cache, v_cache, cache_seqlens, block_table, scale, schedule)


def split_kv_attention_triton(
    q4: Tensor, k_cache: Tensor, v_cache: Tensor, cache_seqlens: Tensor, block_table: Tensor | None,
    scale: float, num_splits: int | None, *, lengths: np.ndarray | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Flash-Decoding: every output tile split into num_splits ranges (default: flash-attn's heuristic)."""
    lengths = _lengths(cache_seqlens) if lengths is None else lengths
    h_kv = k_cache.shape[2]
    block_n = block_sizes(q4.shape[-1], q4.element_size())[0]
    max_blocks = int(-(-lengths.max() // block_n)) if lengths.size else 0
    if num_splits is None:
        # flash-attn calls its heuristic with twice the SM count (../shared/reference/attention.md 4.1).
        num_splits = split_count(len(lengths) * h_kv, max_blocks, 2 * _device_programs(q4.device))
    # Splits past the longest tile's LeanTile count would only add empty programs (and schedule entries).
    num_splits = max(1, min(num_splits, max_blocks))
    schedule = split_kv_schedule(lengths, h_kv, block_n, num_splits)
    return run_schedule(q4, k_cache, v_cache, cache_seqlens, block_table, scale, schedule)


UNIT_STRIDES = ("s_qd", "s_kd", "s_vd", "s_od")
# Row strides are passed in units of 16 elements when they allow it (32 bytes in fp16: one vectorised 16-byte load
# needs 8 fp16 elements; 16 also covers fp32's 4 and a 64-byte line at fp32).
ALIGN = 16


def _spec(dtype: str, head_dim: int) -> AotSpec:
    block_n, block_d = block_sizes(head_dim, {"fp16": 2, "bf16": 2, "fp32": 4}[dtype])
    constexprs = {
        "BLOCK_M": BLOCK_M,
        "BLOCK_N": block_n,
        "BLOCK_D": block_d,
        "D": head_dim,
        "UNIT": ALIGN,
        "DOT_F32": False,
    }
    # The JIT turns an int argument equal to 1 into a constant; the head dim of q, the caches and the output is
    # contiguous in every launch the op makes (it copies otherwise), so the build sees unit strides too.
    constexprs.update({name: 1 for name in UNIT_STRIDES})
    float32 = ("lse_ptr", "part_o_ptr", "part_lse_ptr")
    signature = {}
    for name in lean_attention_kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in ("q_ptr", "k_ptr", "v_ptr", "out_ptr"):
            signature[name] = f"*{dtype}"
        elif name in float32:
            signature[name] = "*fp32"
        elif name.endswith("_ptr"):
            signature[name] = "*i32"
        else:
            signature[name] = "fp32" if name == "qk_scale" else "i32"
    return AotSpec(
        lean_attention_kernel,
        signature,
        constexprs,
        num_warps=NUM_WARPS,
        num_stages=NUM_STAGES,
        name=f"lean_attention_kernel[{dtype},d{head_dim}]",
    )


AOT_SPECS = [_spec(dtype, d) for dtype in ("fp16", "bf16", "fp32") for d in (64, 128, 256)]
