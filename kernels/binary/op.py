"""Binary (XNOR/popcount) ops as torch.library ops: one name per op, dispatched by device and `backend`.

CPU runs the C++ kernels of csrc/binary.cpp; CUDA runs the Triton kernels of triton_kernels.py, or with
backend="cuda" the CUDA C kernels of csrc/cuda/binary_gemm.cu through CuPy (kernels/binary/cuda.py). Every op has
a fake (meta) implementation, so torch.compile traces through it, and the float ops have autograd through the
straight-through estimator (STE): d sign(x)/dx = 1 where |x| <= 1, else 0 (Courbariaux et al. 2016, BinaryNet).

Every public function checks its arguments before anything runs: TypeError when an argument has the wrong Python
type, ValueError naming the argument for a wrong dtype, rank, device, size or value (kernels/_common/words.py).
"""

import math

import torch
from torch import Tensor

from accelkit.kernels._common.checks import check_result_size, check_same_device, check_tensor
from accelkit.kernels._common.dtypes import FLOAT_DTYPES, WORD_DTYPES
from accelkit.kernels._common.words import K_MAX, check_k, check_word_bits, num_words, word_bits_of

# 64-bit words halve the xor/popcount count per MAC on CPUs; the Triton path uses the same layout.
_MATMUL_WORD_BITS = 64
SCALES = (None, "tensor", "channel")
# "auto" picks "cpu" (C++) for CPU tensors and "triton" for CUDA tensors; "cuda" is the CUDA C kernel via CuPy.
BACKENDS = ("auto", "cpu", "triton", "cuda")
_DEVICE_BACKENDS = {"cpu": ("cpu",), "cuda": ("triton", "cuda"), "meta": ("cpu", "triton", "cuda")}


def _resolve(device: torch.device, backend: str) -> str:
    if device.type == "meta":
        return backend
    if backend == "auto":
        return "cpu" if device.type == "cpu" else "triton"
    return backend


def _pack(x: Tensor, word_bits: int, backend: str) -> Tensor:
    backend = _resolve(x.device, backend)
    if backend == "triton":
        from accelkit.kernels.binary.triton_kernels import binary_pack_fwd

        return binary_pack_fwd(x, word_bits)
    if backend == "cuda":
        from accelkit.kernels.binary.cuda import binary_pack_cuda

        return binary_pack_cuda(x, word_bits)
    from accelkit.kernels.binary.cpu import binary_pack_cpu

    return binary_pack_cpu(x, word_bits)


def _gemm(a_bits: Tensor, w_bits: Tensor, k: int, backend: str, out_dtype: torch.dtype = torch.int32) -> Tensor:
    backend = _resolve(a_bits.device, backend)
    if backend == "triton":
        from accelkit.kernels.binary.triton_kernels import binary_gemm_fwd

        return binary_gemm_fwd(a_bits, w_bits, k).to(out_dtype)
    if backend == "cuda":
        from accelkit.kernels.binary.cuda import binary_gemm_cuda

        return binary_gemm_cuda(a_bits, w_bits, k).to(out_dtype)
    from accelkit.kernels.binary.cpu import binary_gemm_cpu

    # The C++ GEMM writes int32 and float32 results itself (no second pass over the output for the cast).
    return binary_gemm_cpu(a_bits, w_bits, k, out_dtype=out_dtype)


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
def _pack_op(x: Tensor, word_bits: int, backend: str) -> Tensor:
    return _pack(x, word_bits, backend)


@_pack_op.register_fake
def _(x: Tensor, word_bits: int, backend: str) -> Tensor:
    return x.new_empty((*x.shape[:-1], num_words(x.shape[-1], word_bits)), dtype=WORD_DTYPES[word_bits])


@torch.library.custom_op("accelkit::packed_binary_matmul", mutates_args=())
def _packed_matmul_op(a_bits: Tensor, w_bits: Tensor, k: int, out_dtype: torch.dtype, backend: str) -> Tensor:
    return _gemm(a_bits, w_bits, k, backend, out_dtype)


@_packed_matmul_op.register_fake
def _(a_bits: Tensor, w_bits: Tensor, k: int, out_dtype: torch.dtype, backend: str) -> Tensor:
    return a_bits.new_empty((*a_bits.shape[:-1], w_bits.shape[0]), dtype=out_dtype)


