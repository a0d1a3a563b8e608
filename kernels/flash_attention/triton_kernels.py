"""FlashAttention-2 in Triton: forward (online softmax) and backward (recompute), dense or packed varlen.

Conventions are those of kernels/attention/README.md: layout [B, T, H, D] (packed [total, H, D] with int32 prefix
sums), masks aligned bottom-right, query head h reads kv head h // G (G = H_q // H_kv), natural-log LSE float32
[B, H_q, T_q] ([H_q, total_q] packed), a row that sees no key gives output 0 and LSE -inf.

Inside the kernels scores are in base 2: s2 = s * log2(e), so exp(s - m) = exp2(s2 - m2), the cheaper instruction.
The running sum l is the same number in both bases; the LSE leaves as (m2 + log2(l)) * ln(2) and the backward reads
it back as lse * log2(e) (README "LSE: natural log at every boundary").

Causal is the window's right side cut at the diagonal, so the kernels see only (left, right), -1 = unbounded. A
program visits only the key blocks (or query blocks) its window can reach, and masks inside each block.

Backward, FA2's scheme (Dao 2023): a preprocessing kernel writes delta = rowsum(dO * O); one kernel per key block
accumulates dK and dV over every query block and every query head of its GQA group (no atomics: each program owns
its rows of dK and dV), and one kernel per query block accumulates dQ. P is recomputed from the stored LSE.
Head dims that are not a power of two (96, 160) run in a padded BLOCK_D with the extra columns masked to 0.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from accelkit.kernels._common.aot import AotSpec
from accelkit.kernels.flash_attention.args import Problem, check_args, check_cu_seqlens_values

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453


@triton.jit
def _tanh(x):
    """tanh without libdevice (the interpreter cannot call it). Below |x| = 0.125 the odd Taylor series to x^7
    (next term 62/2835 |x|^9 < 2e-10 |x|); above, (1 - e) / (1 + e) with e = exp(-2|x|), where 1 - e >= 0.22, so
    the subtraction loses no digits to cancellation."""
    a = tl.abs(x)
    e = tl.exp(-2.0 * a)
    big = (1.0 - e) / (1.0 + e)
    a2 = a * a
    small = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0))))
    t = tl.where(a < 0.125, small, big)
    return tl.where(x < 0, -t, t)


@triton.jit
def _dot(a, b):
    """tl.dot, in IEEE fp32 for fp32 operands: TF32 (the default) keeps 10 mantissa bits, not what fp32 callers ask
    for. 16-bit operands use the tensor cores as they are, accumulating in fp32."""
    if a.dtype == tl.float32:
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b)


@triton.jit
def _scores(b_qk, scale, softcap, SOFTCAP: tl.constexpr):
    """(s2, t): base-2 scores of raw dot products, and tanh(scale * qk / softcap) for the backward (0 without)."""
    if SOFTCAP:
        b_t = _tanh(b_qk * (scale / softcap))
        return b_t * (softcap * 1.4426950408889634), b_t
    else:
        return b_qk * (scale * 1.4426950408889634), b_qk * 0.0


@triton.jit
def _visible(o_i, o_j, len_q, len_k, left, right):
    """Query i sees key j (o_i, o_j broadcast against each other): both in range, and j within the window around
    the bottom-right diagonal i + len_k - len_q."""
    b_diag = o_i + (len_k - len_q)
    b_vis = (o_i < len_q) & (o_j < len_k)
    b_vis = b_vis & ((left < 0) | (o_j >= b_diag - left))
    b_vis = b_vis & ((right < 0) | (o_j <= b_diag + right))
    return b_vis


@triton.jit
def _sequence(cu_ptr, i_b, t, VARLEN: tl.constexpr):
    """(first row, length) of sequence i_b: from the prefix sums when packed, else (0, t)."""
    if VARLEN:
        bos = tl.load(cu_ptr + i_b)
        return bos.to(tl.int64), tl.load(cu_ptr + i_b + 1) - bos
    else:
        return tl.zeros((), dtype=tl.int64), t


@triton.jit
def _key_range(m0, len_m, len_q, len_k, left, right):
    """[lo, hi): the keys that queries m0 .. m0 + len_m - 1 can see."""
    diag = len_k - len_q
    lo = tl.where(left >= 0, tl.maximum(m0 + diag - left, 0), 0)
    last = tl.minimum(m0 + len_m, len_q) - 1
    hi = tl.where(right >= 0, tl.minimum(last + diag + right + 1, len_k), len_k)
    return lo, hi


@triton.jit
def _rows(p_base, row0, stride_t, BLOCK: tl.constexpr, BLOCK_D: tl.constexpr):
    """Pointers [BLOCK, BLOCK_D] to rows row0 .. row0 + BLOCK - 1 of one head: int64 arithmetic for the first row,
    int32 inside the block, which keeps the 2-D offsets in one register each (the launcher keeps
    BLOCK x stride_t under 2**31)."""
    o_r = tl.arange(0, BLOCK)
    o_d = tl.arange(0, BLOCK_D)
    return p_base + row0.to(tl.int64) * stride_t + (o_r[:, None] * stride_t + o_d[None, :])


@triton.jit
def flash_fwd_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, cu_q_ptr, cu_k_ptr,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_kt, stride_kh, stride_vb, stride_vt, stride_vh,
    stride_ob, stride_ot, stride_oh, stride_lb, stride_lh,
    t_q, t_k, h_q, group, scale, softcap, left, right,
    VARLEN: tl.constexpr, SOFTCAP: tl.constexpr, UNIT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i_m = tl.program_id(0)
    i_bh = tl.program_id(1)
    i_b = (i_bh // h_q).to(tl.int64)
    i_h = (i_bh % h_q).to(tl.int64)
    i_hk = i_h // group
    bos_q, len_q = _sequence(cu_q_ptr, i_b, t_q, VARLEN)
    bos_k, len_k = _sequence(cu_k_ptr, i_b, t_k, VARLEN)
    m0 = i_m * BLOCK_M
    if m0 >= len_q:
        return
    o_m = m0 + tl.arange(0, BLOCK_M)
    m_m = o_m < len_q
    m_d = tl.arange(0, BLOCK_D) < HEAD_DIM
    p_q = _rows(
        q_ptr + i_b * (stride_qb * UNIT) + i_h * (stride_qh * UNIT), bos_q + m0, stride_qt * UNIT, BLOCK_M, BLOCK_D
    )
    b_q = tl.load(p_q, mask=m_m[:, None] & m_d[None, :], other=0.0)  # [BM, BD]
    p_kh = k_ptr + i_b * (stride_kb * UNIT) + i_hk * (stride_kh * UNIT)
    p_vh = v_ptr + i_b * (stride_vb * UNIT) + i_hk * (stride_vh * UNIT)

    b_m = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    b_l = tl.zeros((BLOCK_M,), dtype=tl.float32)
    b_acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    lo, hi = _key_range(m0, BLOCK_M, len_q, len_k, left, right)
    for n0 in range(lo, hi, BLOCK_N):
        o_n = n0 + tl.arange(0, BLOCK_N)
        m_kv = (o_n < len_k)[:, None] & m_d[None, :]
        b_k = tl.load(_rows(p_kh, bos_k + n0, stride_kt * UNIT, BLOCK_N, BLOCK_D), mask=m_kv, other=0.0)  # [BN, BD]
        b_s, _ = _scores(_dot(b_q, tl.trans(b_k)), scale, softcap, SOFTCAP)  # [BM, BD] x [BD, BN] -> [BM, BN]
        b_s = tl.where(_visible(o_m[:, None], o_n[None, :], len_q, len_k, left, right), b_s, float("-inf"))
        b_m_new = tl.maximum(b_m, tl.max(b_s, axis=1))
        # A row that has seen no key yet keeps m = -inf; shifting it by 0 gives exp2(-inf) = 0, never -inf - -inf.
        b_shift = tl.where(b_m_new == float("-inf"), 0.0, b_m_new)
        b_p = tl.exp2(b_s - b_shift[:, None])  # [BM, BN]
        b_alpha = tl.exp2(b_m - b_shift)
        b_l = b_l * b_alpha + tl.sum(b_p, axis=1)
        b_v = tl.load(_rows(p_vh, bos_k + n0, stride_vt * UNIT, BLOCK_N, BLOCK_D), mask=m_kv, other=0.0)  # [BN, BD]
        b_acc = b_acc * b_alpha[:, None] + _dot(b_p.to(b_v.dtype), b_v)  # [BM, BN] x [BN, BD] -> [BM, BD]
        b_m = b_m_new

    seen = b_l > 0
    b_l1 = tl.where(seen, b_l, 1.0)
    b_o = b_acc / b_l1[:, None]
    b_lse = tl.where(seen, (b_m + tl.log2(b_l1)) * 0.6931471805599453, float("-inf"))
    p_o = _rows(
        o_ptr + i_b * (stride_ob * UNIT) + i_h * (stride_oh * UNIT), bos_q + m0, stride_ot * UNIT, BLOCK_M, BLOCK_D
    )
    tl.store(p_o, b_o.to(o_ptr.dtype.element_ty), mask=m_m[:, None] & m_d[None, :])
    p_lse = lse_ptr + (i_b * stride_lb + i_h * stride_lh + bos_q + m0) + tl.arange(0, BLOCK_M)
    tl.store(p_lse, b_lse, mask=m_m)


@triton.jit
def flash_bwd_preprocess_kernel(
    o_ptr, do_ptr, dlse_ptr, delta_ptr, cu_q_ptr,
    stride_ob, stride_ot, stride_oh, stride_dob, stride_dot, stride_doh, stride_lb, stride_lh,
    t_q, h_q,
    VARLEN: tl.constexpr, HAS_DLSE: tl.constexpr, UNIT: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """delta = rowsum(dO * O) - dLSE, fp32, laid out like the LSE. The gradient of the LSE enters here because
    d lse_i / d s_ij = P_ij, so dS = P * (dP - delta + dlse)."""
    i_m = tl.program_id(0)
    i_bh = tl.program_id(1)
    i_b = (i_bh // h_q).to(tl.int64)
    i_h = (i_bh % h_q).to(tl.int64)
    bos_q, len_q = _sequence(cu_q_ptr, i_b, t_q, VARLEN)
    m0 = i_m * BLOCK_M
    if m0 >= len_q:
        return
    m_m = m0 + tl.arange(0, BLOCK_M) < len_q
    m_od = m_m[:, None] & (tl.arange(0, BLOCK_D) < HEAD_DIM)[None, :]
    p_o = _rows(
        o_ptr + i_b * (stride_ob * UNIT) + i_h * (stride_oh * UNIT), bos_q + m0, stride_ot * UNIT, BLOCK_M, BLOCK_D
    )
    p_do = _rows(
        do_ptr + i_b * (stride_dob * UNIT) + i_h * (stride_doh * UNIT), bos_q + m0, stride_dot * UNIT, BLOCK_M, BLOCK_D
    )
    b_o = tl.load(p_o, mask=m_od, other=0.0)  # [BM, BD]
    b_do = tl.load(p_do, mask=m_od, other=0.0)  # [BM, BD]
    b_delta = tl.sum(b_o.to(tl.float32) * b_do.to(tl.float32), axis=1)  # [BM]
    o_l = (i_b * stride_lb + i_h * stride_lh + bos_q + m0) + tl.arange(0, BLOCK_M)
    if HAS_DLSE:
        b_delta -= tl.load(dlse_ptr + o_l, mask=m_m, other=0.0)
    tl.store(delta_ptr + o_l, b_delta, mask=m_m)


@triton.jit
def _lse2(lse_ptr, offsets, mask):
    """The stored natural-log LSE in base 2; +inf for a row that saw no key, so exp2(s2 - lse2) = 0 there."""
    b_lse = tl.load(lse_ptr + offsets, mask=mask, other=0.0)
    return tl.where(b_lse == float("-inf"), float("inf"), b_lse * 1.4426950408889634)


@triton.jit
def flash_bwd_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr, cu_q_ptr, cu_k_ptr,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_kt, stride_kh, stride_vb, stride_vt, stride_vh,
    stride_dob, stride_dot, stride_doh, stride_lb, stride_lh,
    stride_dkb, stride_dkt, stride_dkh,
    t_q, t_k, h_kv, group, scale, softcap, left, right,
    VARLEN: tl.constexpr, SOFTCAP: tl.constexpr, UNIT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """dK, dV of BLOCK_N keys of one kv head, summed over every query head of its group. dk_ptr and dv_ptr share
    one layout (both are fresh contiguous tensors of k's shape)."""
    i_n = tl.program_id(0)
    i_bh = tl.program_id(1)
    i_b = (i_bh // h_kv).to(tl.int64)
    i_hk = (i_bh % h_kv).to(tl.int64)
    bos_q, len_q = _sequence(cu_q_ptr, i_b, t_q, VARLEN)
    bos_k, len_k = _sequence(cu_k_ptr, i_b, t_k, VARLEN)
    n0 = i_n * BLOCK_N
    if n0 >= len_k:
        return
    o_n = n0 + tl.arange(0, BLOCK_N)
    m_d = tl.arange(0, BLOCK_D) < HEAD_DIM
    m_kv = (o_n < len_k)[:, None] & m_d[None, :]
    p_k = _rows(
        k_ptr + i_b * (stride_kb * UNIT) + i_hk * (stride_kh * UNIT), bos_k + n0, stride_kt * UNIT, BLOCK_N, BLOCK_D
    )
    p_v = _rows(
        v_ptr + i_b * (stride_vb * UNIT) + i_hk * (stride_vh * UNIT), bos_k + n0, stride_vt * UNIT, BLOCK_N, BLOCK_D
    )
    b_k = tl.load(p_k, mask=m_kv, other=0.0)  # [BN, BD]
    b_v = tl.load(p_v, mask=m_kv, other=0.0)  # [BN, BD]
    # The queries that can see these keys: the window read from the key side (the transpose of _key_range).
    diag = len_k - len_q
    lo = tl.where(right >= 0, tl.maximum(n0 - diag - right, 0), 0)
    last = tl.minimum(n0 + BLOCK_N, len_k) - 1
    hi = tl.where(left >= 0, tl.minimum(last - diag + left + 1, len_q), len_q)

    b_dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    b_dv = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    for g in range(0, group):
        i_h = i_hk * group + g
        p_qh = q_ptr + i_b * (stride_qb * UNIT) + i_h * (stride_qh * UNIT)
        p_doh = do_ptr + i_b * (stride_dob * UNIT) + i_h * (stride_doh * UNIT)
        o_l0 = i_b * stride_lb + i_h * stride_lh + bos_q
        for m0 in range(lo, hi, BLOCK_M):
            o_m = m0 + tl.arange(0, BLOCK_M)
            m_m = o_m < len_q
            m_qd = m_m[:, None] & m_d[None, :]
            b_q = tl.load(_rows(p_qh, bos_q + m0, stride_qt * UNIT, BLOCK_M, BLOCK_D), mask=m_qd, other=0.0)  # [BM, BD]
            b_do = tl.load(
                _rows(p_doh, bos_q + m0, stride_dot * UNIT, BLOCK_M, BLOCK_D), mask=m_qd, other=0.0
            )  # [BM, BD]
            b_lse2 = _lse2(lse_ptr, o_l0 + o_m, m_m)  # [BM]
            b_delta = tl.load(delta_ptr + o_l0 + o_m, mask=m_m, other=0.0)  # [BM]
            b_st, b_t = _scores(_dot(b_k, tl.trans(b_q)), scale, softcap, SOFTCAP)  # [BN, BD] x [BD, BM] -> [BN, BM]
            b_vis = _visible(o_m[None, :], o_n[:, None], len_q, len_k, left, right)
            b_pt = tl.where(b_vis, tl.exp2(b_st - b_lse2[None, :]), 0.0)  # [BN, BM]
            b_dv += _dot(b_pt.to(b_do.dtype), b_do)  # [BN, BM] x [BM, BD] -> [BN, BD]
            b_dpt = _dot(b_v, tl.trans(b_do))  # [BN, BD] x [BD, BM] -> [BN, BM]
            b_dst = b_pt * (b_dpt - b_delta[None, :])
            if SOFTCAP:
                b_dst = b_dst * (1.0 - b_t * b_t)
            b_dk += _dot(b_dst.to(b_q.dtype), b_q)  # [BN, BM] x [BM, BD] -> [BN, BD]

    p_dk = _rows(
        dk_ptr + i_b * (stride_dkb * UNIT) + i_hk * (stride_dkh * UNIT), bos_k + n0, stride_dkt * UNIT, BLOCK_N, BLOCK_D
    )
    p_dv = _rows(
        dv_ptr + i_b * (stride_dkb * UNIT) + i_hk * (stride_dkh * UNIT), bos_k + n0, stride_dkt * UNIT, BLOCK_N, BLOCK_D
    )
    tl.store(p_dk, (b_dk * scale).to(dk_ptr.dtype.element_ty), mask=m_kv)
    tl.store(p_dv, b_dv.to(dv_ptr.dtype.element_ty), mask=m_kv)


@triton.jit
def flash_bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr, cu_q_ptr, cu_k_ptr,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_kt, stride_kh, stride_vb, stride_vt, stride_vh,
    stride_dob, stride_dot, stride_doh, stride_lb, stride_lh,
    stride_dqb, stride_dqt, stride_dqh,
    t_q, t_k, h_q, group, scale, softcap, left, right,
    VARLEN: tl.constexpr, SOFTCAP: tl.constexpr, UNIT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """dQ of BLOCK_M queries of one query head, over the key blocks its window reaches."""
    i_m = tl.program_id(0)
    i_bh = tl.program_id(1)
    i_b = (i_bh // h_q).to(tl.int64)
    i_h = (i_bh % h_q).to(tl.int64)
    i_hk = i_h // group
    bos_q, len_q = _sequence(cu_q_ptr, i_b, t_q, VARLEN)
    bos_k, len_k = _sequence(cu_k_ptr, i_b, t_k, VARLEN)
    m0 = i_m * BLOCK_M
    if m0 >= len_q:
        return
    o_m = m0 + tl.arange(0, BLOCK_M)
    m_m = o_m < len_q
    m_d = tl.arange(0, BLOCK_D) < HEAD_DIM
    m_qd = m_m[:, None] & m_d[None, :]
    p_q = _rows(
        q_ptr + i_b * (stride_qb * UNIT) + i_h * (stride_qh * UNIT), bos_q + m0, stride_qt * UNIT, BLOCK_M, BLOCK_D
    )
    p_do = _rows(
        do_ptr + i_b * (stride_dob * UNIT) + i_h * (stride_doh * UNIT), bos_q + m0, stride_dot * UNIT, BLOCK_M, BLOCK_D
    )
    b_q = tl.load(p_q, mask=m_qd, other=0.0)  # [BM, BD]
    b_do = tl.load(p_do, mask=m_qd, other=0.0)  # [BM, BD]
    o_l = (i_b * stride_lb + i_h * stride_lh + bos_q + m0) + tl.arange(0, BLOCK_M)
    b_lse2 = _lse2(lse_ptr, o_l, m_m)  # [BM]
    b_delta = tl.load(delta_ptr + o_l, mask=m_m, other=0.0)  # [BM]
    p_kh = k_ptr + i_b * (stride_kb * UNIT) + i_hk * (stride_kh * UNIT)
    p_vh = v_ptr + i_b * (stride_vb * UNIT) + i_hk * (stride_vh * UNIT)

    b_dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    lo, hi = _key_range(m0, BLOCK_M, len_q, len_k, left, right)
    for n0 in range(lo, hi, BLOCK_N):
        o_n = n0 + tl.arange(0, BLOCK_N)
        m_kv = (o_n < len_k)[:, None] & m_d[None, :]
        b_k = tl.load(_rows(p_kh, bos_k + n0, stride_kt * UNIT, BLOCK_N, BLOCK_D), mask=m_kv, other=0.0)  # [BN, BD]
        b_v = tl.load(_rows(p_vh, bos_k + n0, stride_vt * UNIT, BLOCK_N, BLOCK_D), mask=m_kv, other=0.0)  # [BN, BD]
        b_s, b_t = _scores(_dot(b_q, tl.trans(b_k)), scale, softcap, SOFTCAP)  # [BM, BD] x [BD, BN] -> [BM, BN]
        b_vis = _visible(o_m[:, None], o_n[None, :], len_q, len_k, left, right)
        b_p = tl.where(b_vis, tl.exp2(b_s - b_lse2[:, None]), 0.0)  # [BM, BN]
        b_dp = _dot(b_do, tl.trans(b_v))  # [BM, BD] x [BD, BN] -> [BM, BN]
        b_ds = b_p * (b_dp - b_delta[:, None])
        if SOFTCAP:
            b_ds = b_ds * (1.0 - b_t * b_t)
        b_dq += _dot(b_ds.to(b_k.dtype), b_k)  # [BM, BN] x [BN, BD] -> [BM, BD]

    p_dq = _rows(
        dq_ptr + i_b * (stride_dqb * UNIT) + i_h * (stride_dqh * UNIT), bos_q + m0, stride_dqt * UNIT, BLOCK_M, BLOCK_D
    )
    tl.store(p_dq, (b_dq * scale).to(dq_ptr.dtype.element_ty), mask=m_qd)


# --- Launchers ---------------------------------------------------------------------------------------------------

# (BLOCK_M, BLOCK_N, num_warps, num_stages) per kernel and padded head dim, for 16-bit operands. Chosen so every AOT
# build below fits sm_80's 163 KB of shared memory without spills (`accelkit gpu-report`); the forward follows FA2's
# 128 x 64 tile up to D = 64.
FWD_CONFIGS = {64: (128, 64, 4, 3), 128: (128, 32, 8, 2), 256: (64, 32, 8, 2)}
DKDV_CONFIGS = {64: (64, 64, 4, 2), 128: (32, 64, 8, 2), 256: (32, 32, 8, 1)}
DQ_CONFIGS = {64: (64, 64, 4, 2), 128: (64, 32, 4, 2), 256: (32, 32, 8, 1)}
# fp32 operands take twice the registers and shared memory, and IEEE fp32 dots run on FMA units rather than tensor
# cores, which hold more of the tile in registers: smaller tiles, picked (Triton 3.9) so that sm_80 and sm_90 builds
# do not spill. They are not in AOT_SPECS (flash-attn has no fp32 path; the report covers fp16 and bf16).
FP32_CONFIGS = {
    "fwd": {64: (32, 32, 4, 1), 128: (32, 16, 8, 1), 256: (32, 16, 8, 1)},
    "dkdv": {64: (32, 32, 8, 1), 128: (16, 32, 4, 1), 256: (16, 16, 8, 1)},
    "dq": {64: (32, 32, 4, 1), 128: (32, 16, 8, 1), 256: (16, 16, 8, 1)},
}
PRE_CONFIG = (64, 4)  # BLOCK_M, num_warps of the delta kernel (no loop: 1 stage)
# Under the interpreter programs run one after another in NumPy: 32 x 32 tiles keep the arrays small and still
# exercise the loops over several blocks.
INTERPRET_BLOCK = 32


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _config(kernel: str, d_pad: int, dtype: torch.dtype, blocks: tuple[int | None, int | None]) -> tuple:
    table = {"fwd": FWD_CONFIGS, "dkdv": DKDV_CONFIGS, "dq": DQ_CONFIGS}[kernel]
    if dtype == torch.float32:
        table = FP32_CONFIGS[kernel]
    block_m, block_n, warps, stages = table[max(64, d_pad)]
    if _interpreting():
        block_m = block_n = INTERPRET_BLOCK
    return (blocks[0] or block_m, blocks[1] or block_n, warps, stages)


def _block_d(d: int) -> int:
    return max(16, triton.next_power_of_2(d))


# Offsets inside a tile are int32 (see _rows): the largest tile has 128 rows, so a token stride must stay below this.
_MAX_TOKEN_STRIDE = 2**31 // 128


def _unit_last(x: torch.Tensor) -> torch.Tensor:
    """The kernels read rows of D contiguous elements with an int32 offset inside a tile: a view strided along D, or
    with a token stride too large for that, is copied."""
    token_stride = x.stride(-3) if x.dim() >= 3 else 0
    if (x.stride(-1) == 1 or x.shape[-1] <= 1) and token_stride < _MAX_TOKEN_STRIDE:
        return x
    return x.contiguous()


# Strides travel in units of UNIT elements, UNIT a constexpr: 8 when every batch, token and head stride is a
# multiple of 8 (any contiguous input with D % 8 == 0), so the compiler knows each row starts 16-byte aligned and
# loads it in 16-byte vectors, as the JIT's own divisibility-by-16 specialisation would; 1 otherwise.
ALIGNED_UNIT = 8


def _unit(*tensors: torch.Tensor) -> int:
    aligned = all(s % ALIGNED_UNIT == 0 for x in tensors for s in x.stride()[:-1])
    return ALIGNED_UNIT if aligned else 1


def _strides(x: torch.Tensor, varlen: bool, unit: int) -> tuple[int, int, int]:
    """(batch, token, head) strides in units of `unit` elements; a packed tensor has no batch axis (stride 0: the
    row offset comes from cu_seqlens)."""
    strides = (0, x.stride(0), x.stride(1)) if varlen else (x.stride(0), x.stride(1), x.stride(2))
    return tuple(s // unit for s in strides)


def _lse_shape_strides(p: Problem, q: torch.Tensor) -> tuple[tuple[int, ...], int, int]:
    if p.varlen:
        return (p.heads_q, q.shape[0]), 0, q.shape[0]
    return (p.batch, p.heads_q, p.max_q), p.heads_q * p.max_q, p.max_q


def _prepare(q, k, v, causal, scale, window, softcap, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k):
    p = check_args(
        q, k, v, causal=causal, scale=scale, window=window, softcap=softcap, cu_seqlens_q=cu_seqlens_q,
        cu_seqlens_k=cu_seqlens_k, max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k,
    )  # fmt: skip
    if p.varlen:
        p = check_cu_seqlens_values(p, cu_seqlens_q, cu_seqlens_k, q.shape[0], k.shape[0])
        cu_q, cu_k = cu_seqlens_q, cu_seqlens_k
    else:
        cu_q = cu_k = torch.zeros(1, dtype=torch.int32, device=q.device)  # never read (VARLEN is off)
    return p, cu_q, cu_k


def _knobs(p: Problem) -> tuple:
    return (p.max_q, p.max_k), (p.scale, p.softcap if p.softcap > 0 else 1.0, p.left, p.right)


def flash_attn_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    cu_seqlens_q: torch.Tensor | None = None,
    cu_seqlens_k: torch.Tensor | None = None,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    blocks: tuple[int | None, int | None] = (None, None),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward: q [B, T_q, H_q, D], k, v [B, T_k, H_kv, D] (packed [total, H, D] with cu_seqlens_*) ->
    (out shaped like q, contiguous, q's dtype; lse float32 [B, H_q, T_q] or [H_q, total_q]).
    `blocks` overrides (BLOCK_M, BLOCK_N), for tests."""
    p, cu_q, cu_k = _prepare(
        q, k, v, causal, scale, window, softcap, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k
    )
    q, k, v = _unit_last(q), _unit_last(k), _unit_last(v)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse_shape, stride_lb, stride_lh = _lse_shape_strides(p, q)
    lse = torch.empty(lse_shape, dtype=torch.float32, device=q.device)
    if out.numel() == 0:
        return out, lse.fill_(float("-inf"))
    d_pad = _block_d(p.head_dim)
    block_m, block_n, warps, stages = _config("fwd", d_pad, q.dtype, blocks)
    (t_q, t_k), knobs = _knobs(p)
    grid = (triton.cdiv(t_q, block_m), p.batch * p.heads_q)
    u = _unit(q, k, v, out)
    flash_fwd_kernel[grid](
        q, k, v, out, lse, cu_q, cu_k,
        *_strides(q, p.varlen, u), *_strides(k, p.varlen, u), *_strides(v, p.varlen, u), *_strides(out, p.varlen, u),
        stride_lb, stride_lh, t_q, t_k, p.heads_q, p.group, *knobs,
        VARLEN=p.varlen, SOFTCAP=p.softcap > 0, UNIT=u, HEAD_DIM=p.head_dim,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=d_pad,
        num_warps=warps, num_stages=stages,
    )  # fmt: skip
    return out, lse


def flash_attn_bwd(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    *,
    dlse: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    cu_seqlens_q: torch.Tensor | None = None,
    cu_seqlens_k: torch.Tensor | None = None,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    blocks: tuple[int | None, int | None] = (None, None),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward: (dq, dk, dv), shaped like q, k, v, from do (shaped like out) and the forward's out and lse.
    dlse (like lse, optional) is the gradient of the returned LSE."""
    p, cu_q, cu_k = _prepare(
        q, k, v, causal, scale, window, softcap, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k
    )
    q, k, v, out, do = (_unit_last(x) for x in (q, k, v, out, do))
    lse_shape, stride_lb, stride_lh = _lse_shape_strides(p, q)
    if do.shape != q.shape or out.shape != q.shape or tuple(lse.shape) != lse_shape:
        raise ValueError(f"do and out must be shaped like q {tuple(q.shape)} and lse {lse_shape}")
    lse = lse.float().contiguous()
    dq, dk, dv = (torch.zeros(x.shape, dtype=x.dtype, device=x.device) for x in (q, k, v))
    if q.numel() == 0 or k.numel() == 0:
        return dq, dk, dv
    d_pad = _block_d(p.head_dim)
    (t_q, t_k), knobs = _knobs(p)
    delta = torch.empty(lse_shape, dtype=torch.float32, device=q.device)
    has_dlse = dlse is not None
    dlse = dlse.float().contiguous() if has_dlse else delta
    pre_m, pre_warps = PRE_CONFIG
    u = _unit(q, k, v, out, do, dq, dk)
    flash_bwd_preprocess_kernel[(triton.cdiv(t_q, pre_m), p.batch * p.heads_q)](
        out, do, dlse, delta, cu_q, *_strides(out, p.varlen, u), *_strides(do, p.varlen, u), stride_lb, stride_lh,
        t_q, p.heads_q, VARLEN=p.varlen, HAS_DLSE=has_dlse, UNIT=u, HEAD_DIM=p.head_dim,
        BLOCK_M=pre_m, BLOCK_D=d_pad, num_warps=pre_warps, num_stages=1,
    )  # fmt: skip
    qkv_strides = tuple(s for x in (q, k, v, do) for s in _strides(x, p.varlen, u))
    flags = {"VARLEN": p.varlen, "SOFTCAP": p.softcap > 0, "UNIT": u, "HEAD_DIM": p.head_dim, "BLOCK_D": d_pad}
    block_m, block_n, warps, stages = _config("dkdv", d_pad, q.dtype, blocks)
    flash_bwd_dkdv_kernel[(triton.cdiv(t_k, block_n), p.batch * p.heads_kv)](
        q, k, v, do, lse, delta, dk, dv, cu_q, cu_k, *qkv_strides, stride_lb, stride_lh, *_strides(dk, p.varlen, u),
        t_q, t_k, p.heads_kv, p.group, *knobs,
        **flags, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    block_m, block_n, warps, stages = _config("dq", d_pad, q.dtype, blocks)
    flash_bwd_dq_kernel[(triton.cdiv(t_q, block_m), p.batch * p.heads_q)](
        q, k, v, do, lse, delta, dq, cu_q, cu_k, *qkv_strides, stride_lb, stride_lh, *_strides(dq, p.varlen, u),
        t_q, t_k, p.heads_q, p.group, *knobs,
        **flags, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    return dq, dk, dv


# --- Ahead-of-time builds (accelkit gpu-report, tests/test_gpu_build.py) -------------------------------------------
_AOT_DTYPES = ("fp16", "bf16")
_FLOATS = ("scale", "softcap")


def _signature(kernel, pointers: dict[str, str], constexprs: dict) -> dict[str, str]:
    """Pointers as given, the scale and softcap fp32, constexprs as such, every other parameter (sizes, strides,
    window sides) i32, which is what the launcher passes for tensors under 2**31 elements."""
    return {
        p: "constexpr" if p in constexprs else pointers.get(p, "fp32" if p in _FLOATS else "i32")
        for p in kernel.arg_names
    }


def _spec(kernel, table: dict | None, dtype: str, d: int, pointers: dict[str, str], extra: dict) -> AotSpec:
    if table is None:
        (block_m, warps), stages, tile = PRE_CONFIG, 1, {}
    else:
        block_m, block_n, warps, stages = table[d]
        tile = {"BLOCK_N": block_n, "SOFTCAP": False}
    constexprs = {
        "VARLEN": False,
        "UNIT": ALIGNED_UNIT,
        "HEAD_DIM": d,
        **extra,
        **tile,
        "BLOCK_M": block_m,
        "BLOCK_D": d,
    }
    name = f"{kernel.__name__}[{dtype},d{d}]"
    signature = _signature(kernel, pointers, constexprs)
    return AotSpec(kernel, signature, constexprs, num_warps=warps, num_stages=stages, name=name)


def _specs(dtype: str, d: int) -> list[AotSpec]:
    t = f"*{dtype}"
    lse = {"lse_ptr": "*fp32", "delta_ptr": "*fp32", "dlse_ptr": "*fp32", "cu_q_ptr": "*i32", "cu_k_ptr": "*i32"}
    names = ("q_ptr", "k_ptr", "v_ptr", "o_ptr", "do_ptr", "dq_ptr", "dk_ptr", "dv_ptr")
    pointers = {**{n: t for n in names}, **lse}
    return [
        _spec(flash_fwd_kernel, FWD_CONFIGS, dtype, d, pointers, {}),
        _spec(flash_bwd_preprocess_kernel, None, dtype, d, pointers, {"HAS_DLSE": False}),
        _spec(flash_bwd_dkdv_kernel, DKDV_CONFIGS, dtype, d, pointers, {}),
        _spec(flash_bwd_dq_kernel, DQ_CONFIGS, dtype, d, pointers, {}),
    ]


# fp16 and bf16 at head dims 64, 128 and 256: the forward and the three backward kernels as the launcher runs them.
AOT_SPECS = [spec for dtype in _AOT_DTYPES for d in (64, 128, 256) for spec in _specs(dtype, d)]
