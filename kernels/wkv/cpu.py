"""C++ CPU launchers of WKV (csrc/wkv.cpp): torch tensors in, torch tensors out.

The kernel reads float32 or float64, C-contiguous: w, u [C] and k, v, gy [B, T, C]. The op (op.py) converts its
inputs to that form; these launchers check it, so a wrong call fails with a ValueError naming the argument.
"""

from __future__ import annotations

import torch

from accelkit._native import native
from accelkit.kernels._common.checks import check_tensor

COMPUTE_DTYPES = (torch.float32, torch.float64)


def _operand(name: str, x: torch.Tensor, dtype: torch.dtype | None, ndim: int) -> torch.Tensor:
    check_tensor(name, x, COMPUTE_DTYPES if dtype is None else (dtype,), min_dim=ndim, max_dim=ndim)
    if x.device.type != "cpu":
        raise ValueError(f"{name} must be on the CPU, got device {x.device}")
    return x.detach().contiguous()


def _operands(w, u, k, v):
    k = _operand("k", k, None, 3)
    return _operand("w", w, k.dtype, 1), _operand("u", u, k.dtype, 1), k, _operand("v", v, k.dtype, 3)


def wkv_forward_cpu(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """y [B, T, C] of WKV from w, u [C] and k, v [B, T, C], all float32 or all float64."""
    w, u, k, v = _operands(w, u, k, v)
    y = torch.empty_like(k)
    native().wkv_forward(w.numpy(), u.numpy(), k.numpy(), v.numpy(), y.numpy())
    return y


def wkv_backward_cpu(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gw [C], gu [C], gk [B, T, C], gv [B, T, C]) of sum(gy * wkv(w, u, k, v))."""
    w, u, k, v = _operands(w, u, k, v)
    gy = _operand("gy", gy, k.dtype, 3)
    if gy.shape != k.shape:
        raise ValueError(f"gy has shape {tuple(gy.shape)} but k has {tuple(k.shape)}")
    gk, gv = torch.empty_like(k), torch.empty_like(k)
    gw = torch.empty((k.shape[0], k.shape[2]), dtype=k.dtype)
    gu = torch.empty_like(gw)
    native().wkv_backward(
        w.numpy(), u.numpy(), k.numpy(), v.numpy(), gy.numpy(), gk.numpy(), gv.numpy(), gw.numpy(), gu.numpy()
    )
    return gw.sum(0), gu.sum(0), gk, gv
