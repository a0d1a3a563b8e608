"""Triton kernels for the multi-step spiking neurons: forward and surrogate-gradient BPTT over x [T, N].

One program owns BLOCK neurons and walks T sequentially (the recursion is over time; neurons are independent), the
layout of SpikingJelly's CuPy and Triton kernels. The forward stores h_seq (H before the reset) for the backward,
which recomputes S and the surrogate from it and runs the reverse recursion; PLIF's decay gradient is one partial
sum per program, added up by torch afterwards (deterministic, no atomics). Math and flags as
csrc/include/accelkit/spiking.h; kernels/spiking/reference.py is the oracle and README.md the derivation.

The neuron parameters (decay, v_threshold, v_reset, alpha) arrive as a 4-element tensor of the compute dtype, so a
float64 call keeps float64 thresholds and PLIF's decay sigmoid(w) never leaves the device.
"""

import torch
import triton
import triton.language as tl

from accelkit.kernels._common.aot import AotSpec
from accelkit.kernels.spiking.reference import SURROGATES

BLOCK = 256
NUM_WARPS = 4
NUM_STAGES = 1


@triton.jit
def _charge(v, x, d, vr, DECAY_INPUT: tl.constexpr):
    if DECAY_INPUT:
        h = v + d * (x - (v - vr))
    else:
        h = v - d * (v - vr) + x
    return h


@triton.jit
def _reset(h, fired, vth, vr, SOFT: tl.constexpr):
    if SOFT:
        v = h - vth * fired.to(h.dtype)
    else:
        v = tl.where(fired, vr, h)
    return v


@triton.jit
def _surrogate(x, alpha, SURROGATE: tl.constexpr):
    """d/dx of the surrogate at x = H - v_threshold: 0 sigmoid, 1 atan, 2 triangle (reference.SURROGATES)."""
    if SURROGATE == 0:
        sig = 1.0 / (1.0 + tl.exp(-alpha * x))
        g = alpha * sig * (1.0 - sig)
    elif SURROGATE == 1:
        u = 1.5707963267948966 * alpha * x
        g = alpha / (2.0 * (1.0 + u * u))
    else:
        g = tl.maximum(alpha - alpha * alpha * tl.abs(x), 0.0)
    return g


@triton.jit
def spiking_fwd_kernel(
    x_ptr,
    v_init_ptr,
    params_ptr,
    spikes_ptr,
    v_seq_ptr,
    v_last_ptr,
    h_seq_ptr,
    n_steps,
    n,
    HAS_V_INIT: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    SOFT: tl.constexpr,
    STORE_V: tl.constexpr,
    STORE_H: tl.constexpr,
    BLOCK: tl.constexpr,
):
    i_n = tl.program_id(0)
    o_n = i_n * BLOCK + tl.arange(0, BLOCK)
    m_n = o_n < n
    d = tl.load(params_ptr)
    vth = tl.load(params_ptr + 1)
    vr = tl.load(params_ptr + 2)
    if HAS_V_INIT:
        v = tl.load(v_init_ptr + o_n, mask=m_n, other=0.0)
    else:
        v = tl.zeros([BLOCK], dtype=x_ptr.dtype.element_ty) + vr
    n64 = n.to(tl.int64)
    for t in range(n_steps):
        p = t * n64 + o_n
        x = tl.load(x_ptr + p, mask=m_n, other=0.0)
        h = _charge(v, x, d, vr, DECAY_INPUT)
        fired = h >= vth
        v = _reset(h, fired, vth, vr, SOFT)
        tl.store(spikes_ptr + p, fired.to(h.dtype), mask=m_n)
        if STORE_V:
            tl.store(v_seq_ptr + p, v, mask=m_n)
        if STORE_H:
            tl.store(h_seq_ptr + p, h, mask=m_n)
    tl.store(v_last_ptr + o_n, v, mask=m_n)


