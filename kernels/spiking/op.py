"""Multi-step spiking neurons (IF, LIF, PLIF) and QSD multi-level spikes as torch.library ops.

One op, `accelkit::spiking_neuron`, runs all three neurons over x [T, N] (the public functions flatten the trailing
dims): CPU tensors go to the C++ kernels (csrc/spiking.cpp, kernels/spiking/cpu.py), CUDA tensors to the Triton
kernels (triton_kernels.py) or, with backend="cuda", to the CUDA C kernels through CuPy (cuda.py). Its backward is a
second op, `accelkit::spiking_neuron_backward`, so torch.compile traces both. Semantics are SpikingJelly's
(reference.py; README.md has the derivation). float16/bfloat16 run the membrane in float32.

Every public function checks its arguments before anything runs: TypeError for a wrong Python type, ValueError
naming the argument for a wrong dtype, rank, device or value.
"""

import math
import numbers

import numpy as np
import torch
from torch import Tensor

from accelkit.kernels._common.checks import (
    check_bool,
    check_real,
    check_result_size,
    check_same_device,
    check_tensor,
)
from accelkit.kernels._common.dtypes import FLOAT_DTYPES
from accelkit.kernels.spiking import energy
from accelkit.kernels.spiking.reference import DEFAULT_ALPHA, SURROGATES

BACKENDS = ("auto", "cpu", "triton", "cuda")
_DEVICE_BACKENDS = {"cpu": ("cpu",), "cuda": ("triton", "cuda"), "meta": ("cpu", "triton", "cuda")}


def _resolve(device: torch.device, backend: str) -> str:
    if backend == "auto":
        return "cpu" if device.type == "cpu" else "triton"
    return backend


def _kernel_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _decay_value(decay: float, w: Tensor | None) -> float:
    """The CPU kernels take the decay as a number: PLIF's sigmoid(w), rounded once from float64."""
    return decay if w is None else float(torch.sigmoid(w.detach().double()).reshape(()))


