"""SpikeGPT's WKV recurrence as a plain PyTorch loop over the steps, in the inputs' own dtype, differentiable by
autograd: the same-precision peer of the tests (assert_within_peer_error) and of bench/wkv_cpu.py."""

import torch

from accelkit.kernels.wkv.reference import EMPTY_OFFSET


def wkv_loop(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """y [B, T, C] from w, u [C] and k, v [B, T, C], one torch op per term per step (T Python iterations)."""
    batch, steps, channels = k.shape
    p = k.new_zeros((batch, channels))
    q = k.new_zeros((batch, channels))
    o = k.new_full((batch, channels), EMPTY_OFFSET)
    ys = []
    # unbind, not k[:, t]: the backward of T slices would add T full-size zero tensors, O(T^2 C) work.
    for kt, vt in zip(k.unbind(1), v.unbind(1), strict=True):
        no = torch.maximum(o, u + kt)
        e_old, e_new = torch.exp(o - no), torch.exp(u + kt - no)
        ys.append((e_old * p + e_new * vt) / (e_old * q + e_new))
        no = torch.maximum(w + o, kt)
        e_old, e_new = torch.exp(w + o - no), torch.exp(kt - no)
        p = e_old * p + e_new * vt
        q = e_old * q + e_new
        o = no
    return torch.stack(ys, dim=1) if ys else k.new_empty((batch, 0, channels))
