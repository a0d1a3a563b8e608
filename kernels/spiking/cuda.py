"""CuPy launchers for the CUDA C spiking-neuron kernels in csrc/cuda/spiking.cu (the ops' backend="cuda").

Inputs are torch CUDA tensors, [T, N] (or [N]) float32/float64 and C-contiguous (the op makes them so); results are
torch tensors. CuPy is imported on first use and compiles the .cu file once with NVRTC, with -I on the headers that
accelkit._sources resolves. Every CuPy call runs inside `cupy.cuda.ExternalStream(torch's current stream)`, so it is
ordered after the torch ops that produced the inputs and before those that read the results (as
kernels/binary/cuda.py). Same contract as triton_kernels.neuron_forward_triton / neuron_backward_triton.
"""

import functools

import torch

from accelkit._sources import cuda_source, include_dir
from accelkit.kernels.spiking.reference import SURROGATES

_THREADS = 256  # kThreads in spiking.cu


def _cupy():
    from accelkit._optional import require

    return require("cupy", feature="the CUDA C spiking kernels (backend='cuda')")


@functools.cache
def _module():
    cupy = _cupy()
    source = cuda_source("spiking.cu")
    return cupy.RawModule(code=source.read_text(), options=(f"-I{include_dir()}", "--std=c++17"))


def _kernel(name: str, dtype: torch.dtype):
    return _module().get_function(f"accelkit_spiking_{name}_{'f64' if dtype == torch.float64 else 'f32'}")


def _stream(x: torch.Tensor):
    cupy = _cupy()
    if not x.is_cuda:
        raise ValueError(f"x must be on a CUDA device, got {x.device}")
    stream = torch.cuda.current_stream(x.device)
    return cupy.cuda.ExternalStream(stream.cuda_stream, stream.device.index)


def _ptr(t: torch.Tensor | None, fallback: torch.Tensor):
    cupy = _cupy()
    return cupy.asarray((fallback if t is None else t).detach())


def _params(decay: torch.Tensor, v_threshold: float, v_reset: float | None, alpha: float, dtype: torch.dtype):
    rest = torch.tensor([v_threshold, 0.0 if v_reset is None else v_reset, alpha], dtype=dtype)
    return torch.cat([decay.to(dtype).reshape(1), rest.to(decay.device, non_blocking=True)]).contiguous()


def neuron_forward_cuda(x, v_init, decay, *, decay_input, v_threshold, v_reset, store_v_seq=False, store_h_seq=True):
    """x [T, N] -> (spikes, v_seq or None, v_last [N], h_seq or None)."""
    cupy = _cupy()
    t, n = x.shape
    spikes = torch.empty_like(x)
    v_seq = torch.empty_like(x) if store_v_seq else None
    h_seq = torch.empty_like(x) if store_h_seq else None
    v_last = x.new_empty(n)
    if n == 0:
        return spikes, v_seq, v_last, h_seq
    params = _params(decay, v_threshold, v_reset, 1.0, x.dtype)
    with _stream(x):
        args = [_ptr(a, params) for a in (x, v_init, params, spikes, v_seq, v_last, h_seq)]
        flags = (v_init is not None, decay_input, v_reset is None, store_v_seq, store_h_seq)
        blocks = (n + _THREADS - 1) // _THREADS
        _kernel("fwd", x.dtype)(
            (blocks,), (_THREADS,), (*args, cupy.int64(t), cupy.int64(n), *(cupy.int32(int(f)) for f in flags))
        )
    return spikes, v_seq, v_last, h_seq


def neuron_backward_cuda(
    x, h_seq, v_init, grad_spikes, grad_v_seq, grad_v_last, decay, *, want_decay, decay_input, v_threshold, v_reset,
    surrogate, alpha, detach_reset,
):  # fmt: skip
    """BPTT from the forward's h_seq: (grad_x [T, N], grad_v_init [N], d loss / d decay as a float64 [1] tensor)."""
    cupy = _cupy()
    t, n = x.shape
    grad_x = torch.empty_like(x)
    grad_v_init = x.new_empty(n)
    blocks = (n + _THREADS - 1) // _THREADS
    partials = torch.zeros(max(blocks, 1), dtype=torch.float64, device=x.device)
    if n == 0:
        return grad_x, grad_v_init, partials.sum().reshape(1)
    params = _params(decay, v_threshold, v_reset, alpha, x.dtype)
    with _stream(x):
        tensors = (x, h_seq, v_init, grad_spikes, grad_v_seq, grad_v_last, params, grad_x, grad_v_init, partials)
        args = [_ptr(a, params) for a in tensors]
        flags = (
            v_init is not None, grad_spikes is not None, grad_v_seq is not None, grad_v_last is not None, want_decay,
            decay_input, v_reset is None, SURROGATES.index(surrogate), detach_reset,
        )  # fmt: skip
        _kernel("bwd", x.dtype)(
            (blocks,), (_THREADS,), (*args, cupy.int64(t), cupy.int64(n), *(cupy.int32(int(f)) for f in flags))
        )
    return grad_x, grad_v_init, partials.sum().reshape(1)
