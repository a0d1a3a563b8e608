"""CPU path of delta_rule: the C++ kernels when the extension is built, PyTorch otherwise.

Forward: mode="chunk" runs the C++ chunk form (csrc/delta_rule_chunk.cpp: one OpenMP program per (sequence, head)
walking its chunks, README.md "CPU path"), mode="recurrent" the C++ token loop (csrc/delta_rule.cpp). Without the
extension both run here in PyTorch: the chunkwise WY form batched over sequences, heads and chunks, with one short
Python loop over chunks for the state pass (never over tokens), and the token recurrence; `chunk_forward` is also
the tests' cross-check of the C++ chunk form. In PyTorch every intra-chunk product (K K^T, the unit-lower-triangular
inverse, W and U, Q K^T) is one batched call over all chunks at once; only `V' = U - W S` and `S <- gamma_C S + Kd^T
V'` run chunk after chunk. Sequences are laid out as [N, H, T_pad, D] with T padded to a multiple of the chunk: a
padded token has k = v = q = 0, beta = 0 and g = 0, so it leaves the state unchanged (its rows of A, W and U are
zero) and its output is dropped. Varlen inputs are gathered into that layout, so sequences never share a chunk.

Arithmetic is float32 (16-bit inputs are widened, as the Triton kernels accumulate); the state is float32. The
backward (`chunk_backward`, README.md "Backward") recomputes the chunk states, runs the state gradient backwards
over chunks, then computes every input gradient for all chunks at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from accelkit._native import available as native_available
from accelkit._native import native
from accelkit.kernels._common.memory import output_like
from accelkit.kernels.delta_rule.args import Problem
from accelkit.kernels.delta_rule.reference import L2_EPS


def l2norm(x: Tensor) -> Tensor:
    """x * rsqrt(sum x^2 + 1e-6) over the last axis, fla's l2norm."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + L2_EPS)


def _gather_index(cu: list[int], t_pad: int, device) -> tuple[Tensor, Tensor]:
    """[N, t_pad] token index into the packed T (T itself, one past the end, for padding) and the flat positions
    of the real tokens in the [N * t_pad] padded order."""
    total = cu[-1]
    idx = torch.full((len(cu) - 1, t_pad), total, dtype=torch.long, device=device)
    flat = []
    for n, (a, b) in enumerate(zip(cu[:-1], cu[1:], strict=True)):
        idx[n, : b - a] = torch.arange(a, b, device=device)
        flat.append(torch.arange(n * t_pad, n * t_pad + b - a, device=device))
    return idx, torch.cat(flat)


def to_padded(x: Tensor, cu: list[int] | None, t_pad: int) -> Tensor:
    """[B, T, H, *D] -> [N, H, t_pad, *D] in float32, zero padding."""
    x = x.float()
    if cu is None:
        x = x.movedim(2, 1)
        if t_pad == x.shape[2]:
            return x  # a view: the chunk layout copies it once
        pad = [0, 0] * (x.dim() - 3) + [0, t_pad - x.shape[2]]
        return F.pad(x, pad)
    idx, _ = _gather_index(cu, t_pad, x.device)
    packed = torch.cat([x[0], x.new_zeros(1, *x.shape[2:])])
    return packed[idx].movedim(2, 1)


def from_padded(y: Tensor, cu: list[int] | None, t: int) -> Tensor:
    """[N, H, t_pad, V] -> [B, T, H, V]."""
    y = y.movedim(1, 2)
    if cu is None:
        return y[:, :t]
    _, flat = _gather_index(cu, y.shape[1], y.device)
    return y.reshape(y.shape[0] * y.shape[1], *y.shape[2:])[flat].unsqueeze(0)


