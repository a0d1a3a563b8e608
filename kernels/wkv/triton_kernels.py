"""Triton kernels of SpikeGPT's WKV, forward and backward: the recurrence of csrc/include/accelkit/wkv.h.

One program per (sequence b, block of BLOCK_C channels), a loop over the T steps. The recurrence is sequential in
t and independent across channels, so a program holds its channels' carries in registers and reads one row of
BLOCK_C contiguous elements of k and v per step; B * C / BLOCK_C programs fill the GPU at SpikeGPT's sizes
(C = 512 to 1024 channels, B = 8 to 32). Inputs are float32 or float64, C-contiguous [B, T, C]; the kernels
compute in that type (op.py widens float16 and bfloat16).

Backward makes two passes per program, like the C++ kernel: forward again (gw, gu, and per step y -> ys, the
denominator offset no -> gk, g / den -> gv), then from the last step back (gk and gv overwritten with the
gradients). Every exponent is <= 0: kernels/wkv/README.md derives why.
"""

import torch
import triton
import triton.language as tl

from accelkit.kernels._common.aot import AotSpec
from accelkit.kernels._common.checks import check_tensor

# A constexpr, so the JIT may read it inside the kernels.
EMPTY_OFFSET = tl.constexpr(-1e38)


@triton.jit
def _fold_max(a, b):
    """(max(a, b), e^{a - max}, e^{b - max}) through one exp: one of the two factors is e^0 = 1."""
    d = a - b
    a_wins = d >= 0
    e = tl.exp(tl.where(a_wins, -d, d))
    return tl.where(a_wins, a, b), tl.where(a_wins, 1.0, e), tl.where(a_wins, e, 1.0)


@triton.jit
def wkv_fwd_kernel(w_ptr, u_ptr, k_ptr, v_ptr, y_ptr, T, C, BLOCK_C: tl.constexpr):
    i_b = tl.program_id(0)
    i_c = tl.program_id(1)
    o_c = i_c * BLOCK_C + tl.arange(0, BLOCK_C)
    m_c = o_c < C
    b_w = tl.load(w_ptr + o_c, mask=m_c, other=0.0)
    b_u = tl.load(u_ptr + o_c, mask=m_c, other=0.0)
    b_p = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_q = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_o = tl.full([BLOCK_C], EMPTY_OFFSET, dtype=b_w.dtype)
    # int64 before the row arithmetic: B * T * C may pass 2^31 elements.
    o_row = i_b.to(tl.int64) * T * C + o_c
    p_k = k_ptr + o_row
    p_v = v_ptr + o_row
    p_y = y_ptr + o_row
    for _ in range(T):
        b_k = tl.load(p_k, mask=m_c, other=0.0)
        b_v = tl.load(p_v, mask=m_c, other=0.0)
        _, b_e1, b_e2 = _fold_max(b_o, b_u + b_k)
        tl.store(p_y, (b_e1 * b_p + b_e2 * b_v) / (b_e1 * b_q + b_e2), mask=m_c)
        b_no, b_e1, b_e2 = _fold_max(b_w + b_o, b_k)
        b_p = b_e1 * b_p + b_e2 * b_v
        b_q = b_e1 * b_q + b_e2
        b_o = b_no
        p_k += C
        p_v += C
        p_y += C


@triton.jit
def wkv_bwd_kernel(
    w_ptr, u_ptr, k_ptr, v_ptr, gy_ptr, ys_ptr, gk_ptr, gv_ptr, gw_ptr, gu_ptr, T, C, BLOCK_C: tl.constexpr
):
    i_b = tl.program_id(0)
    i_c = tl.program_id(1)
    o_c = i_c * BLOCK_C + tl.arange(0, BLOCK_C)
    m_c = o_c < C
    b_w = tl.load(w_ptr + o_c, mask=m_c, other=0.0)
    b_u = tl.load(u_ptr + o_c, mask=m_c, other=0.0)
    b_p = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_q = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_dp = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_dq = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_o = tl.full([BLOCK_C], EMPTY_OFFSET, dtype=b_w.dtype)
    b_gw = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_gu = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    o_first = i_b.to(tl.int64) * T
    o_row = o_first * C + o_c
    for _ in range(T):
        b_k = tl.load(k_ptr + o_row, mask=m_c, other=0.0)
        b_v = tl.load(v_ptr + o_row, mask=m_c, other=0.0)
        b_g = tl.load(gy_ptr + o_row, mask=m_c, other=0.0)
        b_no, b_e1, b_e2 = _fold_max(b_o, b_u + b_k)
        b_den = b_e1 * b_q + b_e2
        b_y = (b_e1 * b_p + b_e2 * b_v) / b_den
        b_gd = b_g / b_den
        # dy/du = e^{u+k} (v - y) / D and dy/dw = (a' - y b') / D, each scaled by e^{-no}.
        b_gu += b_gd * b_e2 * (b_v - b_y)
        b_gw += b_gd * b_e1 * (b_dp - b_y * b_dq)
        tl.store(ys_ptr + o_row, b_y, mask=m_c)
        tl.store(gk_ptr + o_row, b_no, mask=m_c)
        tl.store(gv_ptr + o_row, b_gd, mask=m_c)
        b_no, b_e1, b_e2 = _fold_max(b_w + b_o, b_k)
        b_dp = b_e1 * (b_dp + b_p)
        b_dq = b_e1 * (b_dq + b_q)
        b_p = b_e1 * b_p + b_e2 * b_v
        b_q = b_e1 * b_q + b_e2
        b_o = b_no
        o_row += C
    o_bc = i_b.to(tl.int64) * C + o_c
    tl.store(gw_ptr + o_bc, b_gw, mask=m_c)
    tl.store(gu_ptr + o_bc, b_gu, mask=m_c)

    # A = sum_{s>t} e^{(s-1-t) w} g_s / D_s = alpha e^r, B the same with g_s y_s.
    b_alpha = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_beta = tl.zeros([BLOCK_C], dtype=b_w.dtype)
    b_r = tl.full([BLOCK_C], EMPTY_OFFSET, dtype=b_w.dtype)
    for _ in range(T):
        o_row -= C
        b_k = tl.load(k_ptr + o_row, mask=m_c, other=0.0)
        b_v = tl.load(v_ptr + o_row, mask=m_c, other=0.0)
        b_y = tl.load(ys_ptr + o_row, mask=m_c, other=0.0)
        b_no = tl.load(gk_ptr + o_row, mask=m_c, other=0.0)
        b_gd = tl.load(gv_ptr + o_row, mask=m_c, other=0.0)
        b_later = tl.exp(b_k + b_r)
        b_own = b_gd * tl.exp(b_u + b_k - b_no)
        tl.store(gv_ptr + o_row, b_own + b_alpha * b_later, mask=m_c)
        tl.store(gk_ptr + o_row, b_own * (b_v - b_y) + (b_v * b_alpha - b_beta) * b_later, mask=m_c)
        b_nr, b_e1, b_e2 = _fold_max(b_w + b_r, -b_no)
        b_alpha = b_e1 * b_alpha + b_e2 * b_gd
        b_beta = b_e1 * b_beta + b_e2 * b_gd * b_y
        b_r = b_nr