@torch.library.custom_op("accelkit::binary_matmul", mutates_args=())
def _binary_matmul_op(a: Tensor, w: Tensor, backend: str) -> Tensor:
    k = a.shape[-1]
    if k == 0:
        return a.new_zeros((*a.shape[:-1], w.shape[0]))
    a_bits = _pack(a, _MATMUL_WORD_BITS, backend)
    w_bits = _pack(w, _MATMUL_WORD_BITS, backend)
    return _gemm(a_bits, w_bits, k, backend, a.dtype)


@_binary_matmul_op.register_fake
def _(a: Tensor, w: Tensor, backend: str) -> Tensor:
    return a.new_empty((*a.shape[:-1], w.shape[0]))


def _binary_matmul_setup(ctx, inputs, output) -> None:
    a, w, _ = inputs
    ctx.save_for_backward(a, w)


def _binary_matmul_backward(ctx, grad: Tensor):
    a, w = ctx.saved_tensors
    grad_a = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_a = (grad @ _sign(w)) * _ste(a)
    if ctx.needs_input_grad[1]:
        # Explicit row counts: reshape(-1, 0) cannot infer the -1 when K = 0 or N = 0.
        rows = math.prod(a.shape[:-1])
        rows_g = grad.reshape(rows, w.shape[0])
        rows_a = _sign(a).reshape(rows, a.shape[-1])
        grad_w = (rows_g.T @ rows_a) * _ste(w)
    return grad_a, grad_w, None


_binary_matmul_op.register_autograd(_binary_matmul_backward, setup_context=_binary_matmul_setup)


