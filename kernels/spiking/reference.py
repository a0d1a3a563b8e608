"""NumPy float64 oracle for the multi-step spiking neurons (IF, LIF, PLIF) and QSD multi-level spikes.

Semantics are SpikingJelly's (../shared/reference/spiking_binary.md section 3.1; README.md has the derivation).
x is [T, N] (any trailing shape flattened), v_init [N]; with `d` the decay (1/tau for LIF, k = sigmoid(w) for PLIF)
and `vr` = v_reset (0 in the charge for a soft reset):

    IF:                       H[t] = V[t-1] + X[t]
    LIF/PLIF decay_input:     H[t] = V[t-1] + d (X[t] - (V[t-1] - vr))
    LIF/PLIF not decay_input: H[t] = V[t-1] - d (V[t-1] - vr) + X[t]
    S[t] = 1 if H[t] >= v_threshold else 0
    hard reset: V[t] = H[t] (1 - S[t]) + v_reset S[t];  soft reset (v_reset None): V[t] = H[t] - v_threshold S[t]

The backward is the surrogate BPTT of section 3.2: S's derivative is the surrogate sg(H - v_threshold), and
detach_reset drops the path through S in the reset. `smooth=True` replaces the Heaviside by the surrogate's
primitive in the forward, which makes the forward differentiable, so a finite difference checks the backward.
"""

import math

import numpy as np

SURROGATES = ("sigmoid", "atan", "triangle")
# SpikingJelly's defaults: Sigmoid(alpha=4), ATan(alpha=2), PiecewiseQuadratic(alpha=1) (whose gradient is the
# triangle alpha - alpha^2 |x| on |x| <= 1/alpha, the piecewise-linear surrogate).
DEFAULT_ALPHA = {"sigmoid": 4.0, "atan": 2.0, "triangle": 1.0}
KINDS = ("if", "lif")


def surrogate_grad(x: np.ndarray, surrogate: str, alpha: float) -> np.ndarray:
    """d/dx of the surrogate's primitive at x = H - v_threshold."""
    x = np.asarray(x, dtype=np.float64)
    if surrogate == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-alpha * x))
        return alpha * s * (1.0 - s)
    if surrogate == "atan":
        return alpha / (2.0 * (1.0 + (math.pi / 2.0 * alpha * x) ** 2))
    if surrogate == "triangle":
        return np.where(np.abs(x) <= 1.0 / alpha, alpha - alpha * alpha * np.abs(x), 0.0)
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")


def surrogate_primitive(x: np.ndarray, surrogate: str, alpha: float) -> np.ndarray:
    """The smooth step whose derivative is surrogate_grad (used only by smooth=True)."""
    x = np.asarray(x, dtype=np.float64)
    if surrogate == "sigmoid":
        return 1.0 / (1.0 + np.exp(-alpha * x))
    if surrogate == "atan":
        return np.arctan(math.pi / 2.0 * alpha * x) / math.pi + 0.5
    if surrogate == "triangle":
        inner = -0.5 * alpha * alpha * x * np.abs(x) + alpha * x + 0.5
        return np.where(x < -1.0 / alpha, 0.0, np.where(x > 1.0 / alpha, 1.0, inner))
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")


def _charge(v: np.ndarray, x: np.ndarray, kind: str, decay: float, decay_input: bool, vr: float) -> np.ndarray:
    if kind == "if":
        return v + x
    if decay_input:
        return v + decay * (x - (v - vr))
    return v - decay * (v - vr) + x


