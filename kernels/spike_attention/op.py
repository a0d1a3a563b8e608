"""Spike-driven self-attention (SDSA V1 and V2) and the {0,1}-spike x {+1,-1}-weight matmul as torch.library ops.

- `sdsa_v1(q, k, v)`: Q * LIF_T(sum_n K * V). The column sums are the op `accelkit::sdsa_column_sums` (float32
  accumulation, float64 for float64 inputs, so spike counts are exact integers up to 2^24 tokens whatever the
  input dtype); the LIF over T is `accelkit.ops.lif` (kernels/spiking, tau 2, hard reset 0, detach_reset, sigmoid
  surrogate alpha 4), whose autograd carries the surrogate gradient; the mask is a multiply.
- `sdsa_v2(q, k, v)`: Q (K^T V) scale, the op `accelkit::sdsa_v2`, computed as two batched matmuls in float32
  (float64 for float64) with the backward in closed form.
- `spike_binary_matmul(s, w)`: s @ sign(w).T on the foundation's packed popcount kernels (kernels/binary): spikes
  packed with bit 1 = spike, weights with bit 1 = -1; C++ `spike_gemm` (popcount(s) - 2 popcount(s AND w)) on the
  CPU, the Triton XOR GEMM on CUDA (README.md derives the identity that turns one into the other).

CPU tensors run the C++ kernels (the binary GEMM, the LIF) and torch's CPU matmuls; CUDA tensors the Triton kernels
(triton_kernels.py: the column sums, and V2's forward fused into one kernel for head dims up to 64; float64 and
wider heads take cuBLAS). Each op records its synaptic operations in accelkit.kernels.spiking.energy inside a
counting() block: the accumulates that the actual spikes trigger (reference.synaptic_ops_v1/_v2; one per spike per
output for the matmul), and no multiply-accumulates.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from accelkit.kernels._common.checks import check_real, check_result_size, check_same_device, check_tensor
from accelkit.kernels._common.dtypes import FLOAT_DTYPES
from accelkit.kernels._common.words import K_MAX
from accelkit.kernels.spiking import energy

# Spike-driven Transformer's talking-heads LIF: tau 2, hard reset to 0, detach_reset, sigmoid surrogate (alpha 4).
V1_TAU = 2.0
V1_V_RESET = 0.0
_WORD_BITS = 64


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# --- SDSA V1: the column sums ----------------------------------------------------------------------------------


@torch.library.custom_op("accelkit::sdsa_column_sums", mutates_args=())
def _column_sums_op(k: Tensor, v: Tensor) -> Tensor:
    acc = _acc_dtype(k.dtype)
    if energy.is_counting():
        both = torch.count_nonzero(k.to(acc) * v.to(acc))
        energy.record("sdsa_v1", energy.SynapticOps(acs=int(both)))
    if k.device.type == "cuda":
        from accelkit.kernels.spike_attention.triton_kernels import column_sums_fwd

        return column_sums_fwd(k, v)
    return (k.to(acc) * v.to(acc)).sum(dim=-2, keepdim=True)


@_column_sums_op.register_fake
def _(k: Tensor, v: Tensor) -> Tensor:
    return k.new_empty((*k.shape[:-2], 1, k.shape[-1]), dtype=_acc_dtype(k.dtype))


def _column_sums_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _column_sums_backward(ctx, grad: Tensor):
    k, v = ctx.saved_tensors
    grad_k = (grad * v.to(grad.dtype)).to(k.dtype) if ctx.needs_input_grad[0] else None
    grad_v = (grad * k.to(grad.dtype)).to(v.dtype) if ctx.needs_input_grad[1] else None
    return grad_k, grad_v


_column_sums_op.register_autograd(_column_sums_backward, setup_context=_column_sums_setup)


# --- SDSA V2 -----------------------------------------------------------------------------------------------------


@torch.library.custom_op("accelkit::sdsa_v2", mutates_args=())
def _sdsa_v2_op(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    acc = _acc_dtype(q.dtype)
    qa, ka, va = q.to(acc), k.to(acc), v.to(acc)
    if energy.is_counting():
        pairs = ((ka != 0).sum(-1, dtype=torch.int64) * (va != 0).sum(-1, dtype=torch.int64)).sum()
        rows = torch.count_nonzero(qa) * q.shape[-1]
        energy.record("sdsa_v2", energy.SynapticOps(acs=int(pairs + rows)))
    if q.device.type == "cuda" and q.dtype != torch.float64:
        from accelkit.kernels.spike_attention.triton_kernels import MAX_D_V2, sdsa_v2_fwd

        if q.shape[-1] <= MAX_D_V2:
            return sdsa_v2_fwd(q, k, v, scale)
    return (torch.matmul(qa, torch.matmul(ka.transpose(-1, -2), va)) * scale).to(q.dtype)


@_sdsa_v2_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    return torch.empty_like(q, memory_format=torch.contiguous_format)


def _sdsa_v2_setup(ctx, inputs, output) -> None:
    q, k, v, scale = inputs
    ctx.save_for_backward(q, k, v)
    ctx.scale = scale


def _sdsa_v2_backward(ctx, grad: Tensor):
    q, k, v = ctx.saved_tensors
    acc = _acc_dtype(q.dtype)
    qa, ka, va, ga = q.to(acc), k.to(acc), v.to(acc), grad.to(acc)
    kv = torch.matmul(ka.transpose(-1, -2), va)  # [.., D, D]
    grad_kv = torch.matmul(qa.transpose(-1, -2), ga) * ctx.scale  # [.., D, D]
    grad_q = torch.matmul(ga, kv.transpose(-1, -2)) * ctx.scale
    grad_k = torch.matmul(va, grad_kv.transpose(-1, -2))
    grad_v = torch.matmul(ka, grad_kv)
    return grad_q.to(q.dtype), grad_k.to(k.dtype), grad_v.to(v.dtype), None


_sdsa_v2_op.register_autograd(_sdsa_v2_backward, setup_context=_sdsa_v2_setup)


# --- spike x binary matmul ---------------------------------------------------------------------------------------


def _sign(w: Tensor) -> Tensor:
    return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)


def spike_gemm_triton(s: Tensor, w: Tensor) -> Tensor:
    """int32 [..., N] = (s > 0) @ sign(w).T on kernels/binary's Triton pack and XOR GEMM (the CUDA path)."""
    from accelkit.kernels.binary.triton_kernels import binary_gemm_fwd, binary_pack_fwd

    # -s packs a set bit (x < 0) exactly where s > 0; -0.0 >= 0 packs 0.
    s_bits, w_bits = binary_pack_fwd(-s, _WORD_BITS), binary_pack_fwd(w, _WORD_BITS)
    # The XOR GEMM gives a.w for a = 1 - 2 s (bit 1 = -1 = spike), so s.w = (sum(sign w) - a.w) / 2.
    xnor = binary_gemm_fwd(s_bits, w_bits, s.shape[-1])
    return torch.div(_sign(w).sum(-1, dtype=torch.int32) - xnor, 2, rounding_mode="floor")