def _check_backend(backend: object, first: tuple[str, Tensor]) -> str:
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, one of {BACKENDS}, got {type(backend).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    name, x = first
    allowed = _DEVICE_BACKENDS.get(x.device.type)
    if allowed is None:
        raise ValueError(f"{name} is on {x.device}; the binary ops run on cpu and cuda tensors")
    if backend != "auto" and backend not in allowed:
        raise ValueError(f"backend={backend!r} does not run {x.device.type} tensors ({name}); use one of {allowed}")
    return backend


def _check_pack_sizes(name: str, x: Tensor, word_bits: int) -> None:
    """The packed words, and the float32 copy that packing makes of a half-precision input, must be able to exist."""
    check_result_size(name, (*x.shape[:-1], num_words(x.shape[-1], word_bits)), WORD_DTYPES[word_bits], x.device)
    if x.dtype in (torch.float16, torch.bfloat16):
        check_result_size(name, tuple(x.shape), torch.float32, x.device)


def binarize(x: Tensor, *, scale: str | None = None) -> Tensor:
    """alpha * sign(x) with sign(0) = +1 and a straight-through gradient (passes where |x| <= 1).

    x: [*] floating. scale: None (alpha = 1), "tensor" (alpha = mean |x|) or "channel" (XNOR-Net's per output
    channel alpha = mean |x| over every dim but the first; x must be [N, ...]). Returns x's shape and dtype.
    """
    if scale is not None and not isinstance(scale, str):
        raise TypeError(f"scale must be None or a str, got {type(scale).__name__}")
    if scale not in SCALES:
        raise ValueError(f"scale must be None, 'tensor' or 'channel', got {scale!r}")
    check_tensor("x", x, FLOAT_DTYPES, min_dim=2 if scale == "channel" else 0)
    check_result_size("x", tuple(x.shape), x.dtype, x.device)
    return _binarize_op(x, scale)


def pack_bits(x: Tensor, *, word_bits: int = 32, backend: str = "auto") -> Tensor:
    """Pack sign bits along the last dim: x [..., K] floating -> [..., ceil(K / word_bits)] int32 or int64 words.

    Bit j of word w is element w * word_bits + j (LSB first); 1 means negative (sign -1); padding bits are 0.
    backend: "auto", "cpu" (C++), "triton" or "cuda" (CUDA C via CuPy); the last two take CUDA tensors.
    """
    word_bits = check_word_bits(word_bits)
    check_tensor("x", x, FLOAT_DTYPES, min_dim=1)
    backend = _check_backend(backend, ("x", x))
    _check_pack_sizes("x", x, word_bits)
    return _pack_op(x, word_bits, backend)


def packed_binary_matmul(
    a_bits: Tensor,
    w_bits: Tensor,
    k: int,
    *,
    out_dtype: torch.dtype = torch.int32,
    backend: str = "auto",
) -> Tensor:
    """XNOR-popcount GEMM on packed signs: a_bits [..., W], w_bits [N, W] -> [..., N] of out_dtype (int32).

    Both operands come from `pack_bits` with the same word size; k is the unpacked length K (an int, NumPy
    integers included), so out = k - 2 * popcount(a xor w) summed over the W words. Padding bits past k are
    ignored whatever their value, so every result is in [-k, k]. Pack the weights once and reuse them: only the
    activations need packing per call. out_dtype int32 or a float dtype; on the CPU a float32 result is written
    by the GEMM itself (exact for k <= 2^24), with no second pass for the cast.
    """
    if not isinstance(out_dtype, torch.dtype):
        raise TypeError(f"out_dtype must be a torch.dtype, got {type(out_dtype).__name__}")
    if out_dtype not in (torch.int32, *FLOAT_DTYPES):
        raise ValueError(f"out_dtype must be int32 or a float dtype {FLOAT_DTYPES}, got {out_dtype}")
    check_tensor("a_bits", a_bits, tuple(WORD_DTYPES.values()), min_dim=1)
    check_tensor("w_bits", w_bits, tuple(WORD_DTYPES.values()), min_dim=2, max_dim=2)
    if w_bits.dtype != a_bits.dtype:
        raise ValueError(f"w_bits has dtype {w_bits.dtype} but a_bits has {a_bits.dtype}: pack both with one word size")
    if a_bits.shape[-1] != w_bits.shape[-1]:
        raise ValueError(f"a_bits has {a_bits.shape[-1]} words per row but w_bits has {w_bits.shape[-1]}")
    check_same_device(("a_bits", a_bits), ("w_bits", w_bits))
    k = check_k(k, a_bits.shape[-1], word_bits_of(a_bits.dtype, "a_bits"))
    backend = _check_backend(backend, ("a_bits", a_bits))
    check_result_size("a_bits, w_bits", (*a_bits.shape[:-1], w_bits.shape[0]), out_dtype, a_bits.device)
    # The kernels read contiguous rows: a strided or expanded operand is copied first.
    for name, t in (("a_bits", a_bits), ("w_bits", w_bits)):
        if not t.is_contiguous():
            check_result_size(name, tuple(t.shape), t.dtype, t.device)
    return _packed_matmul_op(a_bits, w_bits, k, out_dtype, backend)


def binary_matmul(a: Tensor, w: Tensor, *, backend: str = "auto") -> Tensor:
    """sign(a) @ sign(w).T, computed with XNOR and popcount on packed bits; STE gradients for a and w.

    a: [..., K] floating, w: [N, K] (nn.Linear layout) of the same dtype and device. Returns [..., N] in a's
    dtype; the forward is exact while K fits the dtype's integer range (2^24 in float32, 2^8 in bfloat16).
    """
    check_tensor("a", a, FLOAT_DTYPES, min_dim=1)
    check_tensor("w", w, (a.dtype,), min_dim=2, max_dim=2)
    if a.shape[-1] != w.shape[-1]:
        raise ValueError(f"a has K={a.shape[-1]} but w has K={w.shape[-1]}")
    check_same_device(("a", a), ("w", w))
    if isinstance(a.shape[-1], int) and a.shape[-1] > K_MAX:
        raise ValueError(f"a has K={a.shape[-1]}, over {K_MAX}: the dot products would not fit an int32")
    backend = _check_backend(backend, ("a", a))
    check_result_size("a, w", (*a.shape[:-1], w.shape[0]), a.dtype, a.device)
    _check_pack_sizes("a", a, _MATMUL_WORD_BITS)
    _check_pack_sizes("w", w, _MATMUL_WORD_BITS)
    return _binary_matmul_op(a, w, backend)


__all__ = ["BACKENDS", "binarize", "binary_matmul", "pack_bits", "packed_binary_matmul"]
