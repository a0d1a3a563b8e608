"""Launchers of delta_rule's Triton kernels (triton_kernels.py): the chunk forward, the chunk backward recomputing the
chunk states, and the fused recurrent forward, on CUDA tensors or, under TRITON_INTERPRET=1, on CPU tensors.
"""

from __future__ import annotations

import torch
import triton

from accelkit.kernels.delta_rule.triton_kernels import (
    BLOCK_K,
    BLOCK_V,
    CHUNK_WARPS,
    NUM_WARPS,
    dv_intra_kernel,
    fused_recurrent_kernel,
    grad_beta_kernel,
    grad_causal_kernel,
    grad_state_kernel,
    grad_wy_kernel,
    output_fwd_kernel,
    state_bwd_kernel,
    state_fwd_kernel,
    tile_width,
    wy_fwd_kernel,
)


def _layout(cu: list[int], chunk: int, device) -> dict:
    """Per-chunk (sequence, chunk) tables and each sequence's first state slot (a sequence of L tokens has
    ceil(L / C) + 1 states: one entering each chunk, then the final one)."""
    seq, idx, base = [], [], [0]
    for n, (a, b) in enumerate(zip(cu[:-1], cu[1:], strict=True)):
        chunks = -(-(b - a) // chunk)
        seq += [n] * chunks
        idx += list(range(chunks))
        base.append(base[-1] + chunks + 1)
    as_t = lambda x: torch.tensor(x, dtype=torch.int32, device=device)  # noqa: E731
    return {"chunk_seq": as_t(seq), "chunk_idx": as_t(idx), "slot_base": as_t(base[:-1]), "slots": base[-1],
            "final": torch.tensor(base[1:], dtype=torch.long, device=device) - 1,
            "first": torch.tensor(base[:-1], dtype=torch.long, device=device)}  # fmt: skip


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]).contiguous()


def _prepare(q, k, v, beta, g, cu_list, p):
    """Flattened contiguous inputs ([B * T, H, D]; the l2 norm applied), the prefix sums and their device copy."""
    if p.use_qk_l2norm:
        from accelkit.kernels.delta_rule.cpu import l2norm

        q, k = l2norm(q.float()), l2norm(k.float())
    cu = cu_list if cu_list is not None else [i * p.seqlen for i in range(p.batch + 1)]
    flat = [_flat(x) for x in (q, k, v, beta)] + [None if g is None else _flat(g)]
    return flat, cu, torch.tensor(cu, dtype=torch.int64, device=v.device)


def _forward_chunk(q, k, v, beta, g, h0, cu, cu_t, p, *, with_output: bool):
    """wy_fwd, state_fwd and (with_output) output_fwd; returns the fp32 buffers the backward reuses."""
    rows, h, kd, vd, c = q.shape[0], p.heads, p.key_dim, p.value_dim, p.chunk_size
    lay = _layout(cu, c, q.device)
    f32 = dict(dtype=torch.float32, device=q.device)
    buf = {"g_cum": torch.empty(rows, h, **f32) if g is not None else beta, "m": torch.empty(rows, h, c, **f32),
           "w": torch.empty(rows, h, kd, **f32), "u": torch.empty(rows, h, vd, **f32),
           "states": torch.empty(lay["slots"], h, kd, vd, **f32), "v_new": torch.empty(rows, h, vd, **f32)}  # fmt: skip
    bk, bv = tile_width(kd, BLOCK_K), tile_width(vd, BLOCK_V)
    nk, nv = triton.cdiv(kd, bk), triton.cdiv(vd, bv)
    n_chunks = lay["chunk_seq"].shape[0]
    gated = g is not None
    g_arg = g if gated else beta
    if n_chunks:
        wy_fwd_kernel[(n_chunks, h)](k, v, beta, g_arg, buf["g_cum"], buf["m"], buf["w"], buf["u"], lay["chunk_seq"],
                                     lay["chunk_idx"], cu_t, lay["slot_base"], h, kd, vd, GATED=gated, C=c, BK=bk,
                                     BV=bv, NK=nk, NV=nv, num_warps=CHUNK_WARPS)  # fmt: skip
    h0_arg = h0 if h0 is not None else buf["states"]
    state_fwd_kernel[(nv, p.batch * h)](k, buf["g_cum"], buf["w"], buf["u"], h0_arg, buf["states"], buf["v_new"], cu_t,
                                        lay["slot_base"], h, kd, vd, HAS_H0=h0 is not None, GATED=gated, C=c, BK=bk,
                                        BV=bv, NK=nk, num_warps=CHUNK_WARPS)  # fmt: skip
    if with_output:
        buf["o"] = torch.empty(rows, h, vd, dtype=q.dtype, device=q.device)
        if n_chunks:
            output_fwd_kernel[(nv, n_chunks, h)](q, k, buf["g_cum"], buf["states"], buf["v_new"], buf["o"],
                                                 lay["chunk_seq"], lay["chunk_idx"], cu_t, lay["slot_base"], p.scale,
                                                 h, kd, vd, GATED=gated, C=c, BK=bk, BV=bv, NK=nk,
                                                 num_warps=CHUNK_WARPS)  # fmt: skip
    return buf, lay