@triton.jit
def spiking_bwd_kernel(
    x_ptr,
    h_seq_ptr,
    v_init_ptr,
    grad_s_ptr,
    grad_v_ptr,
    grad_v_last_ptr,
    params_ptr,
    grad_x_ptr,
    grad_v_init_ptr,
    grad_decay_ptr,
    n_steps,
    n,
    HAS_V_INIT: tl.constexpr,
    HAS_GRAD_S: tl.constexpr,
    HAS_GRAD_V: tl.constexpr,
    HAS_GRAD_V_LAST: tl.constexpr,
    WANT_DECAY: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    SOFT: tl.constexpr,
    SURROGATE: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    BLOCK: tl.constexpr,
):
    i_n = tl.program_id(0)
    o_n = i_n * BLOCK + tl.arange(0, BLOCK)
    m_n = o_n < n
    d = tl.load(params_ptr)
    vth = tl.load(params_ptr + 1)
    vr = tl.load(params_ptr + 2)
    alpha = tl.load(params_ptr + 3)
    zero = tl.zeros([BLOCK], dtype=h_seq_ptr.dtype.element_ty)
    if HAS_GRAD_V_LAST:
        carry = tl.load(grad_v_last_ptr + o_n, mask=m_n, other=0.0)
    else:
        carry = zero
    if HAS_V_INIT:
        v0 = tl.load(v_init_ptr + o_n, mask=m_n, other=0.0)
    else:
        v0 = zero + vr
    if DECAY_INPUT:
        dhdx = d
    else:
        dhdx = 1.0
    acc = zero
    n64 = n.to(tl.int64)
    for i in range(n_steps):
        t = n_steps - 1 - i
        p = t * n64 + o_n
        h = tl.load(h_seq_ptr + p, mask=m_n, other=0.0)
        fired = h >= vth
        sg = _surrogate(h - vth, alpha, SURROGATE)
        if DETACH_RESET:
            sg_reset = zero
        else:
            sg_reset = sg
        if SOFT:
            dvdh = 1.0 - vth * sg_reset
        else:
            dvdh = (1.0 - fired.to(h.dtype)) + (vr - h) * sg_reset
        g = carry
        if HAS_GRAD_V:
            g += tl.load(grad_v_ptr + p, mask=m_n, other=0.0)
        gh = g * dvdh
        if HAS_GRAD_S:
            gh += tl.load(grad_s_ptr + p, mask=m_n, other=0.0) * sg
        tl.store(grad_x_ptr + p, gh * dhdx, mask=m_n)
        carry = gh * (1.0 - d)
        if WANT_DECAY:
            # V[t-1]: the reset of H[t-1], or v_init at t = 0 (no storage needed).
            m_prev = m_n & ((o_n * 0 + t) > 0)
            h_prev = tl.load(h_seq_ptr + p - n64, mask=m_prev, other=0.0)
            v_prev = tl.where(m_prev, _reset(h_prev, h_prev >= vth, vth, vr, SOFT), v0)
            x = tl.load(x_ptr + p, mask=m_n, other=0.0)
            if DECAY_INPUT:
                acc += gh * (x - (v_prev - vr))
            else:
                acc += gh * (vr - v_prev)
    tl.store(grad_v_init_ptr + o_n, carry, mask=m_n)
    if WANT_DECAY:
        tl.store(grad_decay_ptr + i_n, tl.sum(tl.where(m_n, acc, 0.0), axis=0))


def _params(decay: torch.Tensor, v_threshold: float, v_reset: float | None, alpha: float, dtype: torch.dtype):
    """[decay, v_threshold, v_reset (0 when soft), alpha] in the compute dtype, on decay's device, without a sync."""
    rest = torch.tensor([v_threshold, 0.0 if v_reset is None else v_reset, alpha], dtype=dtype)
    return torch.cat([decay.to(dtype).reshape(1), rest.to(decay.device, non_blocking=True)])


