"""The positive-random-feature map phi and its backward in PyTorch: the CPU path (and the fallback for devices
without Triton). The same math as the Triton kernels of triton_kernels.py, row by row:

    P = W x' - |x'|^2 / 2,  x' = x / D**0.25,  phi = exp(P - s) / sqrt(m)

with s the row's max for queries and one max per (batch, head) for keys. s is part of the definition (it meets
eps in the normaliser), so the backward differentiates it too: its gradient -sum(dP) lands on the element where
the max is attained (`arg`), which makes the gradients exact, not just exact as eps -> 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _scaled(x: Tensor) -> Tensor:
    return x * x.shape[-1] ** -0.25


def logits(x: Tensor, w: Tensor) -> Tensor:
    """P [..., m] of x [..., D] and W [m, D], in x's dtype."""
    xs = _scaled(x)
    return xs @ w.T - 0.5 * (xs * xs).sum(-1, keepdim=True)


def row_max(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """The max of each row of P and the first column that attains it (int64): ([...], [...])."""
    return logits(x, w).max(-1)


def feature_map(x: Tensor, w: Tensor, shift: Tensor) -> Tensor:
    """phi [..., m] = exp(P - shift[..., None]) / sqrt(m)."""
    return torch.exp(logits(x, w) - shift[..., None]) * w.shape[0] ** -0.5


def feature_map_backward(
    x: Tensor, w: Tensor, shift: Tensor, arg: Tensor, extra: Tensor | None, grad_phi: Tensor
) -> Tensor:
    """dL/dx [..., D] given dL/dphi. Queries (extra None): each row's shift is its own max, so -sum_r dP_r goes to
    column arg of the row. Keys: `extra` [...] is what each row adds at column arg (the (batch, head) total on the
    row holding the max, 0 elsewhere)."""
    dp = grad_phi * feature_map(x, w, shift)
    if extra is None:
        extra = -dp.sum(-1)
    dp = dp.scatter_add(-1, arg[..., None], extra[..., None])
    xs = _scaled(x)
    return (dp @ w - dp.sum(-1, keepdim=True) * xs) * x.shape[-1] ** -0.25
