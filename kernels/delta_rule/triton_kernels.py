"""Triton kernels of delta_rule (README.md has the derivation and the memory bound); triton_launch.py launches them.

Forward, chunk mode (three kernels, chunk C in {16, 32, 64}):
  wy_fwd_kernel      per (chunk, head): A = tril(diag(beta) (K K^T * Gamma), -1), M = (I + A)^{-1} by forward
                     substitution, W = M (beta gamma K), U = M (beta V), the chunk-local cumulative log decay G.
  state_fwd_kernel   per (V block, sequence, head): the sequential pass over chunks, V' = U - W S and
                     S <- gamma_C S + Kd^T V', writing each chunk's entering state (T/C + 1 states per sequence).
  output_fwd_kernel  per (V block, chunk, head): O = scale ((Q * gamma) S + (tril(Q K^T) * Gamma) V').
Backward: the forward's first two kernels run again (nothing but the inputs is saved), then
  dv_intra_kernel    per (V block, chunk, head): dV' = L^T dO, the part of dV' that needs no state.
  state_bwd_kernel   per (V block, sequence, head): the reverse pass over chunks for dS, adding (Kd dS1) to dV'.
  grad_state_kernel  per (chunk, head): the terms through S0 and dS1: dq = gamma dO S0^T, dk = e^{G_C - G} V' dS1^T,
                     dW = -dV' S0^T, and their parts of dg.
  grad_wy_kernel     per (chunk, head): dVb = M^T dV', dKb = M^T dW, dv, dA = -(dVb U^T + dKb W^T), parts of dk,
                     dbeta and dg.
  grad_causal_kernel per (chunk, head): dL = tril(dO V'^T) * Gamma: dq += dL K (final), dk += dL^T Q, part of dg.
  grad_beta_kernel   per (chunk, head): dA with K K^T: dbeta and dk (final), then dg from dG (final).
The backward is split five ways so that no kernel holds more than two [C, C] tiles: one kernel holding M, dA, dL,
Q K^T and K K^T together spilled kilobytes on sm_80 and sm_90 (README.md, "Build status").
Recurrent mode: fused_recurrent_kernel, one token at a time with the [K, V-block] state in registers.

Inputs are read in their dtype (fp16, bf16, fp32) and everything is computed and staged in fp32 (dots with
input_precision="tf32x3": three TF32 products, near-fp32 accuracy on tensor cores). Dense batches are run as packed
sequences: token row r of the flattened [B * T, H, D] tensor, sequence n spanning rows cu[n]:cu[n + 1].
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from accelkit.kernels._common.aot import AotSpec

DOT = tl.constexpr("tf32x3")


@triton.jit
def _unit_lower_inverse(b_a, C: tl.constexpr):
    """(I + A)^{-1} of a strictly lower-triangular [C, C] tile: row i = e_i - sum_{j < i} A_ij row j."""
    o_i = tl.arange(0, C)
    b_m = tl.where(o_i[:, None] == o_i[None, :], 1.0, 0.0)
    for i in range(1, C):
        b_row = tl.sum(tl.where(o_i[:, None] == i, b_a, 0.0), 0)
        b_new = tl.where(o_i == i, 1.0, 0.0) - tl.sum(b_row[:, None] * b_m, 0)
        b_m = tl.where(o_i[:, None] == i, b_new[None, :], b_m)
    return b_m


@triton.jit
def _chunk_rows(chunk_seq, chunk_idx, cu, slot_base, i_c, C: tl.constexpr):
    """First row of chunk i_c (int64), the mask of its real rows, the index of its last one and its entering-state
    slot."""
    i_n = tl.load(chunk_seq + i_c)
    i_t = tl.load(chunk_idx + i_c)
    bos = tl.load(cu + i_n).to(tl.int64)
    eos = tl.load(cu + i_n + 1).to(tl.int64)
    row0 = bos + i_t * C
    last = tl.minimum(eos - row0, C) - 1
    slot = tl.load(slot_base + i_n).to(tl.int64) + i_t
    return row0, tl.arange(0, C) < eos - row0, last, slot


@triton.jit
def _gates(g_cum, row0, m_row, last, i_h, H, GATED: tl.constexpr, C: tl.constexpr):
    """gamma_i = exp(G_i), the key factors exp(G_last - G_i) (0 on padding rows) and gamma_C = exp(G_last)."""
    o_i = tl.arange(0, C)
    if GATED:
        b_gc = tl.load(g_cum + (row0 * H + i_h) + o_i * H, mask=m_row, other=0.0)
    else:
        b_gc = tl.zeros([C], dtype=tl.float32)
    b_glast = tl.sum(tl.where(o_i == last, b_gc, 0.0), 0)
    b_gamma = tl.exp(b_gc)
    b_factor = tl.where(m_row, tl.exp(b_glast - b_gc), 0.0)
    return b_gc, b_gamma, b_factor, tl.exp(b_glast)


@triton.jit
def _decay(b_gc, C: tl.constexpr, STRICT: tl.constexpr):
    """Gamma_ij = exp(G_i - G_j) on the causal (STRICT: strictly lower) triangle, 0 elsewhere."""
    o_i = tl.arange(0, C)
    if STRICT:
        m_tri = o_i[:, None] > o_i[None, :]
    else:
        m_tri = o_i[:, None] >= o_i[None, :]
    return tl.where(m_tri, tl.exp(tl.where(m_tri, b_gc[:, None] - b_gc[None, :], 0.0)), 0.0)


@triton.jit
def _tile(p, row0, m_row, i_h, H, D, o_d):
    """Pointers and mask of the [C, BD] tile of rows row0 + i (i < C), head i_h, columns o_d of a [rows, H, D]
    tensor. The row start is int64; offsets inside the tile are int32 (C * H * D < 2^31), which keeps the pointer
    tile to one register per element."""
    o_i = tl.arange(0, m_row.shape[0])
    base = p + (row0 * H + i_h) * D
    return base + (o_i[:, None] * (H * D) + o_d[None, :]), m_row[:, None] & (o_d[None, :] < D)


@triton.jit
def _load_rows(p, row0, m_row, i_h, H, D, o_d):
    """fp32 [C, BD] tile (zeros outside the rows and columns) of rows row0 + i, head i_h, columns o_d."""
    p_x, m = _tile(p, row0, m_row, i_h, H, D, o_d)
    return tl.load(p_x, mask=m, other=0.0).to(tl.float32)


@triton.jit
def _store_rows(p, b_x, row0, m_row, i_h, H, D, o_d):
    p_x, m = _tile(p, row0, m_row, i_h, H, D, o_d)
    tl.store(p_x, b_x.to(p.dtype.element_ty), mask=m)


@triton.jit
def _state_ptr(p, slot, i_h, H, K, V, o_k, o_v):
    """Pointers and mask of the [BK, BV] tile (o_k, o_v) of state `slot` in a [slots, H, K, V] buffer."""
    base = p + (slot * H + i_h).to(tl.int64) * K * V
    return base + (o_k[:, None] * V + o_v[None, :]), (o_k[:, None] < K) & (o_v[None, :] < V)


@triton.jit
def wy_fwd_kernel(k, v, beta, g, g_cum, m_buf, w_buf, u_buf, chunk_seq, chunk_idx, cu, slot_base, H, K, V,
                  GATED: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, NK: tl.constexpr,
                  NV: tl.constexpr):  # fmt: skip
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    o_row, m_row, last, _ = _chunk_rows(chunk_seq, chunk_idx, cu, slot_base, i_c, C)
    o_i = tl.arange(0, C)
    p_tok = (o_row * H + i_h) + o_i * H
    b_beta = tl.load(beta + p_tok, mask=m_row, other=0.0).to(tl.float32)
    if GATED:
        b_gc = tl.cumsum(tl.load(g + p_tok, mask=m_row, other=0.0).to(tl.float32), 0)
        tl.store(g_cum + p_tok, b_gc, mask=m_row)
    else:
        b_gc = tl.zeros([C], dtype=tl.float32)
    b_gamma = tl.exp(b_gc)
    b_kk = tl.zeros([C, C], dtype=tl.float32)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_k = _load_rows(k, o_row, m_row, i_h, H, K, o_k)
        b_kk += tl.dot(b_k, tl.trans(b_k), input_precision=DOT)  # [C, BK] @ [BK, C] -> [C, C]
    b_a = b_kk * _decay(b_gc, C, True) * b_beta[:, None]
    b_m = _unit_lower_inverse(b_a, C)
    _store_rows(m_buf, b_m, o_row, m_row, i_h, H, C, o_i)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_kb = _load_rows(k, o_row, m_row, i_h, H, K, o_k) * (b_beta * b_gamma)[:, None]
        b_w = tl.dot(b_m, b_kb, input_precision=DOT)  # [C, C] @ [C, BK] -> [C, BK]
        _store_rows(w_buf, b_w, o_row, m_row, i_h, H, K, o_k)
    for i_v in range(NV):
        o_v = i_v * BV + tl.arange(0, BV)
        b_vb = _load_rows(v, o_row, m_row, i_h, H, V, o_v) * b_beta[:, None]
        b_u = tl.dot(b_m, b_vb, input_precision=DOT)  # [C, C] @ [C, BV] -> [C, BV]
        _store_rows(u_buf, b_u, o_row, m_row, i_h, H, V, o_v)


@triton.jit
def state_fwd_kernel(k, g_cum, w_buf, u_buf, h0, states, v_new, cu, slot_base, H, K, V, HAS_H0: tl.constexpr,
                     GATED: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                     NK: tl.constexpr):  # fmt: skip
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos = tl.load(cu + i_n).to(tl.int64)
    eos = tl.load(cu + i_n + 1).to(tl.int64)
    slot = tl.load(slot_base + i_n).to(tl.int64)
    o_v = i_v * BV + tl.arange(0, BV)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        p_h, m_h = _state_ptr(states, slot, i_h, H, K, V, o_k, o_v)
        if HAS_H0:
            p_0, _ = _state_ptr(h0, i_n, i_h, H, K, V, o_k, o_v)
            b_h = tl.load(p_0, mask=m_h, other=0.0)
        else:
            b_h = tl.zeros([BK, BV], dtype=tl.float32)
        tl.store(p_h, b_h, mask=m_h)
    for i_t in range(0, tl.cdiv(eos - bos, C)):
        # The states this program stored last step are read back by other threads of the block.
        tl.debug_barrier()
        o_row = bos + i_t * C
        m_row = tl.arange(0, C) < eos - o_row
        last = tl.minimum(eos - o_row, C) - 1
        b_gc, b_gamma, b_factor, b_gamma_last = _gates(g_cum, o_row, m_row, last, i_h, H, GATED, C)
        b_vn = _load_rows(u_buf, o_row, m_row, i_h, H, V, o_v)
        for i_k in range(NK):
            o_k = i_k * BK + tl.arange(0, BK)
            p_h, m_h = _state_ptr(states, slot + i_t, i_h, H, K, V, o_k, o_v)
            b_w = _load_rows(w_buf, o_row, m_row, i_h, H, K, o_k)
            b_vn -= tl.dot(b_w, tl.load(p_h, mask=m_h, other=0.0), input_precision=DOT)  # [C, BK] @ [BK, BV]
        _store_rows(v_new, b_vn, o_row, m_row, i_h, H, V, o_v)
        for i_k in range(NK):
            o_k = i_k * BK + tl.arange(0, BK)
            p_h, m_h = _state_ptr(states, slot + i_t, i_h, H, K, V, o_k, o_v)
            b_kd = _load_rows(k, o_row, m_row, i_h, H, K, o_k) * b_factor[:, None]
            b_h = b_gamma_last * tl.load(p_h, mask=m_h, other=0.0)
            b_h += tl.dot(tl.trans(b_kd), b_vn, input_precision=DOT)  # [BK, C] @ [C, BV] -> [BK, BV]
            p_next, _ = _state_ptr(states, slot + i_t + 1, i_h, H, K, V, o_k, o_v)
            tl.store(p_next, b_h, mask=m_h)


@triton.jit
def output_fwd_kernel(q, k, g_cum, states, v_new, o, chunk_seq, chunk_idx, cu, slot_base, scale, H, K, V,
                      GATED: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                      NK: tl.constexpr):  # fmt: skip
    i_v, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_row, m_row, last, slot = _chunk_rows(chunk_seq, chunk_idx, cu, slot_base, i_c, C)
    o_v = i_v * BV + tl.arange(0, BV)
    b_o = tl.zeros([C, BV], dtype=tl.float32)
    b_s = tl.zeros([C, C], dtype=tl.float32)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_q = _load_rows(q, o_row, m_row, i_h, H, K, o_k)
        b_k = _load_rows(k, o_row, m_row, i_h, H, K, o_k)
        p_h, m_h = _state_ptr(states, slot, i_h, H, K, V, o_k, o_v)
        b_o += tl.dot(b_q, tl.load(p_h, mask=m_h, other=0.0), input_precision=DOT)  # [C, BK] @ [BK, BV]
        b_s += tl.dot(b_q, tl.trans(b_k), input_precision=DOT)  # [C, BK] @ [BK, C] -> [C, C]
    b_gc, b_gamma, _, _ = _gates(g_cum, o_row, m_row, last, i_h, H, GATED, C)
    b_s = b_s * _decay(b_gc, C, False)
    b_o = b_o * b_gamma[:, None]
    b_vn = _load_rows(v_new, o_row, m_row, i_h, H, V, o_v)
    b_o += tl.dot(b_s, b_vn, input_precision=DOT)  # [C, C] @ [C, BV] -> [C, BV]
    _store_rows(o, b_o * scale, o_row, m_row, i_h, H, V, o_v)


@triton.jit
def dv_intra_kernel(q, k, g_cum, do, dv_new, chunk_seq, chunk_idx, cu, slot_base, scale, H, K, V, GATED: tl.constexpr,
                    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, NK: tl.constexpr):  # fmt: skip
    """dV' = L^T dO with L = scale tril(Q K^T) * Gamma: the part of dV' that needs no state, for every chunk at once,
    so that the sequential state_bwd_kernel holds no [C, C] tile."""
    i_v, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_row, m_row, last, _ = _chunk_rows(chunk_seq, chunk_idx, cu, slot_base, i_c, C)
    o_v = i_v * BV + tl.arange(0, BV)
    b_s = tl.zeros([C, C], dtype=tl.float32)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_q = _load_rows(q, o_row, m_row, i_h, H, K, o_k)
        b_s += tl.dot(b_q, tl.trans(_load_rows(k, o_row, m_row, i_h, H, K, o_k)), input_precision=DOT)
    b_gc, _, _, _ = _gates(g_cum, o_row, m_row, last, i_h, H, GATED, C)
    b_s = b_s * _decay(b_gc, C, False) * scale
    b_do = _load_rows(do, o_row, m_row, i_h, H, V, o_v)
    b_dvn = tl.dot(tl.trans(b_s), b_do, input_precision=DOT)  # [C, C]^T @ [C, BV] -> [C, BV]
    _store_rows(dv_new, b_dvn, o_row, m_row, i_h, H, V, o_v)


@triton.jit
def state_bwd_kernel(q, k, g_cum, w_buf, do, dht, dstates, dv_new, cu, slot_base, scale, H, K, V,
                     HAS_DHT: tl.constexpr, GATED: tl.constexpr, C: tl.constexpr, BK: tl.constexpr,
                     BV: tl.constexpr, NK: tl.constexpr):  # fmt: skip
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos = tl.load(cu + i_n).to(tl.int64)
    eos = tl.load(cu + i_n + 1).to(tl.int64)
    nt = tl.cdiv(eos - bos, C)
    slot = tl.load(slot_base + i_n).to(tl.int64)
    o_v = i_v * BV + tl.arange(0, BV)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        p_dh, m_h = _state_ptr(dstates, slot + nt, i_h, H, K, V, o_k, o_v)
        if HAS_DHT:
            p_d, _ = _state_ptr(dht, i_n, i_h, H, K, V, o_k, o_v)
            b_dh = tl.load(p_d, mask=m_h, other=0.0)
        else:
            b_dh = tl.zeros([BK, BV], dtype=tl.float32)
        tl.store(p_dh, b_dh, mask=m_h)
    for i_r in range(0, nt):
        i_t = nt - 1 - i_r
        tl.debug_barrier()
        o_row = bos + i_t * C
        m_row = tl.arange(0, C) < eos - o_row
        last = tl.minimum(eos - o_row, C) - 1
        b_gc, b_gamma, b_factor, b_gamma_last = _gates(g_cum, o_row, m_row, last, i_h, H, GATED, C)
        b_do = _load_rows(do, o_row, m_row, i_h, H, V, o_v)
        b_dvn = _load_rows(dv_new, o_row, m_row, i_h, H, V, o_v)
        for i_k in range(NK):
            o_k = i_k * BK + tl.arange(0, BK)
            p_dh, m_h = _state_ptr(dstates, slot + i_t + 1, i_h, H, K, V, o_k, o_v)
            b_kd = _load_rows(k, o_row, m_row, i_h, H, K, o_k) * b_factor[:, None]
            b_dvn += tl.dot(b_kd, tl.load(p_dh, mask=m_h, other=0.0), input_precision=DOT)  # [C, BK] @ [BK, BV]
        _store_rows(dv_new, b_dvn, o_row, m_row, i_h, H, V, o_v)
        for i_k in range(NK):
            o_k = i_k * BK + tl.arange(0, BK)
            p_dh, m_h = _state_ptr(dstates, slot + i_t + 1, i_h, H, K, V, o_k, o_v)
            b_qg = _load_rows(q, o_row, m_row, i_h, H, K, o_k) * (b_gamma * scale)[:, None]
            b_w = _load_rows(w_buf, o_row, m_row, i_h, H, K, o_k)
            b_dh = b_gamma_last * tl.load(p_dh, mask=m_h, other=0.0)
            b_dh += tl.dot(tl.trans(b_qg), b_do, input_precision=DOT)  # [BK, C] @ [C, BV] -> [BK, BV]
            b_dh -= tl.dot(tl.trans(b_w), b_dvn, input_precision=DOT)  # [BK, C] @ [C, BV] -> [BK, BV]
            p_prev, _ = _state_ptr(dstates, slot + i_t, i_h, H, K, V, o_k, o_v)
            tl.store(p_prev, b_dh, mask=m_h)


@triton.jit
def grad_state_kernel(q, k, g_cum, states, v_new, dstates, dv_new, do, dq, dk, dw_buf, dg, dg_last, chunk_seq,
                      chunk_idx, cu, slot_base, scale, H, K, V, GATED: tl.constexpr, C: tl.constexpr,
                      BK: tl.constexpr, BV: tl.constexpr, NK: tl.constexpr, NV: tl.constexpr):  # fmt: skip
    """The terms through the chunk's entering state S0 and leaving-state gradient dS1: dq = gamma (dO S0^T),
    dk = e^{G_C - G} (V' dS1^T), dW = -dV' S0^T, and their parts of dG (the last row's into dg_last)."""
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    o_row, m_row, last, slot = _chunk_rows(chunk_seq, chunk_idx, cu, slot_base, i_c, C)
    b_gc, b_gamma, b_factor, b_gamma_last = _gates(g_cum, o_row, m_row, last, i_h, H, GATED, C)
    b_dgc = tl.zeros([C], dtype=tl.float32)
    b_hdh = 0.0
    b_t7_sum = 0.0
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_dkd = tl.zeros([C, BK], dtype=tl.float32)
        b_dqg = tl.zeros([C, BK], dtype=tl.float32)
        b_dw = tl.zeros([C, BK], dtype=tl.float32)
        for i_v in range(NV):
            o_v = i_v * BV + tl.arange(0, BV)
            p_h, m_h = _state_ptr(states, slot, i_h, H, K, V, o_k, o_v)
            p_dh, _ = _state_ptr(dstates, slot + 1, i_h, H, K, V, o_k, o_v)
            b_h = tl.load(p_h, mask=m_h, other=0.0)
            b_dh = tl.load(p_dh, mask=m_h, other=0.0)
            b_vn = _load_rows(v_new, o_row, m_row, i_h, H, V, o_v)
            b_do = _load_rows(do, o_row, m_row, i_h, H, V, o_v)
            b_dvn = _load_rows(dv_new, o_row, m_row, i_h, H, V, o_v)
            b_dkd += tl.dot(b_vn, tl.trans(b_dh), input_precision=DOT)  # [C, BV] @ [BV, BK] -> [C, BK]
            b_dqg += tl.dot(b_do, tl.trans(b_h), input_precision=DOT)  # [C, BV] @ [BV, BK] -> [C, BK]
            b_dw -= tl.dot(b_dvn, tl.trans(b_h), input_precision=DOT)  # [C, BV] @ [BV, BK] -> [C, BK]
            b_hdh += tl.sum(tl.sum(b_h * b_dh, 1), 0)
        _store_rows(dw_buf, b_dw, o_row, m_row, i_h, H, K, o_k)
        _store_rows(dq, b_dqg * b_gamma[:, None], o_row, m_row, i_h, H, K, o_k)
        b_dkd = b_dkd * b_factor[:, None]
        _store_rows(dk, b_dkd, o_row, m_row, i_h, H, K, o_k)
        b_t7 = tl.sum(_load_rows(k, o_row, m_row, i_h, H, K, o_k) * b_dkd, 1)
        b_q = _load_rows(q, o_row, m_row, i_h, H, K, o_k) * scale
        b_dgc += tl.sum(b_q * b_gamma[:, None] * b_dqg, 1) - b_t7
        b_t7_sum += tl.sum(b_t7, 0)
    if GATED:
        p_tok = (o_row * H + i_h) + tl.arange(0, C) * H
        tl.store(dg + p_tok, b_dgc, mask=m_row)
        tl.store(dg_last + i_c * H + i_h, b_gamma_last * b_hdh + b_t7_sum)


@triton.jit
def grad_wy_kernel(k, v, beta, g_cum, m_buf, w_buf, u_buf, dv_new, dw_buf, dk, dv, dbeta, dg, da_buf, chunk_seq,
                   chunk_idx, cu, slot_base, H, K, V, GATED: tl.constexpr, C: tl.constexpr, BK: tl.constexpr,
                   BV: tl.constexpr, NK: tl.constexpr, NV: tl.constexpr):  # fmt: skip
    """Through W = M Kb and U = M Vb: dVb = M^T dV', dKb = M^T dW, dv, dA = -(dVb U^T + dKb W^T) (masked by
    grad_intra_kernel), and their parts of dk, dbeta and dG."""
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    o_row, m_row, last, _ = _chunk_rows(chunk_seq, chunk_idx, cu, slot_base, i_c, C)
    o_i = tl.arange(0, C)
    p_tok = (o_row * H + i_h) + o_i * H
    b_beta = tl.load(beta + p_tok, mask=m_row, other=0.0).to(tl.float32)
    _, b_gamma, _, _ = _gates(g_cum, o_row, m_row, last, i_h, H, GATED, C)
    b_m = _load_rows(m_buf, o_row, m_row, i_h, H, C, o_i)
    b_da = tl.zeros([C, C], dtype=tl.float32)
    b_db = tl.zeros([C], dtype=tl.float32)
    for i_v in range(NV):
        o_v = i_v * BV + tl.arange(0, BV)
        b_dvn = _load_rows(dv_new, o_row, m_row, i_h, H, V, o_v)
        b_dvb = tl.dot(tl.trans(b_m), b_dvn, input_precision=DOT)  # [C, C]^T @ [C, BV] -> [C, BV]
        b_da -= tl.dot(b_dvb, tl.trans(_load_rows(u_buf, o_row, m_row, i_h, H, V, o_v)), input_precision=DOT)
        _store_rows(dv, b_dvb * b_beta[:, None], o_row, m_row, i_h, H, V, o_v)
        b_db += tl.sum(_load_rows(v, o_row, m_row, i_h, H, V, o_v) * b_dvb, 1)
    b_dgc = tl.zeros([C], dtype=tl.float32)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_dkb = tl.dot(tl.trans(b_m), _load_rows(dw_buf, o_row, m_row, i_h, H, K, o_k), input_precision=DOT)
        b_da -= tl.dot(b_dkb, tl.trans(_load_rows(w_buf, o_row, m_row, i_h, H, K, o_k)), input_precision=DOT)
        b_k = _load_rows(k, o_row, m_row, i_h, H, K, o_k)
        b_kb = b_k * (b_beta * b_gamma)[:, None]
        b_dk = _load_rows(dk, o_row, m_row, i_h, H, K, o_k) + b_dkb * (b_beta * b_gamma)[:, None]
        _store_rows(dk, b_dk, o_row, m_row, i_h, H, K, o_k)
        b_db += b_gamma * tl.sum(b_k * b_dkb, 1)
        b_dgc += tl.sum(b_kb * b_dkb, 1)
    _store_rows(da_buf, b_da, o_row, m_row, i_h, H, C, o_i)
    tl.store(dbeta + p_tok, b_db, mask=m_row)
    if GATED:
        tl.store(dg + p_tok, tl.load(dg + p_tok, mask=m_row, other=0.0) + b_dgc, mask=m_row)


@triton.jit
def grad_causal_kernel(q, k, g_cum, v_new, do, dq, dk, dg, chunk_seq, chunk_idx, cu, slot_base, scale, H, K, V,
                       GATED: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, NK: tl.constexpr,
                       NV: tl.constexpr):  # fmt: skip
    """Through O's intra-chunk term (tril(Q K^T) * Gamma) V': with dL = tril(dO V'^T) * Gamma, dq += dL K (dq is
    final here), dk += dL^T Q, and dG's part sum_j (dL * L)_ij - (dL * L)_ji."""
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    o_row, m_row, last, _ = _chunk_rows(chunk_seq, chunk_idx, cu, slot_base, i_c, C)
    b_gc, _, _, _ = _gates(g_cum, o_row, m_row, last, i_h, H, GATED, C)
    b_dl = tl.zeros([C, C], dtype=tl.float32)
    for i_v in range(NV):
        o_v = i_v * BV + tl.arange(0, BV)
        b_do = _load_rows(do, o_row, m_row, i_h, H, V, o_v)
        b_dl += tl.dot(b_do, tl.trans(_load_rows(v_new, o_row, m_row, i_h, H, V, o_v)), input_precision=DOT)
    b_ld = b_dl * _decay(b_gc, C, False)
    if GATED:
        b_s = tl.zeros([C, C], dtype=tl.float32)
        for i_k in range(NK):
            o_k = i_k * BK + tl.arange(0, BK)
            b_q = _load_rows(q, o_row, m_row, i_h, H, K, o_k) * scale
            b_s += tl.dot(b_q, tl.trans(_load_rows(k, o_row, m_row, i_h, H, K, o_k)), input_precision=DOT)
        b_z = b_ld * b_s
        p_tok = (o_row * H + i_h) + tl.arange(0, C) * H
        b_dgc = tl.load(dg + p_tok, mask=m_row, other=0.0) + tl.sum(b_z, 1) - tl.sum(b_z, 0)
        tl.store(dg + p_tok, b_dgc, mask=m_row)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_q = _load_rows(q, o_row, m_row, i_h, H, K, o_k) * scale
        b_k = _load_rows(k, o_row, m_row, i_h, H, K, o_k)
        b_dq = _load_rows(dq, o_row, m_row, i_h, H, K, o_k) + tl.dot(b_ld, b_k, input_precision=DOT)  # [C, C] @ [C, BK]
        _store_rows(dq, b_dq * scale, o_row, m_row, i_h, H, K, o_k)
        b_dk = _load_rows(dk, o_row, m_row, i_h, H, K, o_k)
        b_dk += tl.dot(tl.trans(b_ld), b_q, input_precision=DOT)  # [C, C]^T @ [C, BK] -> [C, BK]
        _store_rows(dk, b_dk, o_row, m_row, i_h, H, K, o_k)


@triton.jit
def grad_beta_kernel(k, beta, g_cum, da_buf, dk, dbeta, dg, dg_last, chunk_seq, chunk_idx, cu, slot_base, H, K,
                     GATED: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, NK: tl.constexpr):  # fmt: skip
    """Through A = tril(diag(beta) (K K^T * Gamma), -1): dA masked, dbeta += sum_j dA * K K^T * Gamma,
    dk += (dP + dP^T) K with dP = dA * Gamma * beta_i, and dG's last part; then dg from dG (dk, dbeta, dg final)."""
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    o_row, m_row, last, _ = _chunk_rows(chunk_seq, chunk_idx, cu, slot_base, i_c, C)
    o_i = tl.arange(0, C)
    p_tok = (o_row * H + i_h) + o_i * H
    b_beta = tl.load(beta + p_tok, mask=m_row, other=0.0).to(tl.float32)
    b_gc, _, _, _ = _gates(g_cum, o_row, m_row, last, i_h, H, GATED, C)
    b_kk = tl.zeros([C, C], dtype=tl.float32)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_k = _load_rows(k, o_row, m_row, i_h, H, K, o_k)
        b_kk += tl.dot(b_k, tl.trans(b_k), input_precision=DOT)  # [C, BK] @ [BK, C] -> [C, C]
    b_strict = _decay(b_gc, C, True)
    b_da = _load_rows(da_buf, o_row, m_row, i_h, H, C, o_i) * (b_strict > 0)
    b_kk = b_kk * b_strict
    tl.store(dbeta + p_tok, tl.load(dbeta + p_tok, mask=m_row, other=0.0) + tl.sum(b_da * b_kk, 1), mask=m_row)
    if GATED:
        b_z = b_da * b_kk * b_beta[:, None]
        b_dgc = tl.load(dg + p_tok, mask=m_row, other=0.0) + tl.sum(b_z, 1) - tl.sum(b_z, 0)
        b_dgc += tl.where(o_i == last, tl.load(dg_last + i_c * H + i_h), 0.0)
        # dg_j = sum_{i >= j} dG_i within the chunk, since G_i = sum_{j <= i} g_j.
        b_dg = tl.sum(b_dgc, 0) - tl.cumsum(b_dgc, 0) + b_dgc
        tl.store(dg + p_tok, b_dg, mask=m_row)
    b_dp = b_da * b_strict * b_beta[:, None]
    b_dps = b_dp + tl.trans(b_dp)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        b_dk = _load_rows(dk, o_row, m_row, i_h, H, K, o_k)
        b_dk += tl.dot(b_dps, _load_rows(k, o_row, m_row, i_h, H, K, o_k), input_precision=DOT)  # [C, C] @ [C, BK]
        _store_rows(dk, b_dk, o_row, m_row, i_h, H, K, o_k)


@triton.jit
def fused_recurrent_kernel(q, k, v, beta, g, h0, o, ht, cu, scale, H, K, V, HAS_H0: tl.constexpr, GATED: tl.constexpr,
                           BK: tl.constexpr, BV: tl.constexpr):  # fmt: skip
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos = tl.load(cu + i_n).to(tl.int64)
    eos = tl.load(cu + i_n + 1).to(tl.int64)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    if HAS_H0:
        p_0, m_h = _state_ptr(h0, i_n, i_h, H, K, V, o_k, o_v)
        b_h = tl.load(p_0, mask=m_h, other=0.0)
    else:
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for i_t in range(bos, eos):
        p_row = i_t * H + i_h
        b_k = tl.load(k + p_row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
        b_q = tl.load(q + p_row * K + o_k, mask=m_k, other=0.0).to(tl.float32) * scale
        b_v = tl.load(v + p_row * V + o_v, mask=m_v, other=0.0).to(tl.float32)
        b_beta = tl.load(beta + p_row).to(tl.float32)
        if GATED:
            b_h *= tl.exp(tl.load(g + p_row).to(tl.float32))
        b_err = b_v - tl.sum(b_h * b_k[:, None], 0)
        b_h += (b_beta * b_k)[:, None] * b_err[None, :]
        tl.store(o + p_row * V + o_v, tl.sum(b_h * b_q[:, None], 0).to(o.dtype.element_ty), mask=m_v)
    p_t, m_h = _state_ptr(ht, i_n, i_h, H, K, V, o_k, o_v)
    tl.store(p_t, b_h, mask=m_h)


# --- Launch configuration (the launchers are in triton_launch.py) ---------------------------------------------------
NUM_WARPS = 4
# The chunk kernels hold [C, C] fp32 tiles (64 x 64 at C = 64) and split every tf32x3 dot operand in two; 8 warps
# halve each thread's share of a tile (16 registers instead of 32).
CHUNK_WARPS = 8
# Tile widths over K and V in the chunk kernels: with these ptxas reports no spills for any spec in AOT_SPECS on
# sm_80 and sm_90 (README.md, "Build status"); BK = 64 with BV = 32 spilled in five of the kernels and BK = 32 still
# spilled in grad_wy_kernel and grad_causal_kernel on sm_80. The interpreter runs the same blocks, which keeps every
# code path exercised.
BLOCK_K = 16
BLOCK_V = 16


def tile_width(d: int, cap: int) -> int:
    """Power-of-2 tile width for a head dim d: >= 16 (tl.dot's smallest K) and <= cap."""
    return min(cap, max(16, triton.next_power_of_2(d)))


# --- Ahead-of-time builds: both rules, chunk 64, K = V = 64 / 128 / 256, fp16 / bf16 / fp32 inputs ----------------
_AOT_DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
_AOT_CHUNK = 64
# The CI build check compiles every kernel for both rules in fp16 and fp32 at d = 64 and d = 256 (80 of the 180
# specs): d changes only the chunk kernels' loop counts (ptxas gave the same registers at 64, 128 and 256 for each)
# and the fused recurrent kernel's [d, 16] state, which is largest at 256; bf16 is fp16's code with another
# conversion. The full list took 4.7 min with two jobs here (README.md, "Build status").
_CI_DIMS, _CI_DTYPES = (64, 256), ("fp16", "fp32")


def _sig(kernel, types: dict[str, str], constexprs: dict) -> dict[str, str]:
    return {name: ("constexpr" if name in constexprs else types.get(name, "*fp32")) for name in kernel.arg_names}


def _specs(dtype: torch.dtype, d: int, gated: bool) -> list[AotSpec]:
    """The configurations the launchers launch for one dtype, K = V = d and one rule."""
    t = _AOT_DTYPES[dtype]
    inputs = {name: f"*{t}" for name in ("q", "k", "v", "beta", "g", "do", "o")}
    ints = {name: "*i32" for name in ("chunk_seq", "chunk_idx", "slot_base")}
    types = {**inputs, **ints, "cu": "*i64", "H": "i32", "K": "i32", "V": "i32", "scale": "fp32"}
    bk, bv = tile_width(d, BLOCK_K), tile_width(d, BLOCK_V)
    nk, nv = triton.cdiv(d, bk), triton.cdiv(d, bv)
    tiles = {"GATED": gated, "C": _AOT_CHUNK, "BK": bk, "BV": bv, "NK": nk}
    rec_bv = tile_width(d, 16)
    configs = [
        (wy_fwd_kernel, {**tiles, "NV": nv}),
        (state_fwd_kernel, {**tiles, "HAS_H0": True}),
        (output_fwd_kernel, tiles),
        (dv_intra_kernel, tiles),
        (state_bwd_kernel, {**tiles, "HAS_DHT": True}),
        (grad_state_kernel, {**tiles, "NV": nv}),
        (grad_wy_kernel, {**tiles, "NV": nv}),
        (grad_causal_kernel, {**tiles, "NV": nv}),
        (grad_beta_kernel, {k: tiles[k] for k in ("GATED", "C", "BK", "NK")}),
        (fused_recurrent_kernel, {"HAS_H0": True, "GATED": gated, "BK": tile_width(d, 256), "BV": rec_bv}),
    ]
    rule = "gated" if gated else "delta"
    ci = d in _CI_DIMS and t in _CI_DTYPES
    return [AotSpec(kernel, _sig(kernel, types, cx), cx,
                    num_warps=NUM_WARPS if kernel is fused_recurrent_kernel else CHUNK_WARPS, num_stages=1,
                    name=f"{kernel.__name__}[{rule},{t},d{d}]", ci_build=ci) for kernel, cx in configs]  # fmt: skip


# Every configuration the launchers launch for both rules, chunk 64, K = V = 64 / 128 / 256 and the three dtypes
# (10 kernels, 180 specs), all spill-free on sm_80 and sm_90; `accelkit gpu-report` builds them all.
AOT_SPECS = [spec for dtype in _AOT_DTYPES for d in (64, 128, 256) for gated in (False, True)
             for spec in _specs(dtype, d, gated)]  # fmt: skip
