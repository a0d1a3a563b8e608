"""C++ CPU launchers for the binary (XNOR/popcount) kernels: torch tensors in, torch tensors out.

Words travel as int32 (32-bit words) or int64 (64-bit words) because torch has no uint32/uint64 arithmetic; the bit
patterns are those of kernels/binary/reference.py's uint32/uint64 words. The C++ side (csrc/binary.cpp) picks the
AVX-512 VPOPCNTDQ, AVX2 or scalar path at run time; `isa` forces one ("auto", "avx512", "avx2", "scalar").
"""

import math

import torch

from accelkit._native import native
from accelkit.kernels._common.dtypes import WORD_DTYPES


def _word_bits(t: torch.Tensor, name: str) -> int:
    if t.dtype == torch.int32:
        return 32
    if t.dtype == torch.int64:
        return 64
    raise ValueError(f"{name} must hold int32 (32-bit) or int64 (64-bit) words, got {t.dtype}")


def _cpu(t: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} must be on the CPU, got device {t.device}")
    return t.detach().resolve_neg()


def binary_pack_cpu(x: torch.Tensor, word_bits: int = 32, *, isa: str = "auto") -> torch.Tensor:
    """Sign bits of x [..., K] packed along K: [..., ceil(K / word_bits)] int32 or int64 words, LSB first, a set
    bit where x is not >= 0 (negative or NaN), padding bits 0."""
    x = _cpu(x, "x")
    if word_bits not in WORD_DTYPES:
        raise ValueError(f"word_bits must be 32 or 64, got {word_bits}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (K)")
    if x.dtype not in (torch.float32, torch.float64):
        # float16 and bfloat16 convert to float32 exactly, so every sign (and NaN) survives.
        x = x.float()
    k = x.shape[-1]
    lead = x.shape[:-1]
    # A 2-D view keeps any strides (the kernel reads them); more dims flatten, copying only if they must. The row
    # count is explicit because reshape(-1, 0) is ambiguous when K = 0.
    rows = x if x.dim() == 2 else x.reshape(math.prod(lead), k)
    words = -(-k // word_bits)
    out = torch.empty((rows.shape[0], words), dtype=WORD_DTYPES[word_bits])
    native().binary_pack(rows.numpy(), out.numpy(), word_bits, isa)
    return out.reshape(*lead, words)


def _gemm_operands(a_bits: torch.Tensor, w_bits: torch.Tensor, a_name: str):
    a_bits, w_bits = _cpu(a_bits, a_name), _cpu(w_bits, "w_bits")
    if a_bits.dim() < 1:
        raise ValueError(f"{a_name} must have at least one dimension (W)")
    if w_bits.dim() != 2:
        raise ValueError(f"w_bits must be 2-D [N, W], got shape {tuple(w_bits.shape)}")
    _word_bits(a_bits, a_name)
    _word_bits(w_bits, "w_bits")
    lead = a_bits.shape[:-1]
    rows = a_bits.reshape(math.prod(lead), a_bits.shape[-1]).contiguous()
    out = torch.empty((rows.shape[0], w_bits.shape[0]), dtype=torch.int32)
    return rows, w_bits.contiguous(), out, lead


def binary_gemm_cpu(a_bits: torch.Tensor, w_bits: torch.Tensor, k: int, *, isa: str = "auto") -> torch.Tensor:
    """sign(a) @ sign(w).T from packed operands: a_bits [..., W], w_bits [N, W] (same word size), k the number of
    real elements per row -> int32 [..., N] = k - 2 * popcount(a xor w)."""
    rows, w_bits, out, lead = _gemm_operands(a_bits, w_bits, "a_bits")
    native().binary_gemm(rows.numpy(), w_bits.numpy(), int(k), out.numpy(), isa)
    return out.reshape(*lead, w_bits.shape[0])


def spike_gemm_cpu(s_bits: torch.Tensor, w_bits: torch.Tensor, *, isa: str = "auto") -> torch.Tensor:
    """Spikes times +-1 weights from packed operands: s_bits [..., W] (bit 1 = spike), w_bits [N, W] (bit 1 = -1)
    -> int32 [..., N] = popcount(s) - 2 * popcount(s and w)."""
    rows, w_bits, out, lead = _gemm_operands(s_bits, w_bits, "s_bits")
    native().spike_gemm(rows.numpy(), w_bits.numpy(), out.numpy(), isa)
    return out.reshape(*lead, w_bits.shape[0])


def binary_isa() -> str:
    """The path isa='auto' runs on this CPU: 'avx512', 'avx2' or 'scalar'."""
    return native().binary_isa()


def isa_supported(isa: str) -> bool:
    return native().binary_isa_supported(isa)