def _recurrent(q, k, v, beta, g, h0, cu, cu_t, p):
    rows, h, kd, vd = q.shape[0], p.heads, p.key_dim, p.value_dim
    o = torch.empty(rows, h, vd, dtype=q.dtype, device=q.device)
    ht = torch.empty(p.batch, h, kd, vd, dtype=torch.float32, device=q.device)
    bk, bv = tile_width(kd, 256), tile_width(vd, 16)
    grid = (triton.cdiv(vd, bv), p.batch * h)
    fused_recurrent_kernel[grid](q, k, v, beta, g if g is not None else beta, h0 if h0 is not None else ht, o, ht, cu_t,
                                 p.scale, h, kd, vd, HAS_H0=h0 is not None, GATED=g is not None, BK=bk, BV=bv,
                                 num_warps=NUM_WARPS)  # fmt: skip
    return o, ht


def delta_rule_fwd(q, k, v, beta, g, h0, cu_list, p):
    """Forward on CUDA (or the interpreter): (o [B, T, H, V] in q's dtype, final state fp32 [N, H, K, V])."""
    shape = (*q.shape[:3], p.value_dim)
    if q.numel() == 0 or v.numel() == 0 or p.batch == 0:
        ht = (
            h0.clone() if h0 is not None else q.new_zeros(p.batch, p.heads, p.key_dim, p.value_dim, dtype=torch.float32)
        )
        return q.new_zeros(shape), ht
    (qf, kf, vf, bf, gf), cu, cu_t = _prepare(q, k, v, beta, g, cu_list, p)
    h0 = None if h0 is None else h0.contiguous()
    if p.mode == "recurrent":
        o, ht = _recurrent(qf, kf, vf, bf, gf, h0, cu, cu_t, p)
        return o.to(q.dtype).reshape(shape), ht
    buf, lay = _forward_chunk(qf, kf, vf, bf, gf, h0, cu, cu_t, p, with_output=True)
    return buf["o"].to(q.dtype).reshape(shape), buf["states"].index_select(0, lay["final"])