# 64 channels a program, one per thread of 2 warps: B * C / 64 programs, 96 at C = 768 and B = 8, each a chain of
# T dependent steps, so more and smaller programs hide the step latency better than wide ones.
BLOCK_C = 64
NUM_WARPS = 2
# The loop carries a dependency from step to step, so there is nothing for software pipelining to overlap.
NUM_STAGES = 1


def _check(name: str, x: torch.Tensor, dtype: torch.dtype | None, ndim: int) -> None:
    check_tensor(name, x, (torch.float32, torch.float64) if dtype is None else (dtype,), min_dim=ndim, max_dim=ndim)
    if not x.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


def _check_all(w, u, k, v, extra=()) -> None:
    _check("k", k, None, 3)
    for name, x in (("w", w), ("u", u)):
        _check(name, x, k.dtype, 1)
        if x.shape[0] != k.shape[2]:
            raise ValueError(f"{name} has {x.shape[0]} channels but k has C={k.shape[2]}")
    for name, x in (("v", v), *extra):
        _check(name, x, k.dtype, 3)
        if x.shape != k.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but k has {tuple(k.shape)}")


def _grid(k: torch.Tensor) -> tuple[int, int]:
    return (k.shape[0], triton.cdiv(k.shape[2], BLOCK_C))


def wkv_fwd(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """y [B, T, C] from w, u [C] and k, v [B, T, C]: contiguous, all float32 or all float64."""
    _check_all(w, u, k, v)
    y = torch.empty_like(k)
    if y.numel():
        wkv_fwd_kernel[_grid(k)](
            w, u, k, v, y, k.shape[1], k.shape[2], BLOCK_C=BLOCK_C, num_warps=NUM_WARPS, num_stages=NUM_STAGES
        )
    return y


def wkv_bwd(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gw [C], gu [C], gk [B, T, C], gv [B, T, C]) of sum(gy * wkv(w, u, k, v))."""
    _check_all(w, u, k, v, (("gy", gy),))
    batch, steps, channels = k.shape
    gk, gv, ys = torch.empty_like(k), torch.empty_like(k), torch.empty_like(k)
    gw = torch.zeros((batch, channels), dtype=k.dtype, device=k.device)
    gu = torch.zeros_like(gw)
    if batch * channels:
        wkv_bwd_kernel[_grid(k)](
            w, u, k, v, gy, ys, gk, gv, gw, gu, steps, channels,
            BLOCK_C=BLOCK_C, num_warps=NUM_WARPS, num_stages=NUM_STAGES,
        )  # fmt: skip
    return gw.sum(0), gu.sum(0), gk, gv


def _spec(kernel, dtype: str) -> AotSpec:
    constexprs = {"BLOCK_C": BLOCK_C}
    scalars = ("T", "C")
    signature = {
        p: "constexpr" if p in constexprs else "i32" if p in scalars else f"*{dtype}" for p in kernel.arg_names
    }
    return AotSpec(
        kernel, signature, constexprs, num_warps=NUM_WARPS, num_stages=NUM_STAGES, name=f"{kernel.__name__}[{dtype}]"
    )


AOT_SPECS = [_spec(kernel, dtype) for kernel in (wkv_fwd_kernel, wkv_bwd_kernel) for dtype in ("fp32", "fp64")]
