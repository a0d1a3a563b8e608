"""delta_rule as torch.library ops: one name dispatched by device (CUDA: the Triton kernels, CPU: cpu.py), fake
implementations for torch.compile, and autograd through a second op for the backward.

`accelkit::delta_rule` always returns the final state (the backward needs no more than the inputs); the public
function returns it only when asked.
"""

from __future__ import annotations

import torch
from torch import Tensor

from accelkit.kernels._common.checks import check_result_size
from accelkit.kernels.delta_rule.args import Problem, check_args, check_cu_seqlens_values


def _problem(q, k, v, beta, g, h0, cu, scale, chunk_size, use_qk_l2norm, mode) -> tuple[Problem, list[int] | None]:
    p = check_args(q, k, v, beta, g=g, scale=scale, initial_state=h0, cu_seqlens=cu, chunk_size=chunk_size,
                   use_qk_l2norm=use_qk_l2norm, mode=mode)  # fmt: skip
    return p, None if cu is None else check_cu_seqlens_values(cu, q.shape[1])


def _state_shape(q: Tensor, v: Tensor, cu: Tensor | None) -> tuple[int, int, int, int]:
    n = q.shape[0] if cu is None else cu.shape[0] - 1
    return (n, q.shape[2], q.shape[3], v.shape[3])


@torch.library.custom_op("accelkit::delta_rule", mutates_args=())
def _dr_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor | None,
    initial_state: Tensor | None,
    cu_seqlens: Tensor | None,
    scale: float,
    chunk_size: int,
    use_qk_l2norm: bool,
    mode: str,
) -> tuple[Tensor, Tensor]:
    p, cu = _problem(q, k, v, beta, g, initial_state, cu_seqlens, scale, chunk_size, use_qk_l2norm, mode)
    if q.device.type == "cuda":
        from accelkit.kernels.delta_rule.triton_launch import delta_rule_fwd

        return delta_rule_fwd(q, k, v, beta, g, initial_state, cu, p)
    from accelkit.kernels.delta_rule.cpu import delta_rule_cpu

    return delta_rule_cpu(q, k, v, beta, g, initial_state, cu, p)


@_dr_op.register_fake
def _(q, k, v, beta, g, initial_state, cu_seqlens, scale, chunk_size, use_qk_l2norm, mode):
    o = v.new_empty(v.shape, dtype=q.dtype)
    return o, q.new_empty(_state_shape(q, v, cu_seqlens), dtype=torch.float32)


@torch.library.custom_op("accelkit::delta_rule_backward", mutates_args=())
def _dr_bwd_op(
    grad_o: Tensor,
    grad_state: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor | None,
    initial_state: Tensor | None,
    cu_seqlens: Tensor | None,
    scale: float,
    chunk_size: int,
    use_qk_l2norm: bool,
    mode: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    p, cu = _problem(q, k, v, beta, g, initial_state, cu_seqlens, scale, chunk_size, use_qk_l2norm, mode)
    if q.device.type == "cuda":
        from accelkit.kernels.delta_rule.triton_launch import delta_rule_bwd

        return delta_rule_bwd(grad_o, grad_state, q, k, v, beta, g, initial_state, cu, p)
    from accelkit.kernels.delta_rule.cpu import delta_rule_backward_cpu

    return delta_rule_backward_cpu(grad_o, grad_state, q, k, v, beta, g, initial_state, cu, p)


@_dr_bwd_op.register_fake
def _(grad_o, grad_state, q, k, v, beta, g, initial_state, cu_seqlens, *rest):
    grads = [torch.empty_like(x, memory_format=torch.contiguous_format) for x in (q, k, v, beta)]
    dg = torch.empty_like(beta if g is None else g, memory_format=torch.contiguous_format)
    return (*grads, dg, q.new_empty(_state_shape(q, v, cu_seqlens), dtype=torch.float32))


def _setup(ctx, inputs, output) -> None:
    q, k, v, beta, g, h0, cu, *knobs = inputs
    ctx.save_for_backward(q, k, v, beta, g, h0, cu)
    ctx.knobs = knobs


def _backward(ctx, grad_o: Tensor | None, grad_state: Tensor | None):
    q, k, v, beta, g, h0, cu = ctx.saved_tensors
    if grad_o is None:
        grad_o = q.new_zeros(v.shape)
    if grad_state is None:
        grad_state = q.new_zeros(_state_shape(q, v, cu), dtype=torch.float32)
    dq, dk, dv, dbeta, dg, dh0 = _dr_bwd_op(grad_o, grad_state, q, k, v, beta, g, h0, cu, *ctx.knobs)
    dg, dh0 = (dg if g is not None else None), (dh0 if h0 is not None else None)
    return dq, dk, dv, dbeta, dg, dh0, None, None, None, None, None


_dr_op.register_autograd(_backward, setup_context=_setup)


def delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    *,
    g: Tensor | None = None,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: Tensor | None = None,
    chunk_size: int = 64,
    use_qk_l2norm: bool = False,
    mode: str = "chunk",
) -> tuple[Tensor, Tensor | None]:
    """Delta-rule linear attention (DeltaNet), or the gated delta rule when g is given; fla's semantics.

    q, k [B, T, H, K]; v [B, T, H, V] (K != V allowed, 1 <= K, V <= 256); beta [B, T, H]; g [B, T, H] the log
    decay (g <= 0 decays; g > 0 is computed as given and grows the state, so it can overflow). Per head the state h
    is [K, V]: h <- exp(g_t) h, then h <- h + beta_t k_t (v_t - h^T k_t)^T, and o_t = h^T (scale q_t); scale
    defaults to K**-0.5 and multiplies q only. use_qk_l2norm normalises q and k first (x * rsqrt(sum x^2 + 1e-6)),
    with its gradient.

    initial_state and the returned final state are float32 [N, H, K, V], N = B, or the number of sequences when
    cu_seqlens (int64 or int32 prefix sums [N + 1], non-decreasing, empty sequences allowed) packs them along T of a
    B = 1 batch. mode "chunk" runs the chunkwise WY form (chunk_size 16, 32 or 64), "recurrent" the token loop;
    both give the same values up to rounding. fp16, bf16 or fp32 inputs (one dtype for q, k, v); state and
    accumulation in float32; o has q's dtype. Returns (o, final_state), final_state None unless
    output_final_state. Gradients reach q, k, v, beta, g and initial_state.
    """
    p = check_args(q, k, v, beta, g=g, scale=scale, initial_state=initial_state,
                   output_final_state=output_final_state, cu_seqlens=cu_seqlens, chunk_size=chunk_size,
                   use_qk_l2norm=use_qk_l2norm, mode=mode)  # fmt: skip
    if q.device.type not in ("cpu", "cuda", "meta"):
        raise ValueError(f"q is on {q.device}; delta_rule runs on cpu and cuda tensors")
    check_result_size("v", tuple(v.shape), torch.float32, v.device)
    check_result_size("initial_state", (p.batch, p.heads, p.key_dim, p.value_dim), torch.float32, v.device)
    o, state = _dr_op(q, k, v, beta, g, initial_state, cu_seqlens, p.scale, p.chunk_size, use_qk_l2norm, mode)
    return o, (state if output_final_state else None)


__all__ = ["delta_rule"]
