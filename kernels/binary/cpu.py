"""C++ CPU launchers for the binary (XNOR/popcount) kernels: torch tensors in, torch tensors out.

Words travel as int32 (32-bit words) or int64 (64-bit words) because torch has no uint32/uint64 arithmetic; the bit
patterns are those of kernels/binary/reference.py's uint32/uint64 words. The C++ side (csrc/binary.cpp) picks the
AVX-512 VPOPCNTDQ, AVX2 or scalar path at run time; `isa` forces one ("auto", "avx512", "avx2", "scalar").
Arguments are checked here, with the errors of kernels/_common/words.py and checks.py, before the C++ side runs.
"""

import math

import torch

from accelkit._native import native
from accelkit.kernels._common.checks import check_tensor
from accelkit.kernels._common.dtypes import FLOAT_DTYPES, WORD_DTYPES
from accelkit.kernels._common.words import check_k, check_word_bits, num_words, word_bits_of, word_dtype

# Result dtypes the C++ GEMM writes itself; others are cast from int32 afterwards. float32 holds every dot product
# exactly while k <= 2^24, the largest integer range of its 24-bit significand.
_FUSED_DTYPES = {torch.int32: "int32", torch.float32: "float32"}
_FLOAT32_EXACT_K = 2**24


def _cpu(t: torch.Tensor, name: str, dtypes: tuple[torch.dtype, ...], *, min_dim: int = 1) -> torch.Tensor:
    check_tensor(name, t, dtypes, min_dim=min_dim)
    if t.device.type != "cpu":
        raise ValueError(f"{name} must be on the CPU, got device {t.device}")
    return t.detach().resolve_neg()


def binary_pack_cpu(x: torch.Tensor, word_bits: int = 32, *, isa: str = "auto") -> torch.Tensor:
    """Sign bits of x [..., K] packed along K: [..., ceil(K / word_bits)] int32 or int64 words, LSB first, a set
    bit where x is not >= 0 (negative or NaN), padding bits 0."""
    word_bits = check_word_bits(word_bits)
    x = _cpu(x, "x", FLOAT_DTYPES)
    if x.dtype not in (torch.float32, torch.float64):
        # float16 and bfloat16 convert to float32 exactly, so every sign (and NaN) survives.
        x = x.float()
    k = x.shape[-1]
    lead = x.shape[:-1]
    # A 2-D view keeps any strides (the kernel reads them); more dims flatten, copying only if they must. The row
    # count is explicit because reshape(-1, 0) is ambiguous when K = 0.
    rows = x if x.dim() == 2 else x.reshape(math.prod(lead), k)
    words = num_words(k, word_bits)
    out = torch.empty((rows.shape[0], words), dtype=word_dtype(word_bits))
    native().binary_pack(rows.numpy(), out.numpy(), word_bits, isa)
    return out.reshape(*lead, words)


def _gemm_operands(a_bits: torch.Tensor, w_bits: torch.Tensor, a_name: str):
    a_bits = _cpu(a_bits, a_name, tuple(WORD_DTYPES.values()))
    w_bits = _cpu(w_bits, "w_bits", tuple(WORD_DTYPES.values()), min_dim=0)
    if w_bits.dim() != 2:
        raise ValueError(f"w_bits must be 2-D [N, W], got shape {tuple(w_bits.shape)}")
    if w_bits.dtype != a_bits.dtype:
        raise ValueError(f"w_bits has dtype {w_bits.dtype} but {a_name} has {a_bits.dtype}: words of one size")
    if w_bits.shape[-1] != a_bits.shape[-1]:
        raise ValueError(f"w_bits has {w_bits.shape[-1]} words per row but {a_name} has {a_bits.shape[-1]}")
    lead = a_bits.shape[:-1]
    rows = a_bits.reshape(math.prod(lead), a_bits.shape[-1]).contiguous()
    return rows, w_bits.contiguous(), lead


def binary_gemm_cpu(
    a_bits: torch.Tensor,
    w_bits: torch.Tensor,
    k: int,
    *,
    out_dtype: torch.dtype = torch.int32,
    isa: str = "auto",
) -> torch.Tensor:
    """sign(a) @ sign(w).T from packed operands: a_bits [..., W], w_bits [N, W] (same word size), k the number of
    real elements per row -> [..., N] = k - 2 * popcount(a xor w), as int32 or `out_dtype`.

    Padding bits past k are ignored. The result is a new tensor; int32 and float32 (k <= 2^24) results are written
    by the GEMM itself, other dtypes are cast from int32.
    """
    rows, w_bits, lead = _gemm_operands(a_bits, w_bits, "a_bits")
    k = check_k(k, rows.shape[-1], word_bits_of(rows.dtype, "a_bits"))
    fused = _FUSED_DTYPES.get(out_dtype)
    if fused == "float32" and k > _FLOAT32_EXACT_K:
        fused = None
    out = native().binary_gemm_new(rows.numpy(), w_bits.numpy(), k, fused or "int32", isa)
    result = torch.from_numpy(out).reshape(*lead, w_bits.shape[0])
    return result if fused else result.to(out_dtype)


def spike_gemm_cpu(s_bits: torch.Tensor, w_bits: torch.Tensor, *, isa: str = "auto") -> torch.Tensor:
    """Spikes times +-1 weights from packed operands: s_bits [..., W] (bit 1 = spike), w_bits [N, W] (bit 1 = -1)
    -> int32 [..., N] = popcount(s) - 2 * popcount(s and w)."""
    rows, w_bits, lead = _gemm_operands(s_bits, w_bits, "s_bits")
    out = torch.empty((rows.shape[0], w_bits.shape[0]), dtype=torch.int32)
    native().spike_gemm(rows.numpy(), w_bits.numpy(), out.numpy(), isa)
    return out.reshape(*lead, w_bits.shape[0])


def binary_isa() -> str:
    """The path isa='auto' runs on this CPU: 'avx512', 'avx2' or 'scalar'."""
    return native().binary_isa()


def isa_supported(isa: str) -> bool:
    return native().binary_isa_supported(isa)