def _spike_gemm(s: Tensor, w: Tensor) -> Tensor:
    """int32 [..., N] = (s > 0) @ sign(w).T from packed bits: C++ AND-popcount on the CPU, Triton XOR on CUDA."""
    if s.device.type == "cuda":
        return spike_gemm_triton(s, w)
    from accelkit.kernels.binary.cpu import binary_pack_cpu, spike_gemm_cpu

    return spike_gemm_cpu(binary_pack_cpu(-s, _WORD_BITS), binary_pack_cpu(w, _WORD_BITS))


@torch.library.custom_op("accelkit::spike_binary_matmul", mutates_args=())
def _spike_matmul_op(s: Tensor, w: Tensor) -> Tensor:
    if energy.is_counting():
        energy.record("spike_binary_matmul", energy.SynapticOps(acs=int((s > 0).sum()) * w.shape[0]))
    if s.shape[-1] == 0 or s.numel() == 0 or w.shape[0] == 0:
        return s.new_zeros((*s.shape[:-1], w.shape[0]))
    return _spike_gemm(s, w).to(s.dtype)


@_spike_matmul_op.register_fake
def _(s: Tensor, w: Tensor) -> Tensor:
    return s.new_empty((*s.shape[:-1], w.shape[0]))


def _spike_matmul_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _spike_matmul_backward(ctx, grad: Tensor):
    s, w = ctx.saved_tensors
    grad_s = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_s = grad @ _sign(w)
    if ctx.needs_input_grad[1]:
        # Explicit row counts: reshape(-1, 0) cannot infer the -1 when K = 0 or N = 0.
        rows = math.prod(s.shape[:-1])
        spikes = (s > 0).to(grad.dtype).reshape(rows, s.shape[-1])
        grad_w = (grad.reshape(rows, w.shape[0]).T @ spikes) * (w.abs() <= 1).to(w.dtype)
    return grad_s, grad_w


_spike_matmul_op.register_autograd(_spike_matmul_backward, setup_context=_spike_matmul_setup)


# --- public functions ---------------------------------------------------------------------------------------------