def neuron_forward_triton(
    x: torch.Tensor,
    v_init: torch.Tensor | None,
    decay: torch.Tensor,
    *,
    decay_input: bool,
    v_threshold: float,
    v_reset: float | None,
    store_v_seq: bool = False,
    store_h_seq: bool = True,
):
    """x [T, N] float32/float64, contiguous; decay a 1-element tensor -> (spikes, v_seq or None, v_last [N], h_seq
    [T, N] (for the backward) or None)."""
    t, n = x.shape
    spikes = torch.empty_like(x)
    v_seq = torch.empty_like(x) if store_v_seq else None
    h_seq = torch.empty_like(x) if store_h_seq else None
    v_last = x.new_empty(n)
    if n == 0:
        return spikes, v_seq, v_last, h_seq
    params = _params(decay, v_threshold, v_reset, 1.0, x.dtype)
    dummy = params
    grid = (triton.cdiv(n, BLOCK),)
    spiking_fwd_kernel[grid](
        x, v_init if v_init is not None else dummy, params, spikes,
        v_seq if v_seq is not None else dummy, v_last, h_seq if h_seq is not None else dummy, t, n,
        HAS_V_INIT=v_init is not None, DECAY_INPUT=decay_input, SOFT=v_reset is None, STORE_V=store_v_seq,
        STORE_H=store_h_seq, BLOCK=BLOCK, num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    return spikes, v_seq, v_last, h_seq


def neuron_backward_triton(
    x: torch.Tensor,
    h_seq: torch.Tensor,
    v_init: torch.Tensor | None,
    grad_spikes: torch.Tensor | None,
    grad_v_seq: torch.Tensor | None,
    grad_v_last: torch.Tensor | None,
    decay: torch.Tensor,
    *,
    want_decay: bool,
    decay_input: bool,
    v_threshold: float,
    v_reset: float | None,
    surrogate: str,
    alpha: float,
    detach_reset: bool,
):
    """BPTT from the forward's h_seq: (grad_x [T, N], grad_v_init [N], d loss / d decay as a float64 [1] tensor)."""
    t, n = x.shape
    grad_x = torch.empty_like(x)
    grad_v_init = x.new_empty(n)
    programs = triton.cdiv(n, BLOCK)
    partials = torch.zeros(max(programs, 1), dtype=x.dtype, device=x.device)
    if n == 0:
        return grad_x, grad_v_init, partials.double().sum().reshape(1)
    params = _params(decay, v_threshold, v_reset, alpha, x.dtype)
    dummy = params
    spiking_bwd_kernel[(programs,)](
        x, h_seq, v_init if v_init is not None else dummy, grad_spikes if grad_spikes is not None else dummy,
        grad_v_seq if grad_v_seq is not None else dummy, grad_v_last if grad_v_last is not None else dummy, params,
        grad_x, grad_v_init, partials, t, n,
        HAS_V_INIT=v_init is not None, HAS_GRAD_S=grad_spikes is not None, HAS_GRAD_V=grad_v_seq is not None,
        HAS_GRAD_V_LAST=grad_v_last is not None, WANT_DECAY=want_decay, DECAY_INPUT=decay_input,
        SOFT=v_reset is None, SURROGATE=SURROGATES.index(surrogate), DETACH_RESET=detach_reset, BLOCK=BLOCK,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )  # fmt: skip
    return grad_x, grad_v_init, partials.double().sum().reshape(1)


def _signature(kernel, dtype: str, constexprs: dict) -> dict[str, str]:
    """Pointers of the compute dtype, the two sizes i32, constexprs as given."""
    return {
        p: "constexpr" if p in constexprs else ("i32" if p in ("n_steps", "n") else f"*{dtype}")
        for p in kernel.arg_names
    }


def _fwd_spec(dtype: str, decay_input: bool, soft: bool, store_v: bool) -> AotSpec:
    constexprs = dict(HAS_V_INIT=False, DECAY_INPUT=decay_input, SOFT=soft, STORE_V=store_v, STORE_H=True, BLOCK=BLOCK)
    name = f"spiking_fwd_kernel[{dtype},di={int(decay_input)},soft={int(soft)},v={int(store_v)}]"
    return AotSpec(spiking_fwd_kernel, _signature(spiking_fwd_kernel, dtype, constexprs), constexprs,
                   num_warps=NUM_WARPS, num_stages=NUM_STAGES, name=name)  # fmt: skip


def _bwd_spec(dtype: str, surrogate: int, soft: bool, want_decay: bool, detach: bool) -> AotSpec:
    constexprs = dict(HAS_V_INIT=False, HAS_GRAD_S=True, HAS_GRAD_V=False, HAS_GRAD_V_LAST=True,
                      WANT_DECAY=want_decay, DECAY_INPUT=True, SOFT=soft, SURROGATE=surrogate,
                      DETACH_RESET=detach, BLOCK=BLOCK)  # fmt: skip
    name = (
        f"spiking_bwd_kernel[{dtype},{SURROGATES[surrogate]},soft={int(soft)},dw={int(want_decay)},det={int(detach)}]"
    )
    return AotSpec(spiking_bwd_kernel, _signature(spiking_bwd_kernel, dtype, constexprs), constexprs,
                   num_warps=NUM_WARPS, num_stages=NUM_STAGES, name=name)  # fmt: skip


# The configurations training runs most, fp32: SpikingJelly's defaults (hard reset, Sigmoid), SpikeGPT's ATan, SDT's
# detach_reset, the soft reset, v_seq stored, and PLIF's decay gradient.
AOT_SPECS = [
    _fwd_spec("fp32", True, False, False),
    _fwd_spec("fp32", False, True, False),
    _fwd_spec("fp32", True, False, True),
    _bwd_spec("fp32", 0, False, False, False),
    _bwd_spec("fp32", 1, True, False, False),
    _bwd_spec("fp32", 2, False, False, True),
    _bwd_spec("fp32", 0, False, True, False),
]