def delta_rule_bwd(do, dht, q, k, v, beta, g, h0, cu_list, p):
    """Backward through the chunk form (either mode), recomputing the chunk states:
    (dq, dk, dv, dbeta, dg, dh0); dg is zeros when ungated, dh0 is returned even without an initial state."""
    dh0_shape = (p.batch, p.heads, p.key_dim, p.value_dim)
    if q.numel() == 0 or v.numel() == 0 or p.batch == 0:
        zeros = [torch.zeros_like(x) for x in (q, k, v, beta)]
        dg = torch.zeros_like(beta if g is None else g)
        return (*zeros, dg, dht.float().clone() if dht is not None else q.new_zeros(dh0_shape, dtype=torch.float32))
    (qf, kf, vf, bf, gf), cu, cu_t = _prepare(q, k, v, beta, g, cu_list, p)
    h0 = None if h0 is None else h0.contiguous()
    buf, lay = _forward_chunk(qf, kf, vf, bf, gf, h0, cu, cu_t, p, with_output=False)
    rows, h, kd, vd, c = qf.shape[0], p.heads, p.key_dim, p.value_dim, p.chunk_size
    bk, bv = tile_width(kd, BLOCK_K), tile_width(vd, BLOCK_V)
    nk, nv = triton.cdiv(kd, bk), triton.cdiv(vd, bv)
    f32 = dict(dtype=torch.float32, device=q.device)
    dof = _flat(do)
    dstates = torch.empty(lay["slots"], h, kd, vd, **f32)
    dv_new = torch.empty(rows, h, vd, **f32)
    gated = g is not None
    dht_c = dht.float().contiguous()
    n_chunks = lay["chunk_seq"].shape[0]
    if n_chunks:
        dv_intra_kernel[(nv, n_chunks, h)](qf, kf, buf["g_cum"], dof, dv_new, lay["chunk_seq"], lay["chunk_idx"], cu_t,
                                           lay["slot_base"], p.scale, h, kd, vd, GATED=gated, C=c, BK=bk, BV=bv,
                                           NK=nk, num_warps=CHUNK_WARPS)  # fmt: skip
    state_bwd_kernel[(nv, p.batch * h)](qf, kf, buf["g_cum"], buf["w"], dof, dht_c, dstates, dv_new, cu_t,
                                        lay["slot_base"], p.scale, h, kd, vd, HAS_DHT=True, GATED=gated, C=c, BK=bk,
                                        BV=bv, NK=nk, num_warps=CHUNK_WARPS)  # fmt: skip
    dq, dk = torch.empty(rows, h, kd, **f32), torch.empty(rows, h, kd, **f32)
    dv = torch.empty(rows, h, vd, **f32)
    dbeta, dg = torch.empty(rows, h, **f32), torch.zeros(rows, h, **f32)
    if n_chunks:
        da, dw = torch.empty(rows, h, c, **f32), torch.empty(rows, h, kd, **f32)
        dg_last = torch.empty(n_chunks, h, **f32)
        tables = (lay["chunk_seq"], lay["chunk_idx"], cu_t, lay["slot_base"])
        tiles = dict(GATED=gated, C=c, BK=bk, BV=bv, NK=nk, NV=nv, num_warps=CHUNK_WARPS)
        grad_state_kernel[(n_chunks, h)](qf, kf, buf["g_cum"], buf["states"], buf["v_new"], dstates, dv_new, dof, dq,
                                         dk, dw, dg, dg_last, *tables, p.scale, h, kd, vd, **tiles)  # fmt: skip
        grad_wy_kernel[(n_chunks, h)](kf, vf, bf, buf["g_cum"], buf["m"], buf["w"], buf["u"], dv_new, dw, dk, dv, dbeta,
                                      dg, da, *tables, h, kd, vd, **tiles)  # fmt: skip
        grad_causal_kernel[(n_chunks, h)](qf, kf, buf["g_cum"], buf["v_new"], dof, dq, dk, dg, *tables, p.scale, h,
                                          kd, vd, **tiles)  # fmt: skip
        grad_beta_kernel[(n_chunks, h)](kf, bf, buf["g_cum"], da, dk, dbeta, dg, dg_last, *tables, h, kd, GATED=gated,
                                        C=c, BK=bk, NK=nk, num_warps=CHUNK_WARPS)  # fmt: skip
    shape_k, shape_v = q.shape, v.shape
    dq, dk = dq.reshape(shape_k), dk.reshape(shape_k)
    if p.use_qk_l2norm:
        from accelkit.kernels.delta_rule.cpu import l2norm_backward

        dq, dk = l2norm_backward(q.float(), dq), l2norm_backward(k.float(), dk)
    dh0 = dstates.index_select(0, lay["first"])
    return (dq.to(q.dtype), dk.to(k.dtype), dv.reshape(shape_v).to(v.dtype), dbeta.reshape(beta.shape).to(beta.dtype),
            dg.reshape(beta.shape).to(beta.dtype if g is None else g.dtype), dh0)  # fmt: skip