def _check_qkv(q: object, k: object, v: object) -> None:
    check_tensor("q", q, FLOAT_DTYPES, min_dim=5, max_dim=5)
    for name, x in (("k", k), ("v", v)):
        check_tensor(name, x, (q.dtype,), min_dim=5, max_dim=5)
        if x.shape != q.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but q has {tuple(q.shape)}; all are [T, B, H, N, D]")
    check_same_device(("q", q), ("k", k), ("v", v))
    if q.device.type not in ("cpu", "cuda", "meta"):
        raise ValueError(f"q is on {q.device}; the spike attention ops run on cpu and cuda tensors")
    check_result_size("q", tuple(q.shape), _acc_dtype(q.dtype), q.device)


def sdsa_v1(q: Tensor, k: Tensor, v: Tensor, *, v_threshold: float = 0.5) -> Tensor:
    """Spike-Driven Self-Attention of Spike-driven Transformer V1: Q * LIF_T(sum over tokens of K * V).

    q, k, v: [T, B, H, N, D] spikes (time, batch, heads, tokens, head dim), float32/float64/float16/bfloat16 of one
    dtype; {0,1} spikes, or multi-level spikes of any value. The column sums KV [T, B, H, 1, D] (for spikes, the
    count popcount(K_col AND V_col)) go through a LIF over T (tau 2, hard reset 0, detach_reset, sigmoid surrogate
    alpha 4) with threshold v_threshold > 0, whose spikes mask every token of Q. Returns [T, B, H, N, D] in q's
    dtype; gradients for q, k, v through the surrogate.
    """
    _check_qkv(q, k, v)
    v_threshold = check_real("v_threshold", v_threshold)
    if v_threshold <= V1_V_RESET:
        raise ValueError(f"v_threshold must be > v_reset = {V1_V_RESET}, got {v_threshold}")
    from accelkit.kernels.spiking.op import lif

    kv = _column_sums_op(k, v)
    mask = lif(kv, tau=V1_TAU, v_threshold=v_threshold, v_reset=V1_V_RESET, surrogate="sigmoid", detach_reset=True)
    return q * mask.to(q.dtype)


def sdsa_v2(q: Tensor, k: Tensor, v: Tensor, *, scale: float = 0.125) -> Tensor:
    """Spike-Driven Self-Attention of Spike-driven Transformer V2 (and Spikformer's SSA core): Q (K^T V) scale.

    q, k, v: [T, B, H, N, D], float32/float64/float16/bfloat16 of one dtype. For {0,1} spikes K^T V[i, j] is
    popcount(K[:, i] AND V[:, j]) over the tokens, an exact integer (accumulated in float32, float64 for float64).
    scale: a finite real (0.125 in SDT-V2, 0.25 in QSD). Returns [T, B, H, N, D] in q's dtype, before the spiking
    neuron that follows it in the models; gradients for q, k, v.
    """
    _check_qkv(q, k, v)
    scale = check_real("scale", scale)
    return _sdsa_v2_op(q, k, v, scale)


def spike_binary_matmul(s: Tensor, w: Tensor) -> Tensor:
    """{0,1} spikes times {+1,-1} weights: s @ sign(w).T with XNOR/AND-popcount kernels on packed bits.

    s: [..., K] float spikes (an element is a spike where s > 0); w: [N, K] latent float weights (nn.Linear
    layout, sign(0) = +1) of s's dtype and device. Returns [..., N] in s's dtype: exact integer counts while they fit
    the dtype (2^24 in float32, 2^8 in bfloat16). Straight-through gradients: grad_s = grad @ sign(w), grad_w =
    grad^T s where |w| <= 1.
    """
    check_tensor("s", s, FLOAT_DTYPES, min_dim=1)
    check_tensor("w", w, (s.dtype,), min_dim=2, max_dim=2)
    if s.shape[-1] != w.shape[-1]:
        raise ValueError(f"s has K={s.shape[-1]} but w has K={w.shape[-1]}")
    check_same_device(("s", s), ("w", w))
    if s.device.type not in ("cpu", "cuda", "meta"):
        raise ValueError(f"s is on {s.device}; spike_binary_matmul runs on cpu and cuda tensors")
    if isinstance(s.shape[-1], int) and s.shape[-1] > K_MAX:
        raise ValueError(f"s has K={s.shape[-1]}, over {K_MAX}: the counts would not fit an int32")
    check_result_size("s, w", (*s.shape[:-1], w.shape[0]), s.dtype, s.device)
    return _spike_matmul_op(s, w)


__all__ = ["sdsa_v1", "sdsa_v2", "spike_binary_matmul"]
