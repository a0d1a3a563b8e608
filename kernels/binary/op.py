"""Binary (XNOR/popcount) ops as torch.library ops: one name per op, dispatched by device.

CPU runs the C++ kernels of csrc/binary.cpp, CUDA the Triton kernels of triton_kernels.py. Every op has a fake
(meta) implementation, so torch.compile traces through it, and the float ops have autograd through the
straight-through estimator (STE): d sign(x)/dx = 1 where |x| <= 1, else 0 (Courbariaux et al. 2016, BinaryNet).
"""

import torch
from torch import Tensor

from accelkit.kernels._common.dtypes import FLOAT_DTYPES, WORD_DTYPES

# 64-bit words halve the xor/popcount count per MAC on CPUs; the Triton path uses the same layout.
_MATMUL_WORD_BITS = 64
SCALES = (None, "tensor", "channel")


def _pack(x: Tensor, word_bits: int) -> Tensor:
    if x.is_cuda:
        from accelkit.kernels.binary.triton_kernels import binary_pack_fwd

        return binary_pack_fwd(x, word_bits)
    from accelkit.kernels.binary.cpu import binary_pack_cpu

    return binary_pack_cpu(x, word_bits)


def _gemm(a_bits: Tensor, w_bits: Tensor, k: int) -> Tensor:
    if a_bits.is_cuda:
        from accelkit.kernels.binary.triton_kernels import binary_gemm_fwd

        return binary_gemm_fwd(a_bits, w_bits, k)
    from accelkit.kernels.binary.cpu import binary_gemm_cpu

    return binary_gemm_cpu(a_bits, w_bits, k)


def _sign(x: Tensor) -> Tensor:
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def _ste(x: Tensor) -> Tensor:
    return (x.abs() <= 1).to(x.dtype)


def _alpha(x: Tensor, scale: str | None) -> Tensor | None:
    if scale is None:
        return None
    dims = tuple(range(1, x.dim())) if scale == "channel" else tuple(range(x.dim()))
    return x.abs().mean(dim=dims, keepdim=True)


@torch.library.custom_op("accelkit::binarize", mutates_args=())
def _binarize_op(x: Tensor, scale: str | None) -> Tensor:
    alpha = _alpha(x, scale)
    return _sign(x) if alpha is None else alpha * _sign(x)


@_binarize_op.register_fake
def _(x: Tensor, scale: str | None) -> Tensor:
    return torch.empty_like(x)


def _binarize_setup(ctx, inputs, output) -> None:
    x, scale = inputs
    ctx.save_for_backward(x)
    ctx.scale = scale


def _binarize_backward(ctx, grad: Tensor):
    (x,) = ctx.saved_tensors
    alpha = _alpha(x, ctx.scale)
    if alpha is None:
        return grad * _ste(x), None
    s = _sign(x)
    # alpha = mean|x| over the n elements it averages, so d alpha/dx_j = sign(x_j) / n.
    dims = tuple(range(1, x.dim())) if ctx.scale == "channel" else tuple(range(x.dim()))
    n = x.numel() // max(alpha.numel(), 1)
    through_alpha = s * (grad * s).sum(dim=dims, keepdim=True) / max(n, 1)
    return alpha * grad * _ste(x) + through_alpha, None


_binarize_op.register_autograd(_binarize_backward, setup_context=_binarize_setup)


@torch.library.custom_op("accelkit::pack_bits", mutates_args=())
def _pack_op(x: Tensor, word_bits: int) -> Tensor:
    return _pack(x, word_bits)