@torch.library.custom_op("accelkit::spiking_neuron", mutates_args=())
def _neuron_op(
    x: Tensor,
    v_init: Tensor | None,
    w: Tensor | None,
    decay: float,
    decay_input: bool,
    v_threshold: float,
    v_reset: float | None,
    surrogate: str,
    alpha: float,
    detach_reset: bool,
    store_v_seq: bool,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """x [T, N] -> (spikes [T, N], v_seq [T, N] or v_last [N], h_seq for the backward or an empty tensor).

    surrogate, alpha and detach_reset only shape the backward; they are here so the autograd context sees them."""
    kdtype = _kernel_dtype(x.dtype)
    xk = x.to(kdtype).contiguous()
    vk = None if v_init is None else v_init.to(kdtype).contiguous()
    backend = _resolve(x.device, backend)
    if backend == "cpu":
        from accelkit.kernels.spiking.cpu import neuron_forward_cpu

        d = _decay_value(decay, w)
        spikes, v_seq, v_last, _ = neuron_forward_cpu(
            xk, vk, decay=d, decay_input=decay_input, v_threshold=v_threshold, v_reset=v_reset, store_v_seq=store_v_seq
        )
        h_seq = x.new_empty(0, dtype=kdtype)
    else:
        if backend == "triton":
            from accelkit.kernels.spiking.triton_kernels import neuron_forward_triton as forward
        else:
            from accelkit.kernels.spiking.cuda import neuron_forward_cuda as forward
        decay_t = _decay_tensor(decay, w, x.device)
        spikes, v_seq, v_last, h_seq = forward(
            xk, vk, decay_t, decay_input=decay_input, v_threshold=v_threshold, v_reset=v_reset, store_v_seq=store_v_seq
        )
    v = v_seq if store_v_seq else v_last
    return spikes.to(x.dtype), v.to(x.dtype), h_seq


def _decay_tensor(decay: float, w: Tensor | None, device: torch.device) -> Tensor:
    """The GPU kernels read the decay from memory, so PLIF's sigmoid(w) never syncs with the host."""
    if w is None:
        return torch.full((1,), decay, dtype=torch.float32, device=device)
    return torch.sigmoid(w.detach().float()).reshape(1)


@_neuron_op.register_fake
def _(x, v_init, w, decay, decay_input, v_threshold, v_reset, surrogate, alpha, detach_reset, store_v_seq, backend):
    kdtype = _kernel_dtype(x.dtype)
    v = torch.empty_like(x) if store_v_seq else x.new_empty(x.shape[1])
    saves_h = _resolve(x.device, backend) != "cpu"
    return torch.empty_like(x), v, x.new_empty(x.shape if saves_h else (0,), dtype=kdtype)


@torch.library.custom_op("accelkit::spiking_neuron_backward", mutates_args=())
def _neuron_bwd_op(
    x: Tensor,
    v_init: Tensor | None,
    w: Tensor | None,
    h_seq: Tensor,
    grad_spikes: Tensor | None,
    grad_v: Tensor | None,
    decay: float,
    decay_input: bool,
    v_threshold: float,
    v_reset: float | None,
    surrogate: str,
    alpha: float,
    detach_reset: bool,
    want_decay: bool,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """(grad_x [T, N], grad_v_init [N], d loss / d decay as a float64 [1] tensor)."""
    kdtype = _kernel_dtype(x.dtype)
    t, n = x.shape

    def k(tensor: Tensor | None) -> Tensor | None:
        return None if tensor is None else tensor.to(kdtype).contiguous()

    gv_seq = k(grad_v) if grad_v is not None and grad_v.dim() == 2 else None
    gv_last = k(grad_v) if grad_v is not None and grad_v.dim() == 1 else None
    backend = _resolve(x.device, backend)
    opts = dict(decay_input=decay_input, v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate, alpha=alpha)
    if backend == "cpu":
        from accelkit.kernels.spiking.cpu import neuron_backward_cpu

        gx, gv0, gd = neuron_backward_cpu(
            k(x),
            k(v_init),
            k(grad_spikes),
            gv_seq,
            gv_last,
            want_decay=want_decay,
            decay=_decay_value(decay, w),
            detach_reset=detach_reset,
            **opts,
        )
        g_decay = torch.tensor([gd], dtype=torch.float64)
    else:
        if backend == "triton":
            from accelkit.kernels.spiking.triton_kernels import neuron_backward_triton as backward
        else:
            from accelkit.kernels.spiking.cuda import neuron_backward_cuda as backward
        gx, gv0, g_decay = backward(
            k(x),
            h_seq,
            k(v_init),
            k(grad_spikes),
            gv_seq,
            gv_last,
            _decay_tensor(decay, w, x.device),
            want_decay=want_decay,
            detach_reset=detach_reset,
            **opts,
        )
    return gx.to(x.dtype), gv0.to(x.dtype), g_decay.to(torch.float64)


@_neuron_bwd_op.register_fake
def _(x, v_init, w, h_seq, grad_spikes, grad_v, *args):
    return torch.empty_like(x), x.new_empty(x.shape[1]), x.new_empty(1, dtype=torch.float64)


def _neuron_setup(ctx, inputs, output) -> None:
    x, v_init, w, decay, decay_input, v_threshold, v_reset, surrogate, alpha, detach_reset, _, backend = inputs
    ctx.save_for_backward(x, v_init, w, output[2])
    ctx.opts = (decay, decay_input, v_threshold, v_reset, surrogate, alpha, detach_reset, backend)
    # Unused outputs (v, h_seq) then arrive as None instead of zero tensors the size of the input.
    ctx.set_materialize_grads(False)


def _neuron_backward(ctx, grad_spikes, grad_v, grad_h):
    x, v_init, w, h_seq = ctx.saved_tensors
    decay, decay_input, v_threshold, v_reset, surrogate, alpha, detach_reset, backend = ctx.opts
    want_decay = w is not None and ctx.needs_input_grad[2]
    gx, gv0, g_decay = _neuron_bwd_op(
        x,
        v_init,
        w,
        h_seq,
        grad_spikes,
        grad_v,
        decay,
        decay_input,
        v_threshold,
        v_reset,
        surrogate,
        alpha,
        detach_reset,
        want_decay,
        backend,
    )
    grad_w = None
    if want_decay:
        k = torch.sigmoid(w.detach().double())
        grad_w = (g_decay.reshape(()) * k * (1.0 - k)).to(w.dtype).reshape(w.shape)
    grad_v_init = gv0.reshape(v_init.shape) if v_init is not None else None
    return gx, grad_v_init, grad_w, *([None] * 9)


_neuron_op.register_autograd(_neuron_backward, setup_context=_neuron_setup)


def _record_updates(kind: str, x: Tensor) -> None:
    """Energy accounting: one membrane update per neuron and step; LIF/PLIF multiply by the decay (a MAC), IF only
    adds its input (an AC). The synaptic operations the spikes cause downstream are counted by the layer that
    consumes them (README.md)."""
    updates = x.numel()
    energy.record(kind, energy.SynapticOps(acs=updates) if kind == "if_neuron" else energy.SynapticOps(macs=updates))


def _check_common(
    x_seq: object,
    v_init: object,
    v_threshold: object,
    v_reset: object,
    surrogate: object,
    alpha: object,
    detach_reset: object,
    return_v: object,
    backend: object,
) -> tuple[float, float | None, str, float, str]:
    check_tensor("x_seq", x_seq, FLOAT_DTYPES)
    if x_seq.dim() < 1:
        raise ValueError(f"x_seq must have a leading T axis ([T, ...]), got shape {tuple(x_seq.shape)}")
    if v_init is not None:
        check_tensor("v_init", v_init, FLOAT_DTYPES)
        if tuple(v_init.shape) != tuple(x_seq.shape[1:]):
            raise ValueError(
                f"v_init must have shape {tuple(x_seq.shape[1:])} (x_seq without T), got {tuple(v_init.shape)}"
            )
        check_same_device(("x_seq", x_seq), ("v_init", v_init))
    v_threshold = check_real("v_threshold", v_threshold)
    if v_reset is not None:
        v_reset = check_real("v_reset", v_reset)
        if v_threshold <= v_reset:
            raise ValueError(f"v_threshold must be > v_reset, got v_threshold={v_threshold}, v_reset={v_reset}")
    if not isinstance(surrogate, str):
        raise TypeError(f"surrogate must be a str, one of {SURROGATES}, got {type(surrogate).__name__}")
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    alpha = DEFAULT_ALPHA[surrogate] if alpha is None else check_real("alpha", alpha)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    check_bool("detach_reset", detach_reset)
    check_bool("return_v", return_v)
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, one of {BACKENDS}, got {type(backend).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    allowed = _DEVICE_BACKENDS.get(x_seq.device.type)
    if allowed is None:
        raise ValueError(f"x_seq is on {x_seq.device}; the spiking ops run on cpu and cuda tensors")
    if backend != "auto" and backend not in allowed:
        raise ValueError(f"backend={backend!r} does not run {x_seq.device.type} tensors (x_seq); use one of {allowed}")
    check_result_size("x_seq", tuple(x_seq.shape), x_seq.dtype, x_seq.device)
    return v_threshold, v_reset, surrogate, alpha, backend


def _run(
    kind,
    x_seq,
    v_init,
    w,
    decay,
    decay_input,
    v_threshold,
    v_reset,
    surrogate,
    alpha,
    detach_reset,
    return_v,
    backend,
    *,
    last_v: bool = False,
):
    t = x_seq.shape[0]
    n = math.prod(x_seq.shape[1:])
    x2 = x_seq.reshape(t, n)
    v2 = None if v_init is None else v_init.reshape(n)
    spikes, v, _ = _neuron_op(
        x2, v2, w, decay, decay_input, v_threshold, v_reset, surrogate, alpha, detach_reset, return_v, backend
    )
    if energy.is_counting():
        _record_updates(kind, x2)
    spikes = spikes.reshape(x_seq.shape)
    if last_v:
        v_seq = v.reshape(x_seq.shape) if return_v else None
        if not return_v:
            last = v.reshape(x_seq.shape[1:])
        elif t:
            last = v_seq[-1]
        else:
            # No step: the membrane is still the initial one.
            last = (
                v_init if v_init is not None else x_seq.new_full(x_seq.shape[1:], 0.0 if v_reset is None else v_reset)
            )
        return spikes, last, v_seq
    return (spikes, v.reshape(x_seq.shape)) if return_v else spikes


def lif(
    x_seq: Tensor,
    v_init: Tensor | None = None,
    *,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    detach_reset: bool = False,
    return_v: bool = False,
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Multi-step leaky integrate-and-fire neuron, SpikingJelly's `LIFNode(step_mode='m')`.

    x_seq [T, *N] float (fp64/fp32/fp16/bf16; the membrane runs in fp32 or fp64); v_init [*N] or None (start at
    v_reset, 0 for the soft reset v_reset=None). H[t] = V[t-1] + (X[t] - (V[t-1] - v_reset)) / tau (decay_input) or
    V[t-1] - (V[t-1] - v_reset) / tau + X[t]; S[t] = H[t] >= v_threshold; V[t] = v_reset where S fired (hard
    reset) or H - v_threshold S (soft). Returns spikes [T, *N] in x_seq's dtype, or (spikes, v_seq) with
    return_v=True, v_seq [T, *N] the membrane after each reset. Gradients through the surrogate ("sigmoid" alpha 4,
    "atan" alpha 2, "triangle" alpha 1 = SpikingJelly's PiecewiseQuadratic; alpha=None is that default) for x_seq
    and v_init; detach_reset drops the reset's path. tau > 1.
    """
    v_threshold, v_reset, surrogate, alpha, backend = _check_common(
        x_seq, v_init, v_threshold, v_reset, surrogate, alpha, detach_reset, return_v, backend
    )
    tau = check_real("tau", tau)
    if tau <= 1.0:
        raise ValueError(f"tau must be > 1, got {tau}")
    check_bool("decay_input", decay_input)
    return _run(
        "lif",
        x_seq,
        v_init,
        None,
        1.0 / tau,
        decay_input,
        v_threshold,
        v_reset,
        surrogate,
        alpha,
        detach_reset,
        return_v,
        backend,
    )


def if_neuron(
    x_seq: Tensor,
    v_init: Tensor | None = None,
    *,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    detach_reset: bool = False,
    return_v: bool = False,
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Multi-step integrate-and-fire neuron, SpikingJelly's `IFNode(step_mode='m')`: H[t] = V[t-1] + X[t], then
    fire and reset as `lif`. x_seq [T, *N]; returns spikes [T, *N] or (spikes, v_seq) with return_v=True."""
    v_threshold, v_reset, surrogate, alpha, backend = _check_common(
        x_seq, v_init, v_threshold, v_reset, surrogate, alpha, detach_reset, return_v, backend
    )
    return _run(
        "if_neuron",
        x_seq,
        v_init,
        None,
        0.0,
        False,
        v_threshold,
        v_reset,
        surrogate,
        alpha,
        detach_reset,
        return_v,
        backend,
    )


def plif(
    x_seq: Tensor,
    w: Tensor,
    v_init: Tensor | None = None,
    *,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    detach_reset: bool = False,
    return_v: bool = False,
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Multi-step parametric LIF, SpikingJelly's `ParametricLIFNode(step_mode='m')`: `lif` with 1/tau replaced by the
    learnable decay k = sigmoid(w) (w a one-element tensor; SpikingJelly initialises w = -log(init_tau - 1)).
    x_seq [T, *N]; returns spikes [T, *N] or (spikes, v_seq); gradients for x_seq, v_init and w."""
    v_threshold, v_reset, surrogate, alpha, backend = _check_common(
        x_seq, v_init, v_threshold, v_reset, surrogate, alpha, detach_reset, return_v, backend
    )
    check_tensor("w", w, FLOAT_DTYPES)
    if w.numel() != 1:
        raise ValueError(f"w must have one element (the decay parameter), got shape {tuple(w.shape)}")
    check_same_device(("x_seq", x_seq), ("w", w))
    check_bool("decay_input", decay_input)
    return _run(
        "plif",
        x_seq,
        v_init,
        w,
        0.0,
        decay_input,
        v_threshold,
        v_reset,
        surrogate,
        alpha,
        detach_reset,
        return_v,
        backend,
    )


def neuron_states(
    kind: str,
    x_seq: Tensor,
    v_init: Tensor | None,
    w: Tensor | None = None,
    *,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    detach_reset: bool = False,
    store_v_seq: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor | None]:
    """For the stateful modules (accelkit.nn): (spikes [T, *N], last membrane [*N], v_seq [T, *N] or None), with
    gradients through all three; the last membrane costs no [T, *N] buffer when store_v_seq is False.
    kind: "lif", "if" or "plif" (w required)."""
    v_threshold, v_reset, surrogate, alpha, backend = _check_common(
        x_seq, v_init, v_threshold, v_reset, surrogate, alpha, detach_reset, store_v_seq, backend
    )
    check_bool("decay_input", decay_input)
    if kind == "lif":
        tau = check_real("tau", tau)
        if tau <= 1.0:
            raise ValueError(f"tau must be > 1, got {tau}")
        args = ("lif", None, 1.0 / tau, decay_input)
    elif kind == "if":
        args = ("if_neuron", None, 0.0, False)
    else:
        check_tensor("w", w, FLOAT_DTYPES)
        if w.numel() != 1:
            raise ValueError(f"w must have one element (the decay parameter), got shape {tuple(w.shape)}")
        check_same_device(("x_seq", x_seq), ("w", w))
        args = ("plif", w, 0.0, decay_input)
    name, w, decay, decay_input = args
    return _run(
        name,
        x_seq,
        v_init,
        w,
        decay,
        decay_input,
        v_threshold,
        v_reset,
        surrogate,
        alpha,
        detach_reset,
        store_v_seq,
        backend,
        last_v=True,
    )


@torch.library.custom_op("accelkit::multispike", mutates_args=())
def _multispike_op(x: Tensor, levels: int) -> Tensor:
    return torch.floor(torch.clamp(x, 0, levels) + 0.5)


@_multispike_op.register_fake
def _(x: Tensor, levels: int) -> Tensor:
    return torch.empty_like(x)


def _multispike_setup(ctx, inputs, output) -> None:
    x, levels = inputs
    ctx.save_for_backward(x)
    ctx.levels = levels


def _multispike_backward(ctx, grad: Tensor):
    (x,) = ctx.saved_tensors
    return grad * ((x > 0) & (x < ctx.levels)).to(grad.dtype), None


_multispike_op.register_autograd(_multispike_backward, setup_context=_multispike_setup)


def multispike(x: Tensor, *, levels: int = 4) -> Tensor:
    """QSD-Transformer's integer multi-level spike: floor(clamp(x, 0, levels) + 0.5), the integers 0..levels in
    x's dtype (any shape), with the straight-through gradient 1[0 < x < levels]. QSD's `Multispike(x)` is
    `multispike(4 * x) / 4` and `Multispike_att(x)` is `multispike(4 * x) / 2`."""
    check_tensor("x", x, FLOAT_DTYPES)
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, numbers.Integral):
        raise TypeError(f"levels must be an int, got {type(levels).__name__}")
    levels = int(levels)
    if not 1 <= levels <= 2**24:
        raise ValueError(f"levels must be in [1, 2^24] (exact in float32), got {levels}")
    check_result_size("x", tuple(x.shape), x.dtype, x.device)
    return _multispike_op(x, levels)


__all__ = ["BACKENDS", "if_neuron", "lif", "multispike", "plif"]
