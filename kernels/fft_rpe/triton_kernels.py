"""Triton kernels of the positive-random-feature map phi of rpe_kernel_attention and its backward.

Rows are the flattened [B, T, H] positions of x [..., D]; W is [m, D]. Each program holds BLOCK_N rows of x whole
(BLOCK_D >= D) and walks the m features BLOCK_C at a time:

    P = x' W^T - |x'|^2 / 2 (x' = x / D**0.25),   phi = exp(P - shift) / sqrt(m)

`prf_max_kernel` writes each row's max of P and the first column attaining it (the queries' shifts; the keys'
one shift per (batch, head) is the max of their rows' maxima, taken by the launcher). `prf_fwd_kernel` writes phi.
`prf_bwd_kernel` writes dL/dx from dL/dphi, the shift differentiated too: -sum(dP) of a query row, or `extra` given
per row for keys, added at the row's max column (the formula is in cpu.py, which is the same math in PyTorch).
fp32 and fp64; tl.dot runs in IEEE precision (no TF32), since the oracle tests hold float32 to its tolerance.
"""

import torch
import triton
import triton.language as tl

from accelkit.kernels._common.aot import AotSpec

BLOCK_N = 32
BLOCK_C = 32
# 8 warps: the IEEE-fp32 tl.dot (FMA, no tensor cores) at D = 128 spilled with 4 (ptxas, sm_80 and sm_90).
NUM_WARPS = 8
NUM_STAGES = 2
# One program holds a [BLOCK_N, BLOCK_D] tile of x and of dL/dx: beyond D = 256 the PyTorch path (cpu.py) runs.
MAX_HEAD_DIM = 256


@triton.jit
def _load_rows(x_ptr, o_n, m_n, o_d, m_d, stride_xn, stride_xd, scale):
    """x' = x / D**0.25 for rows o_n: [BLOCK_N, BLOCK_D], masked entries 0."""
    p_x = x_ptr + o_n.to(tl.int64)[:, None] * stride_xn + o_d.to(tl.int64)[None, :] * stride_xd
    return tl.load(p_x, mask=m_n[:, None] & m_d[None, :], other=0.0) * scale


@triton.jit
def _logits(b_xs, b_sq, w_ptr, o_c, m_c, o_d, m_d, stride_wm, stride_wd):
    """P for the rows of b_xs and feature columns o_c: [BLOCK_N, BLOCK_C]."""
    p_w = w_ptr + o_d.to(tl.int64)[:, None] * stride_wd + o_c.to(tl.int64)[None, :] * stride_wm
    b_wt = tl.load(p_w, mask=m_d[:, None] & m_c[None, :], other=0.0)  # [BLOCK_D, BLOCK_C]
    b_p = tl.dot(b_xs, b_wt, input_precision="ieee")  # [BLOCK_N, BLOCK_D] x [BLOCK_D, BLOCK_C] -> [BLOCK_N, BLOCK_C]
    return b_p - 0.5 * b_sq[:, None]


