"""Triton kernels for binary (XNOR/popcount) layers: sign-packing and the packed GEMM.

Same contracts as the C++ ops and kernels/binary/reference.py: packing runs along the last axis K, LSB first, a
set bit means sign -1 (x < 0 or NaN), padding bits of the last word are 0; the GEMM returns
K - 2 * popcount(a xor w) summed over words, with weights [N, W] like nn.Linear.

Operands of any rank are seen as [B, R, L] (B = product of all but the last two dims). A program's flat row index
r maps to (r // R, r % R), so a batch of transposed or sliced matrices is read in place through its strides.
"""

import torch
import triton
import triton.language as tl

from accelkit.kernels._common.aot import AotSpec
from accelkit.kernels._common.bits import negative_bit, popcount
from accelkit.kernels._common.checks import check_tensor
from accelkit.kernels._common.dtypes import FLOAT_DTYPES, WORD_DTYPES
from accelkit.kernels._common.words import check_k, check_word_bits, num_words, word_bits_of, word_dtype


@triton.jit
def _row_offsets(o_r, n_inner, stride_outer, stride_inner):
    """Element offsets (int64) of flat row indices `o_r` in a [B, R, ...] view with R = n_inner."""
    o_r = o_r.to(tl.int64)
    return (o_r // n_inner) * stride_outer + (o_r % n_inner) * stride_inner


@triton.jit
def binary_pack_kernel(
    x_ptr,
    out_ptr,
    n_rows,
    n_inner,
    k,
    n_words,
    stride_xb,
    stride_xr,
    stride_xk,
    WORD: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    i_r = tl.program_id(0)
    i_w = tl.program_id(1)
    o_r = i_r * BLOCK_R + tl.arange(0, BLOCK_R)
    o_w = i_w * BLOCK_W + tl.arange(0, BLOCK_W)
    o_bit = tl.arange(0, WORD)
    o_k = o_w[:, None] * WORD + o_bit[None, :]  # [BW, WORD]
    m_r = o_r < n_rows
    m_w = o_w < n_words
    m_x = m_r[:, None, None] & (o_k < k)[None, :, :]  # [BR, BW, WORD]

    o_x = _row_offsets(o_r, n_inner, stride_xb, stride_xr)
    p_x = x_ptr + o_x[:, None, None] + o_k.to(tl.int64)[None, :, :] * stride_xk
    # Masked-off elements read as 0.0, whose bit is 0: that is the zero padding of the last word.
    b_x = tl.load(p_x, mask=m_x, other=0.0)  # [BR, BW, WORD]
    b_bits = negative_bit(b_x).to(out_ptr.dtype.element_ty) << o_bit[None, None, :]  # [BR, BW, WORD]
    # The shifted bits are disjoint, so their sum is their OR and cannot carry, even into the sign bit.
    b_words = tl.sum(b_bits, axis=2)  # [BR, BW]

    p_out = out_ptr + o_r.to(tl.int64)[:, None] * n_words + o_w[None, :]
    tl.store(p_out, b_words, mask=m_r[:, None] & m_w[None, :])


@triton.jit
def binary_gemm_kernel(
    a_ptr,
    w_ptr,
    out_ptr,
    m,
    n_inner,
    n,
    k,
    n_words,
    stride_ab,
    stride_am,
    stride_aw,
    stride_wn,
    stride_ww,
    WORD: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    i_m = tl.program_id(0)
    i_n = tl.program_id(1)
    o_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_m = o_m < m
    m_n = o_n < n
    o_a = _row_offsets(o_m, n_inner, stride_ab, stride_am)
    o_wn = o_n.to(tl.int64) * stride_wn

    b_diff = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for w0 in range(0, n_words, BLOCK_W):
        o_w = w0 + tl.arange(0, BLOCK_W)
        m_w = o_w < n_words
        o_w64 = o_w.to(tl.int64)
        # Masked words read as 0 in both operands, so they xor to 0 and add nothing.
        p_a = a_ptr + o_a[:, None] + o_w64[None, :] * stride_aw
        p_w = w_ptr + o_wn[:, None] + o_w64[None, :] * stride_ww
        b_a = tl.load(p_a, mask=m_m[:, None] & m_w[None, :], other=0)  # [BM, BW]
        b_w = tl.load(p_w, mask=m_n[:, None] & m_w[None, :], other=0)  # [BN, BW]
        # Bits past k are padding that pack leaves 0, but words from elsewhere may set them; cleared in both
        # operands they xor to 0, so every result stays in [-k, k]. Word w holds clamp(k - w * WORD, 0, WORD)
        # real bits; the shift is clamped below WORD because a shift by the full width is undefined.
        o_valid = tl.minimum(tl.maximum(k - o_w * WORD, 0), WORD)  # [BW]
        b_one = tl.full((BLOCK_W,), 1, dtype=b_a.dtype)
        b_low = (b_one << tl.minimum(o_valid, WORD - 1).to(b_a.dtype)) - 1
        b_mask = tl.where(o_valid >= WORD, -1, b_low).to(b_a.dtype)  # [BW]
        b_a = b_a & b_mask[None, :]
        b_w = b_w & b_mask[None, :]
        b_x = b_a[:, None, :] ^ b_w[None, :, :]  # [BM, BN, BW]
        b_diff += tl.sum(popcount(b_x, WORD), axis=2)  # [BM, BN]

    b_out = k - 2 * b_diff  # [BM, BN]
    p_out = out_ptr + o_m.to(tl.int64)[:, None] * n + o_n[None, :]
    tl.store(p_out, b_out, mask=m_m[:, None] & m_n[None, :])


NUM_WARPS = 4
# Pack: a program covers BLOCK_R rows x 128 elements of K (4 words of 32 or 2 of 64), 2048 elements in all,
# 16 per thread at 4 warps. The kernel has no loop, so pipelining stages have nothing to overlap: 1 stage.
PACK_CONFIGS = {
    32: {"BLOCK_R": 16, "BLOCK_W": 4},
    64: {"BLOCK_R": 16, "BLOCK_W": 2},
}
PACK_STAGES = 1
# GEMM: the [BM, BN, BW] xor block holds 32 * 32 * 4 = 4096 words (32 per thread at 4 warps) for 32-bit words;
# 64-bit words take BW = 2 so the block stays 128 bits of K per (m, n) pair and the same 16 KB in registers.
GEMM_CONFIGS = {
    32: {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_W": 4},
    64: {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_W": 2},
}
# Triton 3.9 software-pipelines loads that feed tl.dot; these feed an xor, and the AOT build at 1 to 4 stages gives
# the same registers (sm_80: 68 for w32, 130 for w64), no cp.async and 2048 B of shared memory every time, so
# more stages buy nothing.
GEMM_STAGES = 1


def _as_3d(x: torch.Tensor) -> torch.Tensor:
    """[..., L] -> [B, R, L]; a view except when 4+ leading dims cannot merge into one stride (then a copy)."""
    if x.dim() == 1:
        return x[None, None]
    if x.dim() == 2:
        return x[None]
    return x.flatten(0, -3)


def binary_pack_fwd(x: torch.Tensor, word_bits: int = 32) -> torch.Tensor:
    """[..., K] float -> [..., ceil(K / word_bits)] int32 (word_bits 32) or int64 (64) sign-bit words."""
    word_bits = check_word_bits(word_bits)
    check_tensor("x", x, FLOAT_DTYPES, min_dim=1)
    k = x.shape[-1]
    n_words = num_words(k, word_bits)
    out = torch.empty((*x.shape[:-1], n_words), dtype=word_dtype(word_bits), device=x.device)
    if out.numel() == 0:
        return out
    x3 = _as_3d(x)
    n_rows = x3.shape[0] * x3.shape[1]
    cfg = PACK_CONFIGS[word_bits]
    grid = (triton.cdiv(n_rows, cfg["BLOCK_R"]), triton.cdiv(n_words, cfg["BLOCK_W"]))
    binary_pack_kernel[grid](
        x3, out, n_rows, x3.shape[1], k, n_words, *x3.stride(),
        WORD=word_bits, **cfg, num_warps=NUM_WARPS, num_stages=PACK_STAGES,
    )  # fmt: skip
    return out


def _check_gemm_args(a_bits: torch.Tensor, w_bits: torch.Tensor, k: int) -> tuple[int, int]:
    """Validate the packed operands; return (word size in bits, k as an int)."""
    check_tensor("a_bits", a_bits, tuple(WORD_DTYPES.values()), min_dim=1)
    check_tensor("w_bits", w_bits, (a_bits.dtype,), min_dim=2, max_dim=2)
    if w_bits.shape[-1] != a_bits.shape[-1]:
        raise ValueError(f"w_bits has {w_bits.shape[-1]} words per row but a_bits has {a_bits.shape[-1]}")
    word_bits = word_bits_of(a_bits.dtype, "a_bits")
    return word_bits, check_k(k, a_bits.shape[-1], word_bits)


def binary_gemm_fwd(a_bits: torch.Tensor, w_bits: torch.Tensor, k: int) -> torch.Tensor:
    """Packed [..., W] x packed [N, W] -> int32 [..., N]: dot products of the +-1 vectors of length k encoded.
    Padding bits past k are ignored."""
    word_bits, k = _check_gemm_args(a_bits, w_bits, k)
    n, n_words = w_bits.shape
    out = torch.empty((*a_bits.shape[:-1], n), dtype=torch.int32, device=a_bits.device)
    if out.numel() == 0:
        return out
    if n_words == 0:
        # k = 0: every dot product is over an empty vector.
        return out.zero_()
    a3 = _as_3d(a_bits)
    m = a3.shape[0] * a3.shape[1]
    cfg = GEMM_CONFIGS[word_bits]
    grid = (triton.cdiv(m, cfg["BLOCK_M"]), triton.cdiv(n, cfg["BLOCK_N"]))
    binary_gemm_kernel[grid](
        a3, w_bits, out, m, a3.shape[1], n, k, n_words, *a3.stride(), *w_bits.stride(),
        WORD=word_bits, **cfg, num_warps=NUM_WARPS, num_stages=GEMM_STAGES,
    )  # fmt: skip
    return out


def _signature(kernel, types: dict[str, str], constexprs: dict) -> dict[str, str]:
    """Every parameter of `kernel`: pointers and constexprs as given, the rest (sizes, strides) i32, which is what
    the launcher passes for tensors under 2**31 elements."""
    return {p: "constexpr" if p in constexprs else types.get(p, "i32") for p in kernel.arg_names}


def _pack_spec(dtype: str, word_bits: int) -> AotSpec:
    constexprs = {"WORD": word_bits, **PACK_CONFIGS[word_bits]}
    types = {"x_ptr": f"*{dtype}", "out_ptr": f"*i{word_bits}"}
    return AotSpec(
        binary_pack_kernel, _signature(binary_pack_kernel, types, constexprs), constexprs,
        num_warps=NUM_WARPS, num_stages=PACK_STAGES, name=f"binary_pack_kernel[{dtype},w{word_bits}]",
    )  # fmt: skip


def _gemm_spec(word_bits: int) -> AotSpec:
    constexprs = {"WORD": word_bits, **GEMM_CONFIGS[word_bits]}
    types = {"a_ptr": f"*i{word_bits}", "w_ptr": f"*i{word_bits}", "out_ptr": "*i32"}
    return AotSpec(
        binary_gemm_kernel, _signature(binary_gemm_kernel, types, constexprs), constexprs,
        num_warps=NUM_WARPS, num_stages=GEMM_STAGES, name=f"binary_gemm_kernel[w{word_bits}]",
    )  # fmt: skip


AOT_SPECS = [
    *(_pack_spec(dtype, bits) for dtype in ("fp32", "fp64", "fp16", "bf16") for bits in WORD_DTYPES),
    *(_gemm_spec(bits) for bits in WORD_DTYPES),
]
