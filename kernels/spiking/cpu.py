"""C++ CPU launchers for the multi-step spiking neurons (csrc/spiking.cpp): torch tensors in, torch tensors out.

Every buffer is [T, N] (or [N] for membranes) and C-contiguous, float32 or float64; the op (op.py) flattens the
neurons, converts float16/bfloat16 to float32 and makes the inputs contiguous before calling these. decay is 1/tau
(LIF), sigmoid(w) (PLIF) or 0 with decay_input=False (IF); v_reset None is the soft reset. `isa` forces a path
("auto", "avx2", "scalar").
"""

import torch

from accelkit._native import native
from accelkit.kernels._common.memory import output_like
from accelkit.kernels.spiking.reference import SURROGATES


def _np(t: torch.Tensor | None):
    return None if t is None else t.detach().numpy()


def neuron_forward_cpu(
    x: torch.Tensor,
    v_init: torch.Tensor | None,
    *,
    decay: float,
    decay_input: bool,
    v_threshold: float,
    v_reset: float | None,
    store_v_seq: bool = False,
    store_h_seq: bool = False,
    threads: int = 0,
    isa: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """x [T, N] -> (spikes [T, N], v_seq [T, N] or None, v_last [N], h_seq [T, N] or None)."""
    t, n = x.shape
    spikes = output_like(x)
    v_seq = output_like(x) if store_v_seq else None
    h_seq = output_like(x) if store_h_seq else None
    v_last = x.new_empty(n)
    if v_init is None and t == 0:
        v_last.fill_(0.0 if v_reset is None else v_reset)
    args = (_np(x), _np(v_init), _np(spikes), _np(v_seq), _np(v_last), _np(h_seq))
    native().spiking_forward(*args, decay, decay_input, v_threshold, v_reset, threads, isa)
    if t == 0 and v_init is not None:
        v_last.copy_(v_init)
    return spikes, v_seq, v_last, h_seq


def neuron_backward_cpu(
    x: torch.Tensor,
    v_init: torch.Tensor | None,
    grad_spikes: torch.Tensor | None,
    grad_v_seq: torch.Tensor | None,
    grad_v_last: torch.Tensor | None,
    *,
    h_seq: torch.Tensor | None = None,
    want_decay: bool,
    decay: float,
    decay_input: bool,
    v_threshold: float,
    v_reset: float | None,
    surrogate: str,
    alpha: float,
    detach_reset: bool,
    threads: int = 0,
    isa: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """BPTT: (grad_x [T, N], grad_v_init [N], d loss / d decay). None gradients are zero."""
    grad_x = output_like(x)
    grad_v_init = x.new_empty(x.shape[1])
    grads = (_np(grad_spikes), _np(grad_v_seq), _np(grad_v_last), _np(grad_x), _np(grad_v_init))
    flags = (want_decay, decay, decay_input, v_threshold, v_reset, SURROGATES.index(surrogate), alpha, detach_reset)
    grad_decay = native().spiking_backward(_np(x), _np(h_seq), _np(v_init), *grads, *flags, threads, isa)
    return grad_x, grad_v_init, grad_decay


def spiking_isa() -> str:
    """The path isa='auto' runs on this CPU: 'avx2' or 'scalar'."""
    return native().spiking_isa()


def isa_supported(isa: str) -> bool:
    return native().spiking_isa_supported(isa)
