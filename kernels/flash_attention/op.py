"""flash_attention as torch.library ops: one name, dispatched by device (CUDA: Triton, CPU: cpu.py), with fake
implementations for torch.compile and autograd through a second op for the backward.

`accelkit::flash_attention` returns (out, lse) always (the backward needs the LSE); the public function returns the
LSE only when asked. Causal is passed as the window's right side (0), the convention the kernels use.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from accelkit.kernels._common.checks import check_result_size
from accelkit.kernels.flash_attention.args import Problem, check_args, check_cu_seqlens_values


def _problem(q, k, cu_q, cu_k, max_q, max_k, scale, left, right, softcap) -> Problem:
    varlen = cu_q is not None
    b, t_q, t_k = (cu_q.shape[0] - 1, max_q, max_k) if varlen else (q.shape[0], q.shape[1], k.shape[1])
    p = Problem(varlen, b, t_q, t_k, q.shape[-2], k.shape[-2], q.shape[-1], scale, left, right, softcap)
    if varlen:
        p = check_cu_seqlens_values(p, cu_q, cu_k, q.shape[0], k.shape[0])
    return p


def _lse_shape(q: Tensor, varlen: bool) -> tuple[int, ...]:
    return (q.shape[1], q.shape[0]) if varlen else (q.shape[0], q.shape[2], q.shape[1])


def _triton_knobs(p: Problem, cu_q, cu_k) -> dict[str, Any]:
    return {
        "scale": p.scale, "window": (p.left, p.right), "softcap": p.softcap, "cu_seqlens_q": cu_q,
        "cu_seqlens_k": cu_k, "max_seqlen_q": p.max_q if p.varlen else None,
        "max_seqlen_k": p.max_k if p.varlen else None,
    }  # fmt: skip


@torch.library.custom_op("accelkit::flash_attention", mutates_args=())
def _fa_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens_q: Tensor | None,
    cu_seqlens_k: Tensor | None,
    max_seqlen_q: int,
    max_seqlen_k: int,
    scale: float,
    window_left: int,
    window_right: int,
    softcap: float,
) -> tuple[Tensor, Tensor]:
    p = _problem(
        q, k, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale, window_left, window_right, softcap
    )
    if q.device.type == "cuda":
        from accelkit.kernels.flash_attention.triton_kernels import flash_attn_fwd

        return flash_attn_fwd(q, k, v, **_triton_knobs(p, cu_seqlens_q, cu_seqlens_k))
    from accelkit.kernels.flash_attention.cpu import attention_forward_cpu

    return attention_forward_cpu(q, k, v, p, cu_seqlens_q, cu_seqlens_k)


@_fa_op.register_fake
def _(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale, window_left, window_right, softcap):
    lse = q.new_empty(_lse_shape(q, cu_seqlens_q is not None), dtype=torch.float32)
    return torch.empty_like(q, memory_format=torch.contiguous_format), lse


@torch.library.custom_op("accelkit::flash_attention_backward", mutates_args=())
def _fa_bwd_op(
    grad_out: Tensor,
    grad_lse: Tensor | None,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    cu_seqlens_q: Tensor | None,
    cu_seqlens_k: Tensor | None,
    max_seqlen_q: int,
    max_seqlen_k: int,
    scale: float,
    window_left: int,
    window_right: int,
    softcap: float,
) -> tuple[Tensor, Tensor, Tensor]:
    p = _problem(
        q, k, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale, window_left, window_right, softcap
    )
    # Autograd hands a zero gradient for an LSE the caller dropped; skipping it keeps the fused CPU backward usable.
    if grad_lse is not None and not bool(grad_lse.any()):
        grad_lse = None
    if q.device.type == "cuda":
        from accelkit.kernels.flash_attention.triton_kernels import flash_attn_bwd

        knobs = _triton_knobs(p, cu_seqlens_q, cu_seqlens_k)
        return flash_attn_bwd(grad_out, q, k, v, out, lse, dlse=grad_lse, **knobs)
    from accelkit.kernels.flash_attention.cpu import attention_backward_cpu

    return attention_backward_cpu(grad_out, grad_lse, q, k, v, out, lse, p, cu_seqlens_q, cu_seqlens_k)


@_fa_bwd_op.register_fake
def _(grad_out, grad_lse, q, k, v, out, lse, *rest):
    return tuple(torch.empty_like(x, memory_format=torch.contiguous_format) for x in (q, k, v))


def _setup(ctx, inputs, output) -> None:
    q, k, v, cu_q, cu_k, *knobs = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, cu_q, cu_k)
    ctx.knobs = knobs


def _backward(ctx, grad_out: Tensor, grad_lse: Tensor | None):
    q, k, v, out, lse, cu_q, cu_k = ctx.saved_tensors
    if grad_out is None:
        grad_out = torch.zeros_like(out)
    dq, dk, dv = _fa_bwd_op(grad_out, grad_lse, q, k, v, out, lse, cu_q, cu_k, *ctx.knobs)
    return dq, dk, dv, None, None, None, None, None, None, None, None


_fa_op.register_autograd(_backward, setup_context=_setup)


def flash_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    cu_seqlens_q: Tensor | None = None,
    cu_seqlens_k: Tensor | None = None,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    return_lse: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Softmax attention, FlashAttention-2 style: never materialises the T_q x T_k scores; autograd for q, k, v.

    q [B, T_q, H_q, D], k and v [B, T_k, H_kv, D]; or, with cu_seqlens_q and cu_seqlens_k (int32 prefix sums
    [B + 1]), packed q [total_q, H_q, D], k and v [total_k, H_kv, D], sequence b being rows cu[b]:cu[b + 1]
    (max_seqlen_* optional: read from the prefix sums when None). fp16, bf16 or fp32, one dtype for all three;
    16 <= D <= 256; H_q a multiple of H_kv (GQA/MQA: query head h reads kv head h // (H_q // H_kv)).

    scale defaults to D**-0.5. causal masks aligned bottom-right (query i sees keys j <= i + T_k - T_q, flash-attn
    >= 2.1). window (left, right) keeps keys i + T_k - T_q - left <= j <= i + T_k - T_q + right (-1: unbounded).
    softcap > 0 replaces scores s by softcap * tanh(s / softcap). A query that sees no key gets output 0 and LSE
    -inf. Returns out (q's shape and dtype, contiguous), and with return_lse also the natural-log LSE, float32
    [B, H_q, T_q] ([H_q, total_q] packed). CUDA tensors run the Triton kernels; CPU tensors run torch's fused CPU
    kernel where it covers the arguments and a blocked PyTorch implementation where not.
    """
    p = check_args(
        q, k, v, causal=causal, scale=scale, window=window, softcap=softcap, cu_seqlens_q=cu_seqlens_q,
        cu_seqlens_k=cu_seqlens_k, max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k,
    )  # fmt: skip
    if not isinstance(return_lse, bool):
        raise TypeError(f"return_lse must be a bool, got {type(return_lse).__name__}")
    if q.device.type not in ("cpu", "cuda", "meta"):
        raise ValueError(f"q is on {q.device}; flash_attention runs on cpu and cuda tensors")
    check_result_size("q", tuple(q.shape), q.dtype, q.device)
    out, lse = _fa_op(q, k, v, cu_seqlens_q, cu_seqlens_k, p.max_q, p.max_k, p.scale, p.left, p.right, p.softcap)
    return (out, lse) if return_lse else out


__all__ = ["flash_attention"]