@triton.jit
def prf_max_kernel(
    x_ptr, w_ptr, max_ptr, arg_ptr, n_rows, d, m, stride_xn, stride_xd, stride_wm, stride_wd, scale,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i_n = tl.program_id(0)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_d = tl.arange(0, BLOCK_D)
    m_n, m_d = o_n < n_rows, o_d < d
    b_xs = _load_rows(x_ptr, o_n, m_n, o_d, m_d, stride_xn, stride_xd, scale)
    b_sq = tl.sum(b_xs * b_xs, axis=1)
    b_max = tl.full((BLOCK_N,), float("-inf"), dtype=b_xs.dtype)
    b_arg = tl.zeros((BLOCK_N,), dtype=tl.int32)
    for c0 in range(0, m, BLOCK_C):
        o_c = c0 + tl.arange(0, BLOCK_C)
        m_c = o_c < m
        b_p = _logits(b_xs, b_sq, w_ptr, o_c, m_c, o_d, m_d, stride_wm, stride_wd)
        b_p = tl.where(m_c[None, :], b_p, float("-inf"))
        b_blk_max = tl.max(b_p, axis=1)
        b_blk_arg = tl.argmax(b_p, axis=1).to(tl.int32) + c0
        # Strictly greater: the first column attaining the max wins, as torch.max reports it.
        b_new = b_blk_max > b_max
        b_arg = tl.where(b_new, b_blk_arg, b_arg)
        b_max = tl.where(b_new, b_blk_max, b_max)
    tl.store(max_ptr + o_n, b_max, mask=m_n)
    tl.store(arg_ptr + o_n, b_arg, mask=m_n)


@triton.jit
def prf_fwd_kernel(
    x_ptr, w_ptr, shift_ptr, out_ptr, n_rows, d, m, stride_xn, stride_xd, stride_wm, stride_wd, scale, inv_sqrt_m,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i_n = tl.program_id(0)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_d = tl.arange(0, BLOCK_D)
    m_n, m_d = o_n < n_rows, o_d < d
    b_xs = _load_rows(x_ptr, o_n, m_n, o_d, m_d, stride_xn, stride_xd, scale)
    b_sq = tl.sum(b_xs * b_xs, axis=1)
    b_shift = tl.load(shift_ptr + o_n, mask=m_n, other=0.0)
    # One program walks all m columns of its rows (a [rows, columns] grid without the loop spilled at D = 128).
    for c0 in range(0, m, BLOCK_C):
        o_c = c0 + tl.arange(0, BLOCK_C)
        m_c = o_c < m
        b_p = _logits(b_xs, b_sq, w_ptr, o_c, m_c, o_d, m_d, stride_wm, stride_wd)
        b_phi = tl.exp(b_p - b_shift[:, None]) * inv_sqrt_m
        p_out = out_ptr + o_n.to(tl.int64)[:, None] * m + o_c[None, :]
        tl.store(p_out, b_phi, mask=m_n[:, None] & m_c[None, :])


@triton.jit
def prf_bwd_kernel(
    x_ptr, w_ptr, shift_ptr, arg_ptr, extra_ptr, g_ptr, dx_ptr, n_rows, d, m, stride_xn, stride_xd, stride_wm,
    stride_wd, scale, inv_sqrt_m, is_query,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i_n = tl.program_id(0)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_d = tl.arange(0, BLOCK_D)
    m_n, m_d = o_n < n_rows, o_d < d
    b_xs = _load_rows(x_ptr, o_n, m_n, o_d, m_d, stride_xn, stride_xd, scale)
    b_sq = tl.sum(b_xs * b_xs, axis=1)
    b_shift = tl.load(shift_ptr + o_n, mask=m_n, other=0.0)
    b_acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=b_xs.dtype)
    b_total = tl.zeros((BLOCK_N,), dtype=b_xs.dtype)
    for c0 in range(0, m, BLOCK_C):
        o_c = c0 + tl.arange(0, BLOCK_C)
        m_c = o_c < m
        b_p = _logits(b_xs, b_sq, w_ptr, o_c, m_c, o_d, m_d, stride_wm, stride_wd)
        p_g = g_ptr + o_n.to(tl.int64)[:, None] * m + o_c[None, :]
        b_g = tl.load(p_g, mask=m_n[:, None] & m_c[None, :], other=0.0)
        b_dp = b_g * tl.exp(b_p - b_shift[:, None]) * inv_sqrt_m  # dL/dP, 0 off the mask
        p_w = w_ptr + o_c.to(tl.int64)[:, None] * stride_wm + o_d.to(tl.int64)[None, :] * stride_wd
        b_w = tl.load(p_w, mask=m_c[:, None] & m_d[None, :], other=0.0)  # [BLOCK_C, BLOCK_D]
        b_acc += tl.dot(
            b_dp, b_w, input_precision="ieee"
        )  # [BLOCK_N, BLOCK_C] x [BLOCK_C, BLOCK_D] -> [BLOCK_N, BLOCK_D]
        b_total += tl.sum(b_dp, axis=1)
    # A runtime flag, not a constexpr: one compiled kernel serves queries and keys (extra_ptr is read either way).
    b_extra = tl.load(extra_ptr + o_n, mask=m_n, other=0.0)
    b_extra = tl.where(is_query != 0, -b_total, b_extra)
    b_arg = tl.load(arg_ptr + o_n, mask=m_n, other=0)
    p_wa = w_ptr + b_arg.to(tl.int64)[:, None] * stride_wm + o_d.to(tl.int64)[None, :] * stride_wd
    b_wa = tl.load(p_wa, mask=m_n[:, None] & m_d[None, :], other=0.0)  # W[arg] per row: [BLOCK_N, BLOCK_D]
    b_dx = (b_acc + b_extra[:, None] * b_wa - (b_total + b_extra)[:, None] * b_xs) * scale
    p_dx = dx_ptr + o_n.to(tl.int64)[:, None] * d + o_d[None, :]
    tl.store(p_dx, b_dx, mask=m_n[:, None] & m_d[None, :])


def _block_d(d: int) -> int:
    return max(16, triton.next_power_of_2(d))


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def _common(x2: torch.Tensor, w: torch.Tensor) -> tuple:
    n, d = x2.shape
    return (n, d, w.shape[0], *x2.stride(), *w.stride(), d**-0.25)


def _check(x: torch.Tensor, w: torch.Tensor) -> None:
    if x.dtype not in (torch.float32, torch.float64) or w.dtype != x.dtype:
        raise ValueError(f"x and features must share dtype float32 or float64, got {x.dtype} and {w.dtype}")
    if x.shape[-1] != w.shape[1] or not 1 <= x.shape[-1] <= MAX_HEAD_DIM:
        raise ValueError(f"x has D={x.shape[-1]}, features {tuple(w.shape)}; need equal D <= {MAX_HEAD_DIM}")


def prf_row_max(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's max of P and its first argmax (int64), shaped x.shape[:-1]."""
    _check(x, w)
    x2 = _rows(x)
    out_max = torch.empty(x2.shape[0], dtype=x.dtype, device=x.device)
    out_arg = torch.empty(x2.shape[0], dtype=torch.int32, device=x.device)
    if x2.shape[0]:
        grid = (triton.cdiv(x2.shape[0], BLOCK_N),)
        prf_max_kernel[grid](
            x2, w, out_max, out_arg, *_common(x2, w), BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C,
            BLOCK_D=_block_d(x2.shape[1]), num_warps=NUM_WARPS, num_stages=NUM_STAGES,
        )  # fmt: skip
    return out_max.view(x.shape[:-1]), out_arg.view(x.shape[:-1]).long()


def prf_forward(x: torch.Tensor, w: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """phi [..., m] = exp(P - shift[..., None]) / sqrt(m)."""
    _check(x, w)
    x2, m = _rows(x), w.shape[0]
    out = torch.empty((x2.shape[0], m), dtype=x.dtype, device=x.device)
    if out.numel():
        grid = (triton.cdiv(x2.shape[0], BLOCK_N),)
        prf_fwd_kernel[grid](
            x2, w, shift.reshape(-1).contiguous(), out, *_common(x2, w), m**-0.5, BLOCK_N=BLOCK_N,
            BLOCK_C=BLOCK_C, BLOCK_D=_block_d(x2.shape[1]), num_warps=NUM_WARPS, num_stages=NUM_STAGES,
        )  # fmt: skip
    return out.view(*x.shape[:-1], m)


def prf_backward(
    x: torch.Tensor, w: torch.Tensor, shift: torch.Tensor, arg: torch.Tensor, extra: torch.Tensor | None,
    grad_phi: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """dL/dx [..., D]; extra None for queries (the row's own max), else the per-row amount added at column arg."""
    _check(x, w)
    x2, m = _rows(x), w.shape[0]
    dx = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    if x2.shape[0] == 0:
        return dx.view(x.shape)
    if m == 0:
        return dx.zero_().view(x.shape)
    shift1, arg1 = shift.reshape(-1).contiguous(), arg.reshape(-1).to(torch.int32).contiguous()
    extra1 = shift1 if extra is None else extra.reshape(-1).contiguous()  # replaced in-kernel for queries
    grid = (triton.cdiv(x2.shape[0], BLOCK_N),)
    prf_bwd_kernel[grid](
        x2, w, shift1, arg1, extra1, grad_phi.reshape(-1, m).contiguous(), dx, *_common(x2, w), m**-0.5,
        int(extra is None), BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C, BLOCK_D=_block_d(x2.shape[1]),
        num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    return dx.view(x.shape)


def _signature(kernel, dtype: str) -> dict[str, str]:
    """Pointers of `dtype` (arg_ptr int32), sizes and strides i32, scale factors of `dtype`, blocks constexpr."""
    types = {"arg_ptr": "*i32", "scale": dtype.removeprefix("*"), "inv_sqrt_m": dtype.removeprefix("*")}
    sig = {}
    for p in kernel.arg_names:
        if p.isupper():
            sig[p] = "constexpr"
        elif p in types:
            sig[p] = types[p]
        else:
            sig[p] = dtype if p.endswith("_ptr") else "i32"
    return sig


def _spec(kernel, dtype: str, d: int, **flags) -> AotSpec:
    constexprs = {"BLOCK_N": BLOCK_N, "BLOCK_C": BLOCK_C, "BLOCK_D": _block_d(d), **flags}
    tag = ",".join([dtype, f"d{d}", *(f"{k.lower()}={int(v)}" for k, v in flags.items())])
    return AotSpec(
        kernel, _signature(kernel, "*" + dtype), constexprs, num_warps=NUM_WARPS, num_stages=NUM_STAGES,
        name=f"{kernel.__name__}[{tag}]",
    )  # fmt: skip


# The head dims the benchmark and the common models use (64, 128), in float32 (the path 16-bit inputs take too).
AOT_SPECS = [
    *(_spec(k, "fp32", d) for k in (prf_max_kernel, prf_fwd_kernel) for d in (64, 128)),
    *(_spec(prf_bwd_kernel, "fp32", d) for d in (64, 128)),
]
