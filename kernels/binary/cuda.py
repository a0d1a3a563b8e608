"""CuPy launchers for the CUDA C binary kernels in csrc/cuda/binary_gemm.cu.

Inputs are torch CUDA tensors or CuPy arrays; the result has the type of the first input. CuPy is imported on first
use and compiles the .cu file once with NVRTC, with -I csrc/include for accelkit/binary.h. Words are int32 (32-bit)
or int64 (64-bit) bit patterns, as in kernels/binary/cpu.py; the kernels read every row as 32-bit units.
"""

import functools
import math
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
_SOURCE = _ROOT / "csrc" / "cuda" / "binary_gemm.cu"
_INCLUDE = _ROOT / "csrc" / "include"
_TILE = 64  # outputs per block side; must match kTile in binary_gemm.cu
_PACK_THREADS = 256  # 8 warps, one 32-bit unit per warp per iteration
_GEMM_THREADS = 256  # 16 x 16 threads, each 4 x 4 outputs


@functools.cache
def _module():
    import cupy

    return cupy.RawModule(code=_SOURCE.read_text(), options=(f"-I{_INCLUDE}", "--std=c++17"))


def _kernel(name: str):
    return _module().get_function(name)


def _as_cupy(x, name: str):
    """(cupy array, is_torch, torch stream or None) without copying."""
    import cupy

    if isinstance(x, cupy.ndarray):
        return x, False, None
    try:
        import torch
    except ImportError:  # pragma: no cover - cupy-only installs
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        if not x.is_cuda:
            raise ValueError(f"{name} must be on a CUDA device, got {x.device}")
        return cupy.asarray(x.detach()), True, torch.cuda.current_stream(x.device)
    raise ValueError(f"{name} must be a torch CUDA tensor or a cupy array, got {type(x).__name__}")


def _stream(torch_stream):
    import cupy

    # Run on torch's current stream so the kernel orders after the ops that produced a torch input.
    if torch_stream is None:
        return cupy.cuda.get_current_stream()
    return cupy.cuda.ExternalStream(torch_stream.cuda_stream)


def _result(out, is_torch: bool):
    if is_torch:
        import torch

        return torch.from_dlpack(out)
    return out


def _word_bits(x, name: str) -> int:
    bits = {4: 32, 8: 64}.get(x.dtype.itemsize) if x.dtype.kind in "iu" else None
    if bits is None:
        raise ValueError(f"{name} must hold 32- or 64-bit integer words, got {x.dtype}")
    return bits


def binary_pack_cuda(x, word_bits: int = 32):
    """Sign bits of x [..., K] packed along K into [..., ceil(K / word_bits)] int32 or int64 words. float16 and
    bfloat16 convert to float32 first, which keeps every sign and NaN."""
    import cupy

    if word_bits not in (32, 64):
        raise ValueError(f"word_bits must be 32 or 64, got {word_bits}")
    xc, is_torch, torch_stream = _as_cupy(x.float() if _is_half_torch(x) else x, "x")
    if xc.dtype == cupy.float16:
        xc = xc.astype(cupy.float32)
    if xc.dtype not in (cupy.float32, cupy.float64) or xc.ndim < 1:
        raise ValueError(f"x must be floating point with at least one dimension, got {xc.dtype} {xc.shape}")
    k = xc.shape[-1]
    lead = xc.shape[:-1]
    rows = xc if xc.ndim == 2 else xc.reshape(math.prod(lead), k)
    words = -(-k // word_bits)
    units = words * (word_bits // 32)
    out = cupy.empty((rows.shape[0], units), dtype=cupy.uint32)
    total = rows.shape[0] * units
    if total:
        name = "accelkit_binary_pack_f32" if xc.dtype == cupy.float32 else "accelkit_binary_pack_f64"
        row_stride, col_stride = (s // rows.itemsize for s in rows.strides)
        # The kernel loops over units with a grid stride, so the grid can stay under CUDA's 65535 cap on old GPUs.
        blocks = min(-(-total // (_PACK_THREADS // 32)), 65535)
        args = (rows, cupy.int64(rows.shape[0]), cupy.int64(k), cupy.int64(row_stride), cupy.int64(col_stride))
        with _stream(torch_stream):
            _kernel(name)((blocks,), (_PACK_THREADS,), (*args, out, cupy.int64(units)))
    words_dtype = cupy.int32 if word_bits == 32 else cupy.int64
    return _result(out.view(words_dtype).reshape(*lead, words), is_torch)


def _is_half_torch(x) -> bool:
    if type(x).__module__.split(".")[0] != "torch":
        return False
    import torch

    return x.dtype in (torch.float16, torch.bfloat16)


def _gemm(a_bits, w_bits, name: str, a_name: str, k: int | None):
    import cupy

    a, is_torch, torch_stream = _as_cupy(a_bits, a_name)
    w, _, _ = _as_cupy(w_bits, "w_bits")
    bits = _word_bits(a, a_name)
    if _word_bits(w, "w_bits") != bits:
        raise ValueError(f"w_bits dtype {w.dtype} and {a_name} dtype {a.dtype} differ in word size")
    if w.ndim != 2 or a.ndim < 1 or a.shape[-1] != w.shape[1]:
        raise ValueError(f"w_bits must be [N, W] with W = {a_name}.shape[-1], got {w.shape} and {a.shape}")
    words = w.shape[1]
    if k is not None and not (0 <= k <= words * bits and (words == 0 or k > (words - 1) * bits)):
        raise ValueError(f"k = {k} does not fit {words} words of {bits} bits")
    lead = a.shape[:-1]
    rows = cupy.ascontiguousarray(a.reshape(math.prod(lead), words))
    w = cupy.ascontiguousarray(w)
    m, n = rows.shape[0], w.shape[0]
    grid = (-(-n // _TILE), -(-m // _TILE))
    if grid[1] > 65535:
        raise ValueError(f"{a_name} has {m} rows; this launcher handles at most {65535 * _TILE}")
    out = cupy.empty((m, n), dtype=cupy.int32)
    if m and n:
        args = (rows, w, out, cupy.int32(m), cupy.int32(n), cupy.int64(words * bits // 32))
        extra = () if k is None else (cupy.int32(k),)
        with _stream(torch_stream):
            _kernel(name)(grid, (_GEMM_THREADS,), (*args, *extra))
    return _result(out.reshape(*lead, n), is_torch)


def binary_gemm_cuda(a_bits, w_bits, k: int):
    """k - 2 * popcount(a xor w): a_bits [..., W], w_bits [N, W] -> int32 [..., N]."""
    return _gemm(a_bits, w_bits, "accelkit_binary_gemm", "a_bits", int(k))


def spike_gemm_cuda(s_bits, w_bits):
    """popcount(s) - 2 * popcount(s and w): s_bits [..., W] (bit 1 = spike), w_bits [N, W] -> int32 [..., N]."""
    return _gemm(s_bits, w_bits, "accelkit_spike_gemm", "s_bits", None)
