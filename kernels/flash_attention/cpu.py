"""CPU path of flash_attention: torch's own fused CPU kernel where it covers the arguments, a blocked PyTorch
implementation where it does not.

- torch's flash-attention CPU kernel (`aten._scaled_dot_product_flash_attention_for_cpu`, what
  `scaled_dot_product_attention` runs on CPU for plain and causal attention) returns the natural-log LSE with the
  output, and its backward takes (out, lse) and recomputes P from them, FA2's scheme. It covers no window, no softcap
  and no varlen, and its causal mask is aligned top-left. Bottom-right causal attention is split instead of masked
  (no T_q x T_k mask is ever built): with d = T_k - T_q > 0 the first d keys are visible to every query (one
  non-causal call) and the last T_q keys form a top-left causal square (one causal call), merged by their LSEs;
  with d < 0 the first -d queries see nothing and the rest form a causal square over all T_k keys. The backward
  of each piece, given the *merged* out and LSE, is exactly that piece's share of the gradient (its P is the true
  P restricted to its keys, and delta = rowsum(dO * O) is a property of the row), so the pieces' dQ add up and their
  dK, dV concatenate.
- The blocked implementation (window, softcap, or a gradient flowing into the LSE) walks query blocks and, inside,
  key blocks with the online-softmax merge of kernels/attention/README.md, skipping the key blocks a query block's
  window cannot reach, so memory is O(BLOCK_Q x BLOCK_K) per (batch, head) whatever T_q and T_k are. GQA is a
  broadcast over the group axis of q viewed as [B, H_kv, G, T, D], so k and v are never copied per query head.
- Varlen runs each sequence through the dense path.

Arithmetic is float32 for 16-bit inputs (as the fused kernel accumulates), the input's precision otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from accelkit.kernels.flash_attention.args import Problem

_FLASH = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_FLASH_BWD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
# Score tiles of 128 x 512: 256 KB of fp32 per (batch, head), a few of them live at once, so a step stays in L2.
BLOCK_Q, BLOCK_K = 128, 512


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _key_range(q0: int, q1: int, t_q: int, t_k: int, p: Problem) -> tuple[int, int]:
    """[lo, hi): the keys that queries q0 .. q1 - 1 can see (bottom-right diagonal, window sides)."""
    diag = t_k - t_q
    lo = max(q0 + diag - p.left, 0) if p.left >= 0 else 0
    hi = min(q1 - 1 + diag + p.right + 1, t_k) if p.right >= 0 else t_k
    return lo, max(lo, hi)


def _visible(q0: int, q1: int, k0: int, k1: int, t_q: int, t_k: int, p: Problem, device) -> Tensor | None:
    """bool [q1 - q0, k1 - k0] of visible pairs, or None when the whole tile is visible."""
    diag = torch.arange(q0, q1, device=device)[:, None] + (t_k - t_q)
    j = torch.arange(k0, k1, device=device)[None, :]
    vis = torch.ones((q1 - q0, k1 - k0), dtype=torch.bool, device=device)
    if p.left >= 0:
        vis &= j >= diag - p.left
    if p.right >= 0:
        vis &= j <= diag + p.right
    return None if bool(vis.all()) else vis


def _sdpa_pieces(t_q: int, t_k: int, p: Problem) -> list[tuple[slice, slice, bool]] | None:
    """(query rows, keys, top-left causal) calls of the fused kernel that make up this problem; None if it cannot."""
    if p.softcap > 0 or p.left >= 0:
        return None
    if p.right < 0:
        return [(slice(0, t_q), slice(0, t_k), False)]
    if p.right > 0:
        return None
    d = t_k - t_q
    if d == 0:
        return [(slice(0, t_q), slice(0, t_k), True)]
    if d > 0:
        return [(slice(0, t_q), slice(0, d), False), (slice(0, t_q), slice(d, t_k), True)]
    return [(slice(-d, t_q), slice(0, t_k), True)]


def _expand_kv(x: Tensor, group: int) -> Tensor:
    """[B, T, H_kv, D] -> [B, T, H_q, D] for the fused kernel, which has no GQA: kv head h // G serves head h."""
    return x if group == 1 else x.repeat_interleave(group, dim=2)


def _unit_last(x: Tensor) -> Tensor:
    """torch's fused CPU kernel reads each head's D elements as contiguous whatever the last stride says (torch
    2.13: a view strided along D gives wrong results), so such views are copied first."""
    return x if x.stride(-1) == 1 or x.shape[-1] <= 1 else x.contiguous()


