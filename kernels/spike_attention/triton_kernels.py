"""Triton kernels of spike-driven self-attention on CUDA: V1's column sums and V2's fused Q (K^T V) s forward.

Inputs are contiguous [G, N, D] views of [T, B, H, N, D] (G = T B H heads-at-a-step); one program per head-at-a-step
(V2) or per (head-at-a-step, block of channels) (V1), with a loop over blocks of tokens. Accumulation is float32
(float64 for float64): spike counts are exact integers up to 2^24 tokens whatever the input dtype.

- `sdsa_column_sums_kernel`: KV[g, d] = sum_n K[g, n, d] V[g, n, d], without the [G, N, D] product tensor that
  torch's `(k * v).sum(-2)` materialises.
- `sdsa_v2_fwd_kernel`: KV = K^T V ([D, D], kept in registers), then Out = Q KV s, one kernel instead of two
  batched matmuls and the [G, D, D] intermediate. Both products use IEEE float32 (no TF32), so spike counts stay
  exact; the backward (five small matmuls) stays in PyTorch.
"""

import torch
import triton
import triton.language as tl

from accelkit.kernels._common.aot import AotSpec


@triton.jit
def sdsa_column_sums_kernel(k_ptr, v_ptr, kv_ptr, N, D, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    i_g = tl.program_id(0)
    i_d = tl.program_id(1)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    m_d = o_d < D
    o_head = i_g.to(tl.int64) * N * D
    b_acc = tl.zeros([BLOCK_D], dtype=kv_ptr.dtype.element_ty)
    for n0 in range(0, N, BLOCK_N):
        o_n = n0 + tl.arange(0, BLOCK_N)
        m = (o_n < N)[:, None] & m_d[None, :]
        o_x = o_head + o_n.to(tl.int64)[:, None] * D + o_d[None, :]
        b_k = tl.load(k_ptr + o_x, mask=m, other=0.0).to(b_acc.dtype)  # [BN, BD]
        b_v = tl.load(v_ptr + o_x, mask=m, other=0.0).to(b_acc.dtype)  # [BN, BD]
        b_acc += tl.sum(b_k * b_v, axis=0)
    tl.store(kv_ptr + i_g.to(tl.int64) * D + o_d, b_acc, mask=m_d)


@triton.jit
def sdsa_v2_fwd_kernel(q_ptr, k_ptr, v_ptr, out_ptr, N, D, scale, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    i_g = tl.program_id(0)
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    o_head = i_g.to(tl.int64) * N * D
    b_kv = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        o_n = n0 + tl.arange(0, BLOCK_N)
        m = (o_n < N)[:, None] & m_d[None, :]
        o_x = o_head + o_n.to(tl.int64)[:, None] * D + o_d[None, :]
        b_k = tl.load(k_ptr + o_x, mask=m, other=0.0).to(tl.float32)  # [BN, BD]
        b_v = tl.load(v_ptr + o_x, mask=m, other=0.0).to(tl.float32)  # [BN, BD]
        b_kv += tl.dot(tl.trans(b_k), b_v, input_precision="ieee")  # [BD, BN] @ [BN, BD] -> [BD, BD]
    for n0 in range(0, N, BLOCK_N):
        o_n = n0 + tl.arange(0, BLOCK_N)
        m = (o_n < N)[:, None] & m_d[None, :]
        o_x = o_head + o_n.to(tl.int64)[:, None] * D + o_d[None, :]
        b_q = tl.load(q_ptr + o_x, mask=m, other=0.0).to(tl.float32)  # [BN, BD]
        b_out = tl.dot(b_q, b_kv, input_precision="ieee") * scale  # [BN, BD] @ [BD, BD] -> [BN, BD]
        tl.store(out_ptr + o_x, b_out.to(out_ptr.dtype.element_ty), mask=m)


# Column sums: 64 tokens x 32 channels a step (2048 elements, 16 per thread at 4 warps).
SUMS_BLOCK_N = 64
SUMS_BLOCK_D = 32
# V2: the [D, D] float32 KV lives in registers beside tiles of V2_BLOCK_N tokens of K, V and Q, every head dim up to
# MAX_D_V2 in one 64-wide configuration (one AOT build per dtype; smaller heads are masked). At D = 64 (SDT-V2's head
# dim) KV is 16 KB: 32-token tiles at 4 warps (32 KV floats a thread) spilled 148 to 644 bytes in the sm_80/sm_90
# AOT build, and at 8 warps still 248 bytes on sm_80 for float32, so 16-token tiles at 8 warps.
V2_BLOCK_N = 16
V2_BLOCK_D = 64
V2_WARPS = 8
MAX_D_V2 = 64
NUM_WARPS = 4
# The loops feed tl.dot from global loads: two stages overlap the next block's loads with this block's dot.
NUM_STAGES = 2


def _heads(x: torch.Tensor) -> torch.Tensor:
    """[T, B, H, N, D] as a contiguous [G, N, D]."""
    return x.contiguous().reshape(-1, x.shape[-2], x.shape[-1])


def _check(name: str, x: torch.Tensor, like: torch.Tensor | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        raise ValueError(f"{name} must be a 5-D [T, B, H, N, D] tensor")
    if like is not None and (x.shape != like.shape or x.dtype != like.dtype):
        raise ValueError(f"{name} must have q's shape and dtype")


def column_sums_fwd(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """KV [T, B, H, 1, D] = sum over tokens of K V, float32 (float64 for float64 inputs)."""
    _check("k", k)
    _check("v", v, k)
    n, d = k.shape[-2], k.shape[-1]
    k3, v3 = _heads(k), _heads(v)
    acc = torch.float64 if k.dtype == torch.float64 else torch.float32
    kv = torch.zeros((k3.shape[0], d), dtype=acc, device=k.device)
    if k3.shape[0] and d:
        grid = (k3.shape[0], triton.cdiv(d, SUMS_BLOCK_D))
        sdsa_column_sums_kernel[grid](
            k3, v3, kv, n, d, BLOCK_N=SUMS_BLOCK_N, BLOCK_D=SUMS_BLOCK_D, num_warps=NUM_WARPS, num_stages=NUM_STAGES
        )
    return kv.reshape(*k.shape[:-2], 1, d)


def sdsa_v2_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Out [T, B, H, N, D] = Q (K^T V) scale in q's dtype, for float16/bfloat16/float32 with D <= MAX_D_V2."""
    _check("q", q)
    _check("k", k, q)
    _check("v", v, q)
    if q.dtype == torch.float64 or q.shape[-1] > MAX_D_V2:
        raise ValueError(f"sdsa_v2_fwd takes float16/bfloat16/float32 with D <= {MAX_D_V2}")
    q3, k3, v3 = _heads(q), _heads(k), _heads(v)
    out = torch.empty_like(q3)
    n, d = q.shape[-2], q.shape[-1]
    if q3.numel():
        sdsa_v2_fwd_kernel[(q3.shape[0],)](
            q3, k3, v3, out, n, d, float(scale), BLOCK_N=V2_BLOCK_N, BLOCK_D=V2_BLOCK_D,
            num_warps=V2_WARPS, num_stages=NUM_STAGES,
        )  # fmt: skip
    return out.reshape(q.shape)


def _signature(kernel, pointers: dict[str, str], constexprs: dict, floats: tuple[str, ...] = ()) -> dict[str, str]:
    def kind(p: str) -> str:
        if p in constexprs:
            return "constexpr"
        return pointers.get(p) or ("fp32" if p in floats else "i32")

    return {p: kind(p) for p in kernel.arg_names}


def _sums_spec(dtype: str) -> AotSpec:
    constexprs = {"BLOCK_N": SUMS_BLOCK_N, "BLOCK_D": SUMS_BLOCK_D}
    acc = "fp64" if dtype == "fp64" else "fp32"
    pointers = {"k_ptr": f"*{dtype}", "v_ptr": f"*{dtype}", "kv_ptr": f"*{acc}"}
    return AotSpec(
        sdsa_column_sums_kernel, _signature(sdsa_column_sums_kernel, pointers, constexprs), constexprs,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES, name=f"sdsa_column_sums_kernel[{dtype}]",
    )  # fmt: skip


def _v2_spec(dtype: str) -> AotSpec:
    constexprs = {"BLOCK_N": V2_BLOCK_N, "BLOCK_D": V2_BLOCK_D}
    pointers = {p: f"*{dtype}" for p in ("q_ptr", "k_ptr", "v_ptr", "out_ptr")}
    return AotSpec(
        sdsa_v2_fwd_kernel, _signature(sdsa_v2_fwd_kernel, pointers, constexprs, ("scale",)), constexprs,
        num_warps=V2_WARPS, num_stages=NUM_STAGES, name=f"sdsa_v2_fwd_kernel[{dtype}]",
    )  # fmt: skip


AOT_SPECS = [
    *(_sums_spec(dtype) for dtype in ("fp32", "fp64", "fp16", "bf16")),
    *(_v2_spec(dtype) for dtype in ("fp32", "fp16", "bf16")),
]