def _chunk_major(x: Tensor, chunk: int) -> Tensor:
    """[N, H, T_pad, *D] -> contiguous [NC, N, H, C, *D]: chunk c's batch of matrices is then x[c], contiguous, so
    neither the batched products nor the chunk loop copy their operands."""
    return x.unflatten(2, (x.shape[2] // chunk, chunk)).movedim(2, 0).contiguous()


def _token_major(x: Tensor) -> Tensor:
    """[NC, N, H, C, *D] -> [N, H, T_pad, *D], a view of a contiguous [N, T_pad, H, *D] (the caller's layout)."""
    nc, n, h, c = x.shape[:4]
    return x.permute(1, 0, 3, 2, *range(4, x.dim())).reshape(n, nc * c, h, *x.shape[4:]).movedim(1, 2)


def _chunk_terms(q: Tensor, k: Tensor, beta: Tensor, g: Tensor | None, chunk: int) -> dict[str, Tensor | None]:
    """The per-chunk quantities that need no state, batched over all chunks: tensors [NC, N, H, C, *]."""
    q, k, beta = (_chunk_major(x, chunk) for x in (q, k, beta))
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=k.device).tril()
    t = {"q": q, "k": k, "beta": beta, "causal": causal, "gamma": None, "gamma_last": None, "k_decayed": k}
    if g is None:
        t["decay"] = causal.to(k.dtype)
    else:
        big_g = _chunk_major(g, chunk).cumsum(-1)
        diff = big_g[..., :, None] - big_g[..., None, :]
        # exp of the masked-out (i < j) differences could overflow and turn 0 * inf into NaN, so mask first.
        t["decay"] = torch.exp(diff.masked_fill(~causal, float("-inf")))
        t["gamma"] = torch.exp(big_g)
        t["gamma_last"] = t["gamma"][..., -1]
        t["k_factor"] = torch.exp(big_g[..., -1:] - big_g)[..., None]
        t["k_decayed"] = k * t["k_factor"]
    t["kk"] = k @ k.transpose(-1, -2)
    t["kb"] = k * (beta if g is None else beta * t["gamma"])[..., None]
    if g is None:  # the decay is the causal mask: a triangle in place instead of a product
        t["a"] = (t["kk"] * beta[..., :, None]).tril_(-1)
        t["scores"] = (q @ k.transpose(-1, -2)).tril_()
    else:
        t["a"] = (t["kk"] * t["decay"] * beta[..., :, None]).tril_(-1)
        t["scores"] = (q @ k.transpose(-1, -2)) * t["decay"]
    return t


def _state_pass(t: dict, u: Tensor, w: Tensor, h0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The sequential part: entering states [NC, N, H, K, V], V' [NC, N, H, C, V] and the final state.

    Each chunk is two fused multiply-adds on [N * H] batches (baddbmm), written in place: the chunks are small
    (64 x 64 per head), so the cost is the number of torch calls per chunk, not the FLOPs."""
    nc, n, h, c, dv = u.shape
    dk = h0.shape[-2]
    states = h0.new_empty(nc + 1, n * h, dk, dv)
    states[0] = h0.reshape(n * h, dk, dv)
    v_new = torch.empty_like(u)
    u3, w3, v3 = u.reshape(nc, n * h, c, dv), w.reshape(nc, n * h, c, dk), v_new.view(nc, n * h, c, dv)
    kd = t["k_decayed"].reshape(nc, n * h, c, dk)
    gamma_last = t["gamma_last"]
    for i in range(nc):
        torch.baddbmm(u3[i], w3[i], states[i], alpha=-1.0, out=v3[i])
        entering = states[i] if gamma_last is None else gamma_last[i].reshape(n * h, 1, 1) * states[i]
        torch.baddbmm(entering, kd[i].transpose(-1, -2), v3[i], out=states[i + 1])
    # The final state is copied out, so the op's output never keeps the whole [NC + 1] buffer alive.
    return states[:-1].view(nc, n, h, dk, dv), v_new, states[-1].view(n, h, dk, dv).clone()


# Diagonal blocks of this size are inverted by forward substitution (one batched row step each); larger blocks are
# merged by matmuls. torch's batched solve_triangular loops over the batch internally and was the whole cost.
SUBST_BLOCK = 16


def unit_lower_inverse(a: Tensor) -> Tensor:
    """(I + a)^{-1} for a [..., C, C] strictly lower triangular, batched: forward substitution inside diagonal
    blocks of SUBST_BLOCK, then merges of neighbouring blocks, [[M11, 0], [-M22 A21 M11, M22]], doubling the size."""
    c = a.shape[-1]
    b = min(SUBST_BLOCK, c)
    nb = c // b
    blocks = torch.stack([a[..., i * b : (i + 1) * b, i * b : (i + 1) * b] for i in range(nb)], -3)
    md = torch.eye(b, dtype=a.dtype, device=a.device).expand(blocks.shape).clone()
    for i in range(1, b):
        md[..., i, :i] = -(blocks[..., i : i + 1, :i] @ md[..., :i, :i]).squeeze(-2)
    m = a.new_zeros(a.shape)
    for i in range(nb):
        m[..., i * b : (i + 1) * b, i * b : (i + 1) * b] = md[..., i, :, :]
    size = b
    while size < c:
        for start in range(0, c, 2 * size):
            r1, r2 = slice(start, start + size), slice(start + size, start + 2 * size)
            m[..., r2, r1] = -(m[..., r2, r2] @ (a[..., r2, r1] @ m[..., r1, r1]))
        size *= 2
    return m


def _wy(t: dict, v: Tensor) -> tuple[Tensor, Tensor]:
    """W = (I + A)^{-1} (beta gamma K), U = (I + A)^{-1} (beta V)."""
    t["m"] = unit_lower_inverse(t["a"])
    return t["m"] @ t["kb"], t["m"] @ (v * t["beta"][..., None])


def chunk_forward(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None, h0: Tensor, chunk: int):
    """WY chunk form on padded float32 [N, H, T_pad, D] (q already scaled): (o [N, H, T_pad, V], final state)."""
    t = _chunk_terms(q, k, beta, g, chunk)
    w, u = _wy(t, _chunk_major(v, chunk))
    entering, v_new, state = _state_pass(t, u, w, h0)
    qg = t["q"] if t["gamma"] is None else t["q"] * t["gamma"][..., None]
    o = qg @ entering + t["scores"] @ v_new
    return _token_major(o), state


def _rowsum(x: Tensor, y: Tensor) -> Tensor:
    return (x * y).sum(-1)


def _reverse_pass(t: dict, w: Tensor, do: Tensor, dht: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the states leaving each chunk [NC, N, H, K, V], of V' [NC, N, H, C, V], and dh0."""
    nc = w.shape[0]
    l_t_do = t["scores"].transpose(-1, -2) @ do
    qg = t["q"] if t["gamma"] is None else t["q"] * t["gamma"][..., None]
    qg_t_do = qg.transpose(-1, -2) @ do
    leaving, dvn = dht.new_empty(nc, *dht.shape), torch.empty_like(do)
    d_state = dht.clone() if not nc else dht
    for c in range(nc - 1, -1, -1):
        leaving[c] = d_state
        torch.add(t["k_decayed"][c] @ d_state, l_t_do[c], out=dvn[c])
        if t["gamma_last"] is not None:
            d_state = t["gamma_last"][c][..., None, None] * d_state
        d_state = d_state + qg_t_do[c] - w[c].transpose(-1, -2) @ dvn[c]
    return leaving, dvn, d_state


def chunk_backward(q, k, v, beta, g, h0, do, dht, chunk: int):
    """Reverse mode of `chunk_forward` (README.md, "Backward"), recomputing the chunk states: padded float32
    in, (dq_scaled, dk, dv, dbeta, dg or None, dh0) out, dq_scaled being the gradient of the scaled q."""
    t = _chunk_terms(q, k, beta, g, chunk)
    v, do = _chunk_major(v, chunk), _chunk_major(do, chunk)
    w, u = _wy(t, v)
    entering, v_new, _ = _state_pass(t, u, w, h0)
    leaving, dvn, dh0 = _reverse_pass(t, w, do, dht)
    qs, kc, b, gamma = t["q"], t["k"], t["beta"], t["gamma"]
    # S1 = gamma_C S0 + Kd^T V' and O = Qg S0 + L V'.
    d_kd = v_new @ leaving.transpose(-1, -2)
    d_qg = do @ entering.transpose(-1, -2)
    d_l = (do @ v_new.transpose(-1, -2)) * t["causal"]
    d_ld = d_l * t["decay"]
    dq = d_ld @ kc + (d_qg if gamma is None else d_qg * gamma[..., None])
    dk = d_ld.transpose(-1, -2) @ qs
    dk = dk + (d_kd if gamma is None else d_kd * t["k_factor"])
    # V' = U - W S0, then W = M Kb, U = M Vb with M = (I + A)^{-1}: dKb = M^T dW, dVb = M^T dU, dA = -(dVb U^T +
    # dKb W^T) on the strict lower triangle.
    d_w = -(dvn @ entering.transpose(-1, -2))
    m_t = t["m"].transpose(-1, -2)
    d_kb, d_vb = m_t @ d_w, m_t @ dvn
    d_a = -(d_vb @ u.transpose(-1, -2) + d_kb @ w.transpose(-1, -2)).tril(-1)
    dv = d_vb * b[..., None]
    bg = b if gamma is None else b * gamma
    dk = dk + d_kb * bg[..., None]
    kk_decay = t["kk"] * t["decay"]
    dbeta = _rowsum(v, d_vb) + _rowsum(kc, d_kb) * (1.0 if gamma is None else gamma) + _rowsum(d_a, kk_decay)
    d_p = d_a * t["decay"] * b[..., :, None]
    dk = dk + (d_p + d_p.transpose(-1, -2)) @ kc
    dg = None
    if gamma is not None:
        dg = _gate_grad(t, entering, leaving, d_qg, d_l, d_kd, d_kb, d_a)
    return (*(_token_major(x) for x in (dq, dk, dv, dbeta)), dg, dh0)


def _gate_grad(t, entering, leaving, d_qg, d_l, d_kd, d_kb, d_a) -> Tensor:
    """dg from the gradient of the chunk-local cumulative log decays G: every use of G in the chunk form."""
    qg = t["q"] * t["gamma"][..., None]
    z = d_l * t["scores"] + d_a * t["a"]
    d_big = _rowsum(qg, d_qg) + _rowsum(t["kb"], d_kb) + z.sum(-1) - z.sum(-2)
    t7 = _rowsum(t["k_decayed"], d_kd)
    d_big = d_big - t7
    last = t7.sum(-1) + t["gamma_last"] * (entering * leaving).sum((-1, -2))
    d_big = torch.cat([d_big[..., :-1], (d_big[..., -1] + last)[..., None]], dim=-1)
    return _token_major(d_big.flip(-1).cumsum(-1).flip(-1))


def recurrent_forward(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None, h0: Tensor):
    """Token loop on padded float32 [N, H, T, D] (q already scaled): (o [N, H, T, V], final state)."""
    state, outs = h0, []
    for t in range(k.shape[2]):
        if g is not None:
            state = torch.exp(g[:, :, t])[..., None, None] * state
        kt = k[:, :, t]
        err = v[:, :, t] - (kt.unsqueeze(-2) @ state).squeeze(-2)
        state = state + (beta[:, :, t, None] * kt).unsqueeze(-1) * err.unsqueeze(-2)
        outs.append((q[:, :, t].unsqueeze(-2) @ state).squeeze(-2))
    if not outs:
        return v.new_zeros(v.shape), h0.clone()
    return torch.stack(outs, 2), state


def _padded_inputs(q, k, v, beta, g, h0, cu: list[int] | None, p: Problem, chunk: int):
    longest = p.seqlen if cu is None else max(b - a for a, b in zip(cu[:-1], cu[1:], strict=True))
    t_pad = -(-longest // chunk) * chunk
    qp, kp, vp, bp = (to_padded(x, cu, t_pad) for x in (q, k, v, beta))
    gp = None if g is None else to_padded(g, cu, t_pad)
    h0 = qp.new_zeros(p.batch, p.heads, p.key_dim, p.value_dim) if h0 is None else h0.float()
    return qp * p.scale, kp, vp, bp, gp, h0


def delta_rule_cpu(q, k, v, beta, g, h0, cu: list[int] | None, p: Problem) -> tuple[Tensor, Tensor]:
    """Forward: (o in q's dtype, contiguous [B, T, H, V]; final state float32 [N, H, K, V])."""
    dtype = q.dtype
    if p.use_qk_l2norm:
        q, k = l2norm(q.float()), l2norm(k.float())
    if native_available():
        return native_forward(q, k, v, beta, g, h0, cu, p, dtype)
    if p.mode == "chunk":
        o, state = chunk_forward(*_padded_inputs(q, k, v, beta, g, h0, cu, p, p.chunk_size), p.chunk_size)
    else:
        o, state = recurrent_forward(*_padded_inputs(q, k, v, beta, g, h0, cu, p, 1))
    return from_padded(o, cu, p.seqlen).to(dtype).contiguous(), state.contiguous()


def native_forward(q, k, v, beta, g, h0, cu: list[int] | None, p: Problem, dtype) -> tuple[Tensor, Tensor]:
    """Either mode through C++: the chunk form (csrc/delta_rule_chunk.cpp) or the token loop (csrc/delta_rule.cpp).
    float32 rows [B * T, H, D] in, one program per (sequence, head); torch's thread count is passed on, so
    torch.set_num_threads governs these kernels as it does torch's own ops."""
    rows = q.shape[0] * q.shape[1]

    def flat(x: Tensor) -> Tensor:
        return x.reshape(rows, *x.shape[2:]).float().contiguous()

    offsets = cu if cu is not None else [i * p.seqlen for i in range(p.batch + 1)]
    v_rows = flat(v)
    # From the result pool (kernels/_common/memory.py): a fresh output of many MiB faults in each 4 KiB page on
    # first write, which at long T is a fixed share of the forward; pooled buffers are mapped already.
    o = output_like(v_rows)
    state = torch.empty(p.batch, p.heads, p.key_dim, p.value_dim)
    h0c = None if h0 is None else h0.float().contiguous().numpy()
    args = (flat(q).numpy(), flat(k).numpy(), v_rows.numpy(), flat(beta).numpy(),
            None if g is None else flat(g).numpy(), h0c, torch.tensor(offsets, dtype=torch.int64).numpy(),
            o.numpy(), state.numpy(), p.scale)  # fmt: skip
    if p.mode == "chunk":
        native().delta_rule_chunk(*args, p.chunk_size, threads=torch.get_num_threads())
    else:
        native().delta_rule_recurrent(*args, threads=torch.get_num_threads())
    return o.reshape(*q.shape[:3], p.value_dim).to(dtype), state


def l2norm_backward(x: Tensor, dy: Tensor) -> Tensor:
    r = torch.rsqrt((x * x).sum(-1, keepdim=True) + L2_EPS)
    y = x * r
    return r * (dy - y * (y * dy).sum(-1, keepdim=True))


def delta_rule_backward_cpu(do, dht, q, k, v, beta, g, h0, cu: list[int] | None, p: Problem):
    """Gradients (dq, dk, dv, dbeta, dg, dh0) through the chunk form (either mode: both compute the same function);
    dg is zeros when ungated and dh0 is returned even without an initial state."""
    dtype, q_in, k_in = q.dtype, q.float(), k.float()
    if p.use_qk_l2norm:
        q, k = l2norm(q_in), l2norm(k_in)
    chunk = p.chunk_size
    padded = _padded_inputs(q, k, v, beta, g, h0, cu, p, chunk)
    do_p = to_padded(do, cu, padded[0].shape[2])
    dq, dk, dv, dbeta, dg, dh0 = chunk_backward(*padded, do_p, dht.float(), chunk)
    dq, dk, dv = (from_padded(x, cu, p.seqlen) for x in (dq * p.scale, dk, dv))
    dbeta = from_padded(dbeta[..., None], cu, p.seqlen)[..., 0]
    if p.use_qk_l2norm:
        dq, dk = l2norm_backward(q_in, dq), l2norm_backward(k_in, dk)
    dg = torch.zeros_like(dbeta) if dg is None else from_padded(dg[..., None], cu, p.seqlen)[..., 0]
    dg = dg.to(beta.dtype if g is None else g.dtype)
    grads = (dq.to(dtype), dk.to(dtype), dv.to(dtype), dbeta.to(beta.dtype), dg)
    return (*(x.contiguous() for x in grads), dh0.contiguous())