def _heads(x: Tensor) -> Tensor:
    """[B, T, H, X] <-> [B, H, T, X] (a view)."""
    return x.transpose(1, 2)


def _sdpa_forward(q, k, v, p: Problem, pieces) -> tuple[Tensor, Tensor]:
    b, t_q, h_q, _ = q.shape
    q, k, v = _unit_last(q), _expand_kv(_unit_last(k), p.group), _expand_kv(_unit_last(v), p.group)
    results = []
    for rows, keys, causal in pieces:
        o, lse = _FLASH(_heads(q[:, rows]), _heads(k[:, keys]), _heads(v[:, keys]), 0.0, causal, scale=p.scale)
        results.append((rows, _heads(o), lse))
    if len(results) == 1 and results[0][0] == slice(0, t_q):
        return results[0][1].contiguous(), results[0][2].contiguous()
    out = torch.zeros(q.shape, dtype=q.dtype)
    lse = torch.full((b, h_q, t_q), float("-inf"))
    if len(results) == 1:
        rows, o, piece_lse = results[0]
        out[:, rows], lse[:, :, rows] = o, piece_lse
        return out, lse
    # Two pieces over all rows (d > 0): both see at least one key, so both LSEs are finite.
    (_, o_a, lse_a), (_, o_b, lse_b) = results
    lse = torch.logaddexp(lse_a, lse_b)
    w_a, w_b = (_heads(torch.exp(x - lse))[..., None] for x in (lse_a, lse_b))
    out.copy_(w_a * o_a.float() + w_b * o_b.float())
    return out, lse.contiguous()


def _sdpa_backward(do, q, k, v, out, lse, p: Problem, pieces) -> tuple[Tensor, Tensor, Tensor]:
    b, t_k, h_kv, d = k.shape
    do, q, out = _unit_last(do), _unit_last(q), _unit_last(out)
    k_e, v_e = _expand_kv(_unit_last(k), p.group), _expand_kv(_unit_last(v), p.group)
    calls = [
        (rows, keys, _FLASH_BWD(
            _heads(do[:, rows]), _heads(q[:, rows]), _heads(k_e[:, keys]), _heads(v_e[:, keys]),
            _heads(out[:, rows]), lse[:, :, rows], 0.0, causal, scale=p.scale,
        ))
        for rows, keys, causal in pieces
    ]  # fmt: skip
    if len(calls) == 1 and calls[0][0] == slice(0, q.shape[1]):
        # One call over every row and key (the common case): its gradients are the answer, with no extra pass.
        dq, dk, dv = (_heads(g).contiguous() for g in calls[0][2])
    else:
        dq = torch.zeros(q.shape, dtype=q.dtype)
        dk, dv = (torch.zeros(k_e.shape, dtype=k.dtype) for _ in range(2))
        for rows, keys, grads in calls:
            dq[:, rows] += _heads(grads[0])
            dk[:, keys] += _heads(grads[1])
            dv[:, keys] += _heads(grads[2])
    if p.group > 1:
        dk, dv = (x.view(b, t_k, h_kv, p.group, d).sum(3) for x in (dk, dv))
    return dq, dk, dv