def neuron_forward(
    x: np.ndarray,
    v_init: np.ndarray | None = None,
    *,
    kind: str = "lif",
    decay: float = 0.5,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    smooth: bool = False,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [T, *N] -> (spikes, v_seq, h_seq), each [T, *N] float64. v_init [*N] or None (v_reset, 0 when soft)."""
    x = np.asarray(x, dtype=np.float64)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if x.ndim < 1:
        raise ValueError("x must have a T axis")
    alpha = DEFAULT_ALPHA[surrogate] if alpha is None else alpha
    vr = 0.0 if v_reset is None else float(v_reset)
    v = np.full(x.shape[1:], vr) if v_init is None else np.asarray(v_init, dtype=np.float64).copy()
    spikes, v_seq, h_seq = (np.empty_like(x) for _ in range(3))
    for t in range(x.shape[0]):
        h = _charge(v, x[t], kind, decay, decay_input, vr)
        s = surrogate_primitive(h - v_threshold, surrogate, alpha) if smooth else (h >= v_threshold).astype(float)
        v = h - v_threshold * s if v_reset is None else h * (1.0 - s) + v_reset * s
        spikes[t], v_seq[t], h_seq[t] = s, v, h
    return spikes, v_seq, h_seq


def neuron_backward(
    x: np.ndarray,
    v_init: np.ndarray | None,
    grad_spikes: np.ndarray,
    grad_v_seq: np.ndarray | None = None,
    *,
    kind: str = "lif",
    decay: float = 0.5,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    detach_reset: bool = False,
    smooth: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """BPTT: returns (grad_x [T, *N], grad_v_init [*N], grad_decay) for the loss with gradients grad_spikes and
    grad_v_seq (None: 0) on the outputs of neuron_forward. grad_decay is d loss / d decay (0 for IF)."""
    x = np.asarray(x, dtype=np.float64)
    alpha = DEFAULT_ALPHA[surrogate] if alpha is None else alpha
    opts = dict(kind=kind, decay=decay, decay_input=decay_input, v_threshold=v_threshold, v_reset=v_reset)
    spikes, v_seq, h_seq = neuron_forward(x, v_init, smooth=smooth, surrogate=surrogate, alpha=alpha, **opts)
    vr = 0.0 if v_reset is None else float(v_reset)
    v_prev = np.concatenate([np.full((1, *x.shape[1:]), vr) if v_init is None else np.asarray(v_init)[None], v_seq])
    gv_ext = np.zeros_like(x) if grad_v_seq is None else np.asarray(grad_v_seq, dtype=np.float64)
    gs = np.asarray(grad_spikes, dtype=np.float64)
    d_h_d_v = 1.0 if kind == "if" else 1.0 - decay
    d_h_d_x = decay if (kind == "lif" and decay_input) else 1.0
    keep = 0.0 if detach_reset else 1.0
    grad_x = np.empty_like(x)
    grad_decay = 0.0
    g_h = np.zeros(x.shape[1:])
    for t in range(x.shape[0] - 1, -1, -1):
        h, s = h_seq[t], spikes[t]
        sg = surrogate_grad(h - v_threshold, surrogate, alpha)
        if v_reset is None:
            dv_dh = 1.0 - v_threshold * sg * keep
        else:
            dv_dh = (1.0 - s) + (v_reset - h) * sg * keep
        g_h = (gv_ext[t] + g_h * d_h_d_v) * dv_dh + gs[t] * sg
        grad_x[t] = g_h * d_h_d_x
        if kind == "lif":
            d_h_d_decay = (x[t] - (v_prev[t] - vr)) if decay_input else (vr - v_prev[t])
            grad_decay += float(np.sum(g_h * d_h_d_decay))
    return grad_x, g_h * d_h_d_v, grad_decay


def multispike(x: np.ndarray, levels: int = 4) -> np.ndarray:
    """QSD's integer multi-level spike: floor(clamp(x, 0, levels) + 0.5), the integers 0..levels, as float64.

    QSD-Transformer's `multispike` (classification/models.py); its modules call it on 4 x and divide by 4 (or 2)."""
    return np.floor(np.clip(np.asarray(x, dtype=np.float64), 0.0, levels) + 0.5)


def multispike_grad(x: np.ndarray, grad: np.ndarray, levels: int = 4) -> np.ndarray:
    """The straight-through gradient of multispike: grad where 0 < x < levels, else 0."""
    x = np.asarray(x, dtype=np.float64)
    return np.where((x > 0) & (x < levels), np.asarray(grad, dtype=np.float64), 0.0)
