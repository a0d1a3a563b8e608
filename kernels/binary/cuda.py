"""CuPy launchers for the CUDA C binary kernels in csrc/cuda/binary_gemm.cu (the ops' backend="cuda").

Inputs are torch CUDA tensors or CuPy arrays; the result has the type of the first input. CuPy is imported on first
use and compiles the .cu file once with NVRTC, with -I on the headers that accelkit._sources resolves (the checkout's
csrc/ or the wheel's accelkit/_csrc/). Words are int32 (32-bit) or int64 (64-bit) bit patterns, as in
kernels/binary/cpu.py; the kernels read every row as 32-bit units.

Ordering: for torch inputs every CuPy call that allocates, copies or launches (ascontiguousarray, astype, empty,
the kernels) runs inside `cupy.cuda.ExternalStream(torch's current stream)`, so it is ordered after the torch ops
that produced the inputs and before the torch ops that read the result.
"""

import contextlib
import functools
import math

from accelkit._sources import cuda_source, include_dir
from accelkit.kernels._common.words import ceil_div, check_k, check_word_bits, num_words, word_bits_of

_TILE = 64  # outputs per block side; must match kTile in binary_gemm.cu
_PACK_THREADS = 256  # 8 warps, one 32-bit unit per warp per iteration
_GEMM_THREADS = 256  # 16 x 16 threads, each 4 x 4 outputs
_GRID_Y_MAX = 65535  # CUDA's limit on gridDim.y
_INT32_MAX = 2**31 - 1  # m and n reach the kernels as int


def _cupy():
    from accelkit._optional import require

    return require("cupy", feature="the CUDA C binary kernels (backend='cuda')")


@functools.cache
def _module():
    cupy = _cupy()
    source = cuda_source("binary_gemm.cu")
    return cupy.RawModule(code=source.read_text(), options=(f"-I{include_dir()}", "--std=c++17"))


def _kernel(name: str):
    return _module().get_function(name)


def _torch_stream(x, name: str):
    """torch's current stream on x's device when x is a torch CUDA tensor; None for a CuPy array."""
    cupy = _cupy()
    if isinstance(x, cupy.ndarray):
        return None
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch CUDA tensor or a cupy array, got {type(x).__name__}")
    if not x.is_cuda:
        raise ValueError(f"{name} must be on a CUDA device, got {x.device}")
    return torch.cuda.current_stream(x.device)


def _on_stream(torch_stream):
    """The stream context every CuPy call of a launch runs in: torch's stream for torch inputs, else CuPy's own."""
    cupy = _cupy()
    if torch_stream is None:
        return contextlib.nullcontext()
    return cupy.cuda.ExternalStream(torch_stream.cuda_stream, torch_stream.device.index)


def _as_cupy(x, name: str):
    """x as a CuPy array without a copy (torch tensors through DLPack/CUDA array interface)."""
    cupy = _cupy()
    if isinstance(x, cupy.ndarray):
        return x
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch CUDA tensor or a cupy array, got {type(x).__name__}")
    if not x.is_cuda:
        raise ValueError(f"{name} must be on a CUDA device, got {x.device}")
    return cupy.asarray(x.detach())


def _result(out, is_torch: bool):
    if is_torch:
        import torch

        return torch.from_dlpack(out)
    return out


def _is_half_torch(x) -> bool:
    if type(x).__module__.split(".")[0] != "torch":
        return False
    import torch

    return x.dtype in (torch.float16, torch.bfloat16)