def _rows(x: Tensor, h_kv: int, dtype: torch.dtype) -> Tensor:
    """q-like [B, T, H_q, X] -> [B, H_kv, T * G, X], contiguous, in the compute dtype: row r is token r // G of
    query head (kv head) * G + r % G, so one tile of a kv head's rows is a plain batched matmul against its keys
    (no broadcast over the group, which would copy the keys per tile) and dK, dV sum over the group for free."""
    b, t, h_q, x_dim = x.shape
    return x.reshape(b, t, h_kv, h_q // h_kv, x_dim).transpose(1, 2).reshape(b, h_kv, -1, x_dim).to(dtype)


def _unrows(x: Tensor, h_q: int) -> Tensor:
    """The inverse of _rows: [B, H_kv, T * G, X] -> [B, T, H_q, X], contiguous (with G = 1 the last reshape can
    return a transposed view, and the op's outputs and gradients are contiguous)."""
    b, h_kv, rows, x_dim = x.shape
    y = x.reshape(b, h_kv, rows // (h_q // h_kv), -1, x_dim).transpose(1, 2).reshape(b, -1, h_q, x_dim)
    return y.contiguous()


def _lse_rows(lse: Tensor, h_kv: int) -> Tensor:
    """[B, H_q, T] -> [B, H_kv, T * G] in the row order of _rows."""
    b, h_q, t = lse.shape
    return lse.reshape(b, h_kv, h_q // h_kv, t).transpose(2, 3).reshape(b, h_kv, -1)


def _lse_unrows(lse: Tensor, h_q: int) -> Tensor:
    b, h_kv, rows = lse.shape
    return lse.reshape(b, h_kv, rows // (h_q // h_kv), -1).transpose(2, 3).reshape(b, h_q, -1)


def _tile_scores(q_b: Tensor, k_b: Tensor, p: Problem) -> tuple[Tensor, Tensor | None]:
    """(s, t): scores of a tile after scale and softcap, and tanh(raw / softcap) for the backward (None without)."""
    raw = (q_b @ k_b.transpose(-1, -2)) * p.scale
    if p.softcap <= 0:
        return raw, None
    t = torch.tanh(raw / p.softcap)
    return p.softcap * t, t


def _tile_mask(q0: int, q1: int, k0: int, k1: int, t_q: int, t_k: int, p: Problem) -> Tensor | None:
    """bool [(q1 - q0) * G, k1 - k0] of the tile's visible pairs in row order, or None when all are visible."""
    vis = _visible(q0, q1, k0, k1, t_q, t_k, p, "cpu")
    return None if vis is None else vis.repeat_interleave(p.group, dim=0)


def _blocked_forward(q: Tensor, k: Tensor, v: Tensor, p: Problem) -> tuple[Tensor, Tensor]:
    t_q, t_k, g = q.shape[1], k.shape[1], p.group
    ct = _compute_dtype(q.dtype)
    q_r, k_h, v_h = _rows(q, p.heads_kv, ct), _rows(k, p.heads_kv, ct), _rows(v, p.heads_kv, ct)
    out = torch.zeros(q_r.shape, dtype=ct)
    lse = torch.full(q_r.shape[:-1], float("-inf"), dtype=ct)
    for q0 in range(0, t_q, BLOCK_Q):
        q1 = min(q0 + BLOCK_Q, t_q)
        lo, hi = _key_range(q0, q1, t_q, t_k, p)
        q_b = q_r[:, :, q0 * g : q1 * g]
        m = torch.full(q_b.shape[:-1], float("-inf"), dtype=ct)
        l = torch.zeros(q_b.shape[:-1], dtype=ct)
        acc = torch.zeros(q_b.shape, dtype=ct)
        for k0 in range(lo, hi, BLOCK_K):
            k1 = min(k0 + BLOCK_K, hi)
            s, _ = _tile_scores(q_b, k_h[:, :, k0:k1], p)
            vis = _tile_mask(q0, q1, k0, k1, t_q, t_k, p)
            if vis is not None:
                s = s.masked_fill(~vis, float("-inf"))
            m_new = torch.maximum(m, s.amax(-1))
            # Rows with no visible key so far shift by 0: exp(-inf - 0) = 0, never exp(-inf + inf).
            shift = torch.where(torch.isneginf(m_new), 0.0, m_new)
            e = torch.exp(s - shift[..., None])
            alpha = torch.exp(m - shift)
            l = l * alpha + e.sum(-1)
            acc = acc * alpha[..., None] + e @ v_h[:, :, k0:k1]
            m = m_new
        seen = l > 0
        l1 = torch.where(seen, l, 1.0)
        out[:, :, q0 * g : q1 * g] = acc / l1[..., None]
        lse[:, :, q0 * g : q1 * g] = torch.where(seen, m + torch.log(l1), float("-inf"))
    return _unrows(out, p.heads_q).to(q.dtype), _lse_unrows(lse, p.heads_q).float().contiguous()


def _blocked_backward(do, dlse, q, k, v, out, lse, p: Problem) -> tuple[Tensor, Tensor, Tensor]:
    t_q, t_k, g, h_kv = q.shape[1], k.shape[1], p.group, p.heads_kv
    ct = _compute_dtype(q.dtype)
    q_r, do_r, k_h, v_h = _rows(q, h_kv, ct), _rows(do, h_kv, ct), _rows(k, h_kv, ct), _rows(v, h_kv, ct)
    # delta = rowsum(dO * O) - dLSE: d lse_i / d s_ij = P_ij adds P * dLSE to dS (README "Backward").
    delta = (do_r * _rows(out, h_kv, ct)).sum(-1)
    if dlse is not None:
        delta = delta - _lse_rows(dlse.to(ct), h_kv)
    lse_r = _lse_rows(lse.to(ct), h_kv)
    lse_r = torch.where(torch.isneginf(lse_r), float("inf"), lse_r)  # empty rows: P = exp(s - inf) = 0
    dq, dk, dv = torch.zeros(q_r.shape, dtype=ct), torch.zeros(k_h.shape, dtype=ct), torch.zeros(v_h.shape, dtype=ct)
    for q0 in range(0, t_q, BLOCK_Q):
        q1 = min(q0 + BLOCK_Q, t_q)
        lo, hi = _key_range(q0, q1, t_q, t_k, p)
        rows = slice(q0 * g, q1 * g)
        q_b, do_b = q_r[:, :, rows], do_r[:, :, rows]
        for k0 in range(lo, hi, BLOCK_K):
            k1 = min(k0 + BLOCK_K, hi)
            k_b, v_b = k_h[:, :, k0:k1], v_h[:, :, k0:k1]
            s, t = _tile_scores(q_b, k_b, p)
            prob = torch.exp(s - lse_r[:, :, rows, None])
            vis = _tile_mask(q0, q1, k0, k1, t_q, t_k, p)
            if vis is not None:
                prob = prob.masked_fill(~vis, 0.0)
            dv[:, :, k0:k1] += prob.transpose(-1, -2) @ do_b
            ds = prob * (do_b @ v_b.transpose(-1, -2) - delta[:, :, rows, None])
            if t is not None:
                ds = ds * (1.0 - t * t)
            dq[:, :, rows] += ds @ k_b
            dk[:, :, k0:k1] += ds.transpose(-1, -2) @ q_b
    dq = _unrows(dq * p.scale, p.heads_q).to(q.dtype)
    return dq, _unrows(dk * p.scale, h_kv).to(k.dtype), _unrows(dv, h_kv).to(v.dtype)


def _dense_forward(q: Tensor, k: Tensor, v: Tensor, p: Problem) -> tuple[Tensor, Tensor]:
    b, t_q, h_q, _ = q.shape
    t_k = k.shape[1]
    if q.numel() == 0 or k.numel() == 0:
        return torch.zeros(q.shape, dtype=q.dtype), torch.full((b, h_q, t_q), float("-inf"))
    pieces = _sdpa_pieces(t_q, t_k, p)
    if pieces is not None:
        return _sdpa_forward(q, k, v, p, pieces)
    return _blocked_forward(q, k, v, p)


def _dense_backward(do, dlse, q, k, v, out, lse, p: Problem) -> tuple[Tensor, Tensor, Tensor]:
    if q.numel() == 0 or k.numel() == 0:
        return tuple(torch.zeros(x.shape, dtype=x.dtype) for x in (q, k, v))
    pieces = _sdpa_pieces(q.shape[1], k.shape[1], p)
    if pieces is not None and dlse is None:
        return _sdpa_backward(do, q, k, v, out, lse, p, pieces)
    return _blocked_backward(do, dlse, q, k, v, out, lse, p)


def _sequences(cu_q: Tensor, cu_k: Tensor) -> list[tuple[slice, slice]]:
    a, b = cu_q.tolist(), cu_k.tolist()
    return [(slice(a[i], a[i + 1]), slice(b[i], b[i + 1])) for i in range(len(a) - 1)]


def attention_forward_cpu(q, k, v, p: Problem, cu_q=None, cu_k=None) -> tuple[Tensor, Tensor]:
    """(out shaped like q, lse float32 [B, H_q, T_q] or packed [H_q, total_q])."""
    if not p.varlen:
        return _dense_forward(q, k, v, p)
    out = torch.zeros(q.shape, dtype=q.dtype)
    lse = torch.full((q.shape[1], q.shape[0]), float("-inf"))
    for rows_q, rows_k in _sequences(cu_q, cu_k):
        o, l = _dense_forward(q[None, rows_q], k[None, rows_k], v[None, rows_k], p)
        out[rows_q], lse[:, rows_q] = o[0], l[0]
    return out, lse


def attention_backward_cpu(do, dlse, q, k, v, out, lse, p: Problem, cu_q=None, cu_k=None):
    """(dq, dk, dv) shaped like q, k, v; dlse (like lse, or None) is the gradient flowing into the LSE."""
    if not p.varlen:
        return _dense_backward(do, dlse, q, k, v, out, lse, p)
    dq, dk, dv = (torch.zeros(x.shape, dtype=x.dtype) for x in (q, k, v))
    for rows_q, rows_k in _sequences(cu_q, cu_k):
        seq_dlse = None if dlse is None else dlse[None, :, rows_q]
        grads = _dense_backward(
            do[None, rows_q], seq_dlse, q[None, rows_q], k[None, rows_k], v[None, rows_k], out[None, rows_q],
            lse[None, :, rows_q], p,
        )  # fmt: skip
        dq[rows_q], dk[rows_k], dv[rows_k] = (g[0] for g in grads)
    return dq, dk, dv
