"""Shared inputs of the spiking-neuron tests: values on a dyadic grid so that the fp32 membrane arithmetic is exact
(spikes can then be compared exactly with the float64 oracle; no compare sits on a rounding edge), and the
float64-oracle gradients of the same loss the tests backpropagate."""

import math

import numpy as np
import torch

from accelkit import ops
from accelkit.kernels.spiking import reference as ref

# Decays whose fp32 arithmetic on the grid stays exact: LIF tau 2 and 4; PLIF w with sigmoid(w) = 1/2, 1/4, 3/4.
TAUS = (2.0, 4.0)
PLIF_WS = (0.0, -math.log(3.0), math.log(3.0))
V_RESETS = (0.0, -0.5, None)


def grid(shape, seed: int, *, lo: int = -12, hi: int = 28, dtype=torch.float32, layout: str = "contiguous"):
    """Multiples of 1/16 in [lo/16, hi/16): exact in every float dtype (bfloat16 has 8 significant bits)."""
    rng = np.random.default_rng(seed)
    values = torch.from_numpy(np.asarray(rng.integers(lo, hi, size=shape) / 16.0)).to(dtype)
    if layout == "contiguous" or len(shape) == 0:
        return values
    holder = torch.full((*shape[:-1], 2 * shape[-1]), float("nan"), dtype=dtype)
    view = holder[..., ::2]
    view.copy_(values)
    return view


def run_ours(kind, x, v_init, param, flags, *, return_v, backend="auto"):
    common = dict(return_v=return_v, backend=backend, **flags)
    if kind == "lif":
        return ops.lif(x, v_init, tau=param, **common)
    if kind == "if":
        common.pop("decay_input")
        return ops.if_neuron(x, v_init, **common)
    return ops.plif(x, param, v_init, **common)


def oracle(kind, x, v_init, param, flags, grad_s, grad_v):
    """(spikes, v_seq, grad_x, grad_v_init, grad_param) in float64; grad_param is d/dw for PLIF, else None."""
    x64 = x.detach().double().reshape(x.shape[0], -1).numpy()
    v64 = None if v_init is None else v_init.detach().double().reshape(-1).numpy()
    if kind == "lif":
        decay = 1.0 / param
    elif kind == "plif":
        decay = 1.0 / (1.0 + math.exp(-float(param.detach().double())))
        if x.dtype != torch.float64:
            # The kernels run the membrane in float32 with the float32 decay: w = -ln 3 rounded to float32 gives
            # sigmoid(w) = 0.25 + 3.5e-9 in float64 but exactly 0.25 in float32, and a membrane exactly on the
            # threshold then fires in the op and not in a float64 oracle with the unrounded decay.
            decay = float(np.float32(decay))
    else:
        decay = 0.0
    opts = dict(
        kind="if" if kind == "if" else "lif",
        decay=decay,
        decay_input=flags["decay_input"] if kind != "if" else True,
        v_threshold=flags["v_threshold"],
        v_reset=flags["v_reset"],
    )
    s, v, _ = ref.neuron_forward(x64, v64, **opts)
    gs = grad_s.detach().double().reshape(s.shape).numpy()
    gv = None if grad_v is None else grad_v.detach().double().reshape(s.shape).numpy()
    gx, gv0, gd = ref.neuron_backward(
        x64, v64, gs, gv, surrogate=flags["surrogate"], alpha=flags["alpha"], detach_reset=flags["detach_reset"], **opts
    )
    g_param = gd * decay * (1.0 - decay) if kind == "plif" else None
    shape = tuple(x.shape)
    return s.reshape(shape), v.reshape(shape), gx.reshape(shape), gv0.reshape(shape[1:]), g_param