@_pack_op.register_fake
def _(x: Tensor, word_bits: int) -> Tensor:
    words = -(-x.shape[-1] // word_bits)
    return x.new_empty((*x.shape[:-1], words), dtype=WORD_DTYPES[word_bits])


@torch.library.custom_op("accelkit::packed_binary_matmul", mutates_args=())
def _packed_matmul_op(a_bits: Tensor, w_bits: Tensor, k: int) -> Tensor:
    return _gemm(a_bits, w_bits, k)


@_packed_matmul_op.register_fake
def _(a_bits: Tensor, w_bits: Tensor, k: int) -> Tensor:
    return a_bits.new_empty((*a_bits.shape[:-1], w_bits.shape[0]), dtype=torch.int32)


@torch.library.custom_op("accelkit::binary_matmul", mutates_args=())
def _binary_matmul_op(a: Tensor, w: Tensor) -> Tensor:
    k = a.shape[-1]
    if k == 0:
        return a.new_zeros((*a.shape[:-1], w.shape[0]))
    a_bits = _pack(a, _MATMUL_WORD_BITS)
    w_bits = _pack(w, _MATMUL_WORD_BITS)
    return _gemm(a_bits, w_bits, k).to(a.dtype)


@_binary_matmul_op.register_fake
def _(a: Tensor, w: Tensor) -> Tensor:
    return a.new_empty((*a.shape[:-1], w.shape[0]))


def _binary_matmul_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _binary_matmul_backward(ctx, grad: Tensor):
    a, w = ctx.saved_tensors
    grad_a = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_a = (grad @ _sign(w)) * _ste(a)
    if ctx.needs_input_grad[1]:
        rows_g = grad.reshape(-1, grad.shape[-1])
        rows_a = _sign(a).reshape(-1, a.shape[-1])
        grad_w = (rows_g.T @ rows_a) * _ste(w)
    return grad_a, grad_w


_binary_matmul_op.register_autograd(_binary_matmul_backward, setup_context=_binary_matmul_setup)


def _check_tensor(name: str, x: object, dtypes: tuple[torch.dtype, ...], *, min_dim: int = 1) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in dtypes:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise ValueError(f"{name} must have dtype in ({allowed}), got {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dims, got shape {tuple(x.shape)}")
    return x


def binarize(x: Tensor, *, scale: str | None = None) -> Tensor:
    """alpha * sign(x) with sign(0) = +1 and a straight-through gradient (passes where |x| <= 1).

    x: [*] floating. scale: None (alpha = 1), "tensor" (alpha = mean |x|) or "channel" (XNOR-Net's per output
    channel alpha = mean |x| over every dim but the first; x must be [N, ...]). Returns x's shape and dtype.
    """
    _check_tensor("x", x, FLOAT_DTYPES, min_dim=2 if scale == "channel" else 0)
    if scale not in SCALES:
        raise ValueError(f"scale must be None, 'tensor' or 'channel', got {scale!r}")
    return _binarize_op(x, scale)


def pack_bits(x: Tensor, *, word_bits: int = 32) -> Tensor:
    """Pack sign bits along the last dim: [..., K] floating -> [..., ceil(K / word_bits)] int32 or int64 words.

    Bit j of word w is element w * word_bits + j (LSB first); 1 means negative (sign -1); padding bits are 0.
    """
    _check_tensor("x", x, FLOAT_DTYPES)
    if word_bits not in WORD_DTYPES:
        raise ValueError(f"word_bits must be 32 or 64, got {word_bits!r}")
    return _pack_op(x, word_bits)


def packed_binary_matmul(a_bits: Tensor, w_bits: Tensor, k: int) -> Tensor:
    """XNOR-popcount GEMM on packed signs: a_bits [..., W], w_bits [N, W] -> int32 [..., N].

    Both operands come from `pack_bits` with the same word size; k is the unpacked length K, so
    out = k - 2 * popcount(a xor w) summed over the W words.
    """
    _check_tensor("a_bits", a_bits, tuple(WORD_DTYPES.values()))
    _check_tensor("w_bits", w_bits, (a_bits.dtype,), min_dim=2)
    if w_bits.dim() != 2:
        raise ValueError(f"w_bits must be [N, W], got shape {tuple(w_bits.shape)}")
    if a_bits.shape[-1] != w_bits.shape[-1]:
        raise ValueError(f"a_bits has {a_bits.shape[-1]} words per row but w_bits has {w_bits.shape[-1]}")
    if a_bits.device != w_bits.device:
        raise ValueError(f"a_bits is on {a_bits.device} but w_bits is on {w_bits.device}")
    word = 32 if a_bits.dtype == torch.int32 else 64
    words = a_bits.shape[-1]
    if not isinstance(k, int) or isinstance(k, bool) or not (word * (words - 1) < k <= word * words or k == words == 0):
        raise ValueError(f"k={k!r} does not fit {words} words of {word} bits")
    return _packed_matmul_op(a_bits, w_bits, k)


def binary_matmul(a: Tensor, w: Tensor) -> Tensor:
    """sign(a) @ sign(w).T, computed with XNOR and popcount on packed bits; STE gradients for a and w.

    a: [..., K] floating, w: [N, K] (nn.Linear layout) of the same dtype and device. Returns [..., N] in a's
    dtype; the forward is exact while K fits the dtype's integer range (2^24 in float32, 2^8 in bfloat16).
    """
    _check_tensor("a", a, FLOAT_DTYPES)
    _check_tensor("w", w, (a.dtype,), min_dim=2)
    if w.dim() != 2:
        raise ValueError(f"w must be [N, K], got shape {tuple(w.shape)}")
    if a.shape[-1] != w.shape[-1]:
        raise ValueError(f"a has K={a.shape[-1]} but w has K={w.shape[-1]}")
    if a.device != w.device:
        raise ValueError(f"a is on {a.device} but w is on {w.device}")
    return _binary_matmul_op(a, w)