def binary_pack_cuda(x, word_bits: int = 32):
    """Sign bits of x [..., K] packed along K into [..., ceil(K / word_bits)] int32 or int64 words. float16 and
    bfloat16 convert to float32 first, which keeps every sign and NaN."""
    cupy = _cupy()
    word_bits = check_word_bits(word_bits)
    torch_stream = _torch_stream(x, "x")
    with _on_stream(torch_stream):
        xc = _as_cupy(x.float() if _is_half_torch(x) else x, "x")
        if xc.dtype == cupy.float16:
            xc = xc.astype(cupy.float32)
        if xc.dtype not in (cupy.float32, cupy.float64):
            raise ValueError(f"x must be floating point, got {xc.dtype}")
        if xc.ndim < 1:
            raise ValueError(f"x must have at least 1 dims, got shape {xc.shape}")
        k = xc.shape[-1]
        lead = xc.shape[:-1]
        rows = xc if xc.ndim == 2 else xc.reshape(math.prod(lead), k)
        words = num_words(k, word_bits)
        units = words * (word_bits // 32)
        out = cupy.empty((rows.shape[0], units), dtype=cupy.uint32)
        total = rows.shape[0] * units
        if total:
            name = "accelkit_binary_pack_f32" if xc.dtype == cupy.float32 else "accelkit_binary_pack_f64"
            row_stride, col_stride = (s // rows.itemsize for s in rows.strides)
            # The kernel loops over units with a grid stride, so the grid can stay under CUDA's 65535 cap.
            blocks = min(ceil_div(total, _PACK_THREADS // 32), 65535)
            args = (rows, cupy.int64(rows.shape[0]), cupy.int64(k), cupy.int64(row_stride), cupy.int64(col_stride))
            _kernel(name)((blocks,), (_PACK_THREADS,), (*args, out, cupy.int64(units)))
        words_dtype = cupy.int32 if word_bits == 32 else cupy.int64
        return _result(out.view(words_dtype).reshape(*lead, words), torch_stream is not None)


def _gemm(a_bits, w_bits, name: str, a_name: str, k):
    cupy = _cupy()
    torch_stream = _torch_stream(a_bits, a_name)
    with _on_stream(torch_stream):
        a = _as_cupy(a_bits, a_name)
        w = _as_cupy(w_bits, "w_bits")
        bits = word_bits_of(a.dtype, a_name)
        if word_bits_of(w.dtype, "w_bits") != bits:
            raise ValueError(f"w_bits dtype {w.dtype} and {a_name} dtype {a.dtype} differ in word size")
        if a.ndim < 1:
            raise ValueError(f"{a_name} must have at least 1 dims, got shape {a.shape}")
        if w.ndim != 2 or a.shape[-1] != w.shape[1]:
            raise ValueError(f"w_bits must be [N, W] with W = {a_name}.shape[-1], got {w.shape} and {a.shape}")
        words = w.shape[1]
        if k is not None:
            k = check_k(k, words, bits)
        lead = a.shape[:-1]
        m, n = math.prod(lead), w.shape[0]
        grid = (ceil_div(n, _TILE), ceil_div(m, _TILE))
        if grid[1] > _GRID_Y_MAX or n > _INT32_MAX:
            raise ValueError(f"{a_name} has {m} rows; this launcher handles at most {_GRID_Y_MAX * _TILE}")
        rows = cupy.ascontiguousarray(a.reshape(m, words))
        w = cupy.ascontiguousarray(w)
        out = cupy.empty((m, n), dtype=cupy.int32)
        if m and n:
            args = (rows, w, out, cupy.int32(m), cupy.int32(n), cupy.int64(words * bits // 32))
            extra = () if k is None else (cupy.int32(k),)
            _kernel(name)(grid, (_GEMM_THREADS,), (*args, *extra))
        return _result(out.reshape(*lead, n), torch_stream is not None)


def binary_gemm_cuda(a_bits, w_bits, k: int):
    """k - 2 * popcount(a xor w): a_bits [..., W], w_bits [N, W] -> int32 [..., N]. Padding bits past k are
    ignored."""
    return _gemm(a_bits, w_bits, "accelkit_binary_gemm", "a_bits", k)


def spike_gemm_cuda(s_bits, w_bits):
    """popcount(s) - 2 * popcount(s and w): s_bits [..., W] (bit 1 = spike), w_bits [N, W] -> int32 [..., N]."""
    return _gemm(s_bits, w_bits, "accelkit_spike_gemm", "s_bits", None)
