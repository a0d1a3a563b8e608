"""SpikeGPT's WKV as a torch.library op with autograd: `accelkit.ops.wkv(w, u, k, v)`.

CPU tensors run the C++ kernels of csrc/wkv.cpp (cpu.py), CUDA tensors the Triton kernels of triton_kernels.py.
Both compute in float32 (float64 for float64 inputs): float16 and bfloat16 inputs are widened, and the results are
cast back to each argument's dtype. The forward saves only its inputs; backward recomputes the carries (one extra
pass over k and v instead of keeping [B, T, C] carries alive between forward and backward).

Energy (accelkit.kernels.spiking.energy): WKV's inputs are real-valued, so it records multiply-accumulates only,
6 per (b, t, c): the numerator e1 p + e2 v (2), the denominator e1 q + e2 (1), and the same for the carry update
(3). The exponentials and the division are not synaptic operations and are not counted.
"""

from __future__ import annotations

import torch
from torch import Tensor

from accelkit.kernels._common.checks import check_result_size, check_same_device, check_tensor
from accelkit.kernels._common.dtypes import FLOAT_DTYPES
from accelkit.kernels.spiking import energy

MACS_PER_STEP = 6


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _prepared(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    dtype = _compute_dtype(k.dtype)
    return tuple(x.to(dtype).contiguous() for x in (w, u, k, v))  # type: ignore[return-value]


def _forward(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> Tensor:
    args = _prepared(w, u, k, v)
    if k.device.type == "cuda":
        from accelkit.kernels.wkv.triton_kernels import wkv_fwd

        return wkv_fwd(*args)
    from accelkit.kernels.wkv.cpu import wkv_forward_cpu

    return wkv_forward_cpu(*args)


def _backward(w: Tensor, u: Tensor, k: Tensor, v: Tensor, gy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    args = _prepared(w, u, k, v)
    gy = gy.to(args[2].dtype).contiguous()
    if k.device.type == "cuda":
        from accelkit.kernels.wkv.triton_kernels import wkv_bwd

        return wkv_bwd(*args, gy)
    from accelkit.kernels.wkv.cpu import wkv_backward_cpu

    return wkv_backward_cpu(*args, gy)


@torch.library.custom_op("accelkit::wkv", mutates_args=())
def _wkv_op(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> Tensor:
    if energy.is_counting():
        energy.record("wkv", energy.SynapticOps(macs=MACS_PER_STEP * k.numel()))
    return _forward(w, u, k, v).to(k.dtype)


@_wkv_op.register_fake
def _(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return torch.empty_like(k, memory_format=torch.contiguous_format)


@torch.library.custom_op("accelkit::wkv_backward", mutates_args=())
def _wkv_backward_op(w: Tensor, u: Tensor, k: Tensor, v: Tensor, gy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    gw, gu, gk, gv = _backward(w, u, k, v, gy)
    return gw.to(w.dtype), gu.to(u.dtype), gk.to(k.dtype), gv.to(v.dtype)


@_wkv_backward_op.register_fake
def _(w: Tensor, u: Tensor, k: Tensor, v: Tensor, gy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    def new(x: Tensor) -> Tensor:
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    return new(w), new(u), new(k), new(v)


def _setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _wkv_backward(ctx, grad: Tensor):
    w, u, k, v = ctx.saved_tensors
    return _wkv_backward_op(w, u, k, v, grad)


_wkv_op.register_autograd(_wkv_backward, setup_context=_setup)


def wkv(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """SpikeGPT's WKV: y[b, t, c] = (sum_{i<t} e^{(t-1-i) w_c + k_i} v_i + e^{u_c + k_t} v_t) / (the same with v = 1).

    w: [C] the per-channel decay, w = -exp(time_decay) (any real value is accepted); u: [C] time_first;
    k, v: [B, T, C]. Float32, float64, float16 or bfloat16 (k and v of one dtype; w and u any float dtype), on
    one device. Returns y [B, T, C] in k's dtype; differentiable in all four arguments. Computed with the
    log-sum-exp-stabilised recurrence of SpikeGPT's CUDA kernel, in float32 (float64 for float64 inputs).
    """
    check_tensor("k", k, FLOAT_DTYPES, min_dim=3, max_dim=3)
    check_tensor("v", v, (k.dtype,), min_dim=3, max_dim=3)
    check_tensor("w", w, FLOAT_DTYPES, min_dim=1, max_dim=1)
    check_tensor("u", u, FLOAT_DTYPES, min_dim=1, max_dim=1)
    if v.shape != k.shape:
        raise ValueError(f"v has shape {tuple(v.shape)} but k has {tuple(k.shape)}")
    channels = k.shape[2]
    for name, x in (("w", w), ("u", u)):
        if x.shape[0] != channels:
            raise ValueError(f"{name} has {x.shape[0]} channels but k has C={channels}")
    check_same_device(("k", k), ("v", v), ("w", w), ("u", u))
    if k.device.type not in ("cpu", "cuda", "meta"):
        raise ValueError(f"k is on {k.device}; wkv runs on cpu and cuda tensors")
    check_result_size("k", tuple(k.shape), _compute_dtype(k.dtype), k.device)
    return _wkv_op(w, u, k, v)


__all__ = ["wkv"]
