"""Layers built on the accelkit ops. Importing this module imports torch.

`BinaryLinear` is a drop-in for `torch.nn.Linear` whose forward is XNOR + popcount on sign bits (BinaryNet,
Courbariaux et al. 2016; XNOR-Net, Rastegari et al. 2016): swap one `nn.Linear` for `BinaryLinear.from_linear`.
`LIFNode`, `IFNode` and `ParametricLIFNode` take SpikingJelly's constructor arguments and keep the membrane between
calls until `reset()`, so `from spikingjelly.activation_based.neuron import LIFNode` becomes
`from accelkit.nn import LIFNode`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from accelkit import ops
from accelkit.kernels._common.checks import check_result_size, check_tensor
from accelkit.kernels._common.dtypes import FLOAT_DTYPES
from accelkit.kernels._common.words import as_int
from accelkit.kernels.fft_rpe import op as rpe_op
from accelkit.kernels.spiking import op as ops_spiking

__all__ = ["BinaryLinear", "IFNode", "LIFNode", "ParametricLIFNode", "RPEKernelAttention"]

# 64-bit words halve the popcounts per MAC on CPUs, as in ops.binary_matmul.
_WORD_BITS = 64
_SCALES = (None, "channel")


class BinaryLinear(nn.Module):
    """y = sign(x) @ (alpha * sign(W)).T + b: a linear layer with binary weights and, by default, binary inputs.

    x: [..., in_features] floating -> [..., out_features] in x's dtype. W is [out_features, in_features] and b
    [out_features] as in nn.Linear, so state dicts and `from_linear` carry over.

    - binarize_input=True (default): inputs and weights are both signs, as in BinaryNet and XNOR-Net, so the
      product is XNOR + popcount on packed bits (`ops.binary_matmul`). False binarizes only the weights (XNOR-Net's
      "binary-weight network"): a float matmul with alpha * sign(W), no popcount.
    - scale=None: alpha = 1 (BinaryNet). scale="channel": XNOR-Net's per output channel alpha_n = mean_k |W_nk|,
      learned through its exact gradient. XNOR-Net's input scale (beta, a mean over each input's receptive field)
      is left out, as most XNOR-Net implementations do; a following normalisation layer absorbs it.
    - Training uses the straight-through estimator: d sign(v)/dv = 1 where |v| <= 1, else 0 (ops docs). BinaryNet
      also clips the float weights to [-1, 1] after each optimizer step; that belongs to the training loop.
    - In eval mode without gradients (model.eval() under torch.no_grad() or torch.inference_mode()), the packed
      sign bits of W and alpha are computed once and reused, so each call packs only the activations. The cache
      is dropped when W changes (its in-place version counter, or a new tensor), on train() / eval(), and on
      load_state_dict().
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        scale: str | None = None,
        binarize_input: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        in_features, out_features = as_int(in_features, "in_features"), as_int(out_features, "out_features")
        if in_features < 0 or out_features < 0:
            raise ValueError(f"in_features and out_features must be >= 0, got {in_features} and {out_features}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
        if scale is not None and not isinstance(scale, str):
            raise TypeError(f"scale must be None or 'channel', got {type(scale).__name__}")
        if scale not in _SCALES:
            raise ValueError(f"scale must be None or 'channel', got {scale!r}")
        if not isinstance(binarize_input, bool):
            raise TypeError(f"binarize_input must be a bool, got {type(binarize_input).__name__}")
        if dtype is not None and dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype}")
        self.in_features, self.out_features = in_features, out_features
        self.scale, self.binarize_input = scale, binarize_input
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty((out_features, in_features), **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self._packed: tuple | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation, so a swapped layer starts from the same distribution."""
        if self.weight.numel():  # torch warns that initialising an empty tensor does nothing
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None and self.bias.numel():
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)
        self._packed = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, scale: str | None = None, binarize_input: bool = True) -> BinaryLinear:
        """A BinaryLinear with a copy of `linear`'s weight and bias (same device and dtype)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            scale=scale,
            binarize_input=binarize_input,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            layer.weight.copy_(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"scale={self.scale!r}, binarize_input={self.binarize_input}"
        )

    def train(self, mode: bool = True) -> BinaryLinear:
        self._packed = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._packed = None
        super()._load_from_state_dict(*args, **kwargs)

    def _alpha(self) -> Tensor | None:
        """XNOR-Net's alpha [out_features], differentiable in W; None without scaling."""
        if self.scale is None:
            return None
        # |W| as W * sign(W) with the sign a constant and sign(0) = +1, so d|W|/dW = sign(W) is +1 at 0 as in
        # ops.binarize (torch's abs gives 0 there). The mean as sum / K: 0, not NaN, for K = 0, so that a layer
        # without inputs returns its bias as nn.Linear does.
        w = self.weight
        signs = torch.where(w.detach() >= 0, 1.0, -1.0).to(w.dtype)
        return (w * signs).sum(dim=1) / max(self.in_features, 1)

    def _finish(self, y: Tensor, alpha: Tensor | None, *, inplace: bool) -> Tensor:
        if inplace:
            if alpha is not None:
                y.mul_(alpha)
            return y.add_(self.bias) if self.bias is not None else y
        if alpha is not None:
            y = y * alpha
        return y + self.bias if self.bias is not None else y

    def _packed_weight(self) -> tuple[Tensor, Tensor | None]:
        w = self.weight
        key = (id(w), w._version, w.data_ptr(), w.device, w.dtype)
        if self._packed is None or self._packed[0] != key:
            with torch.no_grad():
                bits = ops.pack_bits(w.detach(), word_bits=_WORD_BITS)
                alpha = self._alpha()
            self._packed = (key, bits, alpha)
        return self._packed[1], self._packed[2]

    def forward(self, x: Tensor) -> Tensor:
        check_tensor("x", x, FLOAT_DTYPES, min_dim=1)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x has {x.shape[-1]} features in its last dim, this layer takes {self.in_features}")
        if x.dtype != self.weight.dtype:
            raise ValueError(f"x has dtype {x.dtype} but the layer's weight has {self.weight.dtype}")
        if x.device != self.weight.device:
            raise ValueError(f"x is on {x.device} but the layer's weight is on {self.weight.device}")
        check_result_size("x", (*x.shape[:-1], self.out_features), x.dtype, x.device)
        if not self.binarize_input:
            w = ops.binarize(self.weight, scale=self.scale) if self.in_features else self.weight
            return nn.functional.linear(x, w, self.bias)
        parameters = (self.weight, self.bias) if self.bias is not None else (self.weight,)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in parameters))
        # A compiled graph packs W itself each call: the cache is Python state that a graph would bake in.
        if self.training or needs_grad or torch.compiler.is_compiling():
            return self._finish(ops.binary_matmul(x, self.weight), self._alpha(), inplace=False)
        w_bits, alpha = self._packed_weight()
        x_bits = ops.pack_bits(x, word_bits=_WORD_BITS)
        y = ops.packed_binary_matmul(x_bits, w_bits, self.in_features, out_dtype=x.dtype)
        return self._finish(y, alpha, inplace=True)


# --- spiking neurons (kernels/spiking) -------------------------------------------------------------------------------

# SpikingJelly's surrogate classes by name, and the accelkit surrogate each one is (kernels/spiking/reference.py).
_SJ_SURROGATES = {"Sigmoid": "sigmoid", "ATan": "atan", "PiecewiseQuadratic": "triangle"}
# SpikingJelly's backend names all mean "the fastest path here" to a user who swaps the import.
_SJ_BACKENDS = {"torch": "auto", "cupy": "auto", "triton": "auto", "inductor": "auto"}


def _surrogate_of(surrogate_function: object) -> tuple[str, float | None]:
    """("sigmoid" | "atan" | "triangle", alpha) from one of those names or a SpikingJelly surrogate instance."""
    if isinstance(surrogate_function, str):
        return surrogate_function, None
    name = _SJ_SURROGATES.get(type(surrogate_function).__name__)
    if name is None or getattr(surrogate_function, "spiking", True) is not True:
        raise ValueError(
            f"surrogate_function must be 'sigmoid', 'atan', 'triangle' or a spiking SpikingJelly Sigmoid, ATan or "
            f"PiecewiseQuadratic, got {surrogate_function!r}"
        )
    return name, float(surrogate_function.alpha)


class _MultiStepNode(nn.Module):
    """The state and call logic SpikingJelly's neurons share: the membrane `v` lives between calls until `reset()`
    (and restarts when the neuron shape changes), `step_mode='m'` takes x_seq [T, *N], 's' takes x [*N]; with
    `store_v_seq` the membrane after every step is kept in `v_seq` [T, *N]."""

    _kind = "lif"

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: object = "sigmoid",
        detach_reset: bool = False,
        step_mode: str = "m",
        backend: str = "auto",
        store_v_seq: bool = False,
    ) -> None:
        super().__init__()
        if step_mode not in ("m", "s"):
            raise ValueError(f"step_mode must be 'm' (multi-step, x_seq [T, *N]) or 's', got {step_mode!r}")
        if not isinstance(store_v_seq, bool):
            raise TypeError(f"store_v_seq must be a bool, got {type(store_v_seq).__name__}")
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a str, got {type(backend).__name__}")
        self.surrogate, self.alpha = _surrogate_of(surrogate_function)
        self.v_threshold, self.v_reset, self.detach_reset = v_threshold, v_reset, detach_reset
        self.step_mode, self.store_v_seq = step_mode, store_v_seq
        self.backend = _SJ_BACKENDS.get(backend, backend)
        self.v: Tensor | None = None
        self.v_seq: Tensor | None = None

    def _options(self) -> dict:
        return dict(
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            surrogate=self.surrogate,
            alpha=self.alpha,
            detach_reset=self.detach_reset,
            backend=self.backend,
        )

    def _w(self) -> Tensor | None:
        return None

    def reset(self) -> None:
        """Forget the membrane (SpikingJelly's `functional.reset_net` calls this on every node)."""
        self.v = None
        self.v_seq = None

    def forward(self, x: Tensor) -> Tensor:
        check_tensor("x_seq" if self.step_mode == "m" else "x", x, FLOAT_DTYPES)
        x_seq = x if self.step_mode == "m" else x.unsqueeze(0)
        if x_seq.dim() < 1:
            raise ValueError(f"x_seq must have a leading T axis ([T, ...]), got shape {tuple(x.shape)}")
        v_init = self.v
        if v_init is not None and (v_init.shape != x_seq.shape[1:] or v_init.device != x_seq.device):
            v_init = None
        if v_init is not None and v_init.dtype != x_seq.dtype:
            v_init = v_init.to(x_seq.dtype)
        spikes, self.v, v_seq = ops_spiking.neuron_states(
            self._kind, x_seq, v_init, self._w(), store_v_seq=self.store_v_seq, **self._options()
        )
        self.v_seq = v_seq if self.step_mode == "m" or v_seq is None else v_seq[0]
        return spikes if self.step_mode == "m" else spikes[0]

    def extra_repr(self) -> str:
        return (
            f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, surrogate={self.surrogate!r}, "
            f"detach_reset={self.detach_reset}, step_mode={self.step_mode!r}, store_v_seq={self.store_v_seq}"
        )


class IFNode(_MultiStepNode):
    """Integrate-and-fire neuron with SpikingJelly's `IFNode` constructor; runs `accelkit.ops.if_neuron`."""

    _kind = "if"


class LIFNode(_MultiStepNode):
    """Leaky integrate-and-fire neuron with SpikingJelly's `LIFNode` constructor (tau > 1, decay_input, ...); runs
    `accelkit.ops.lif`: x_seq [T, *N] -> spikes [T, *N], membrane kept in `v` between calls until `reset()`."""

    _kind = "lif"

    def __init__(self, tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0, v_reset=0.0,
                 surrogate_function: object = "sigmoid", detach_reset: bool = False, step_mode: str = "m",
                 backend: str = "auto", store_v_seq: bool = False) -> None:  # fmt: skip
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend, store_v_seq)
        self.tau, self.decay_input = tau, decay_input

    def _options(self) -> dict:
        return {**super()._options(), "tau": self.tau, "decay_input": self.decay_input}


class ParametricLIFNode(_MultiStepNode):
    """Parametric LIF with SpikingJelly's `ParametricLIFNode` constructor: a learnable `w` (initialised to
    -log(init_tau - 1)) and decay sigmoid(w); runs `accelkit.ops.plif`."""

    _kind = "plif"

    def __init__(self, init_tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0, v_reset=0.0,
                 surrogate_function: object = "sigmoid", detach_reset: bool = False, step_mode: str = "m",
                 backend: str = "auto", store_v_seq: bool = False) -> None:  # fmt: skip
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend, store_v_seq)
        if isinstance(init_tau, bool) or not isinstance(init_tau, (int, float)) or not init_tau > 1.0:
            raise ValueError(f"init_tau must be a number > 1, got {init_tau!r}")
        self.decay_input = decay_input
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    def _w(self) -> Tensor:
        return self.w

    def _options(self) -> dict:
        return {**super()._options(), "decay_input": self.decay_input}

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, Tensor) and x.device != self.w.device:
            raise ValueError(f"x_seq is on {x.device} but the node's w is on {self.w.device}")
        return super().forward(x)


class RPEKernelAttention(nn.Module):
    """Multi-head kernelized self-attention with a learnable relative-position bias (Luo et al., NeurIPS 2021), on
    `ops.rpe_kernel_attention`: O(T log T) by FFT at long T, blocked O(T^2) at short T (method="auto").

    x [B, T, dim] -> [B, T, dim], T <= max_len. Owns the q/k/v and output projections (nn.Linear), the bias
    `rpe_bias` [heads, 2 max_len - 1] (zeros at start: plain kernelized attention) of which a call uses the
    2T - 1 central offsets, and the random features `features` [num_features, dim // heads] (a buffer, orthogonal,
    drawn from torch's global generator). In training mode the features are redrawn every
    feature_redraw_interval forward calls (Performer's feature_redraw_interval; None or 0: never); in eval mode they
    stay fixed. q and k are L2-normalised before the feature map (the paper's stable-training setting).
    """

    def __init__(
        self, dim: int, heads: int, *, num_features: int = 256, max_len: int, causal: bool = False,
        feature_redraw_interval: int | None = 1000,
    ) -> None:  # fmt: skip
        super().__init__()
        dim, heads = as_int(dim, "dim"), as_int(heads, "heads")
        max_len, num_features = as_int(max_len, "max_len"), as_int(num_features, "num_features")
        for name, value in (("dim", dim), ("heads", heads), ("max_len", max_len), ("num_features", num_features)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if dim % heads:
            raise ValueError(f"dim={dim} is not a multiple of heads={heads}")
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
        interval = 0 if feature_redraw_interval is None else as_int(feature_redraw_interval, "feature_redraw_interval")
        if interval < 0:
            raise ValueError(f"feature_redraw_interval must be >= 0 or None, got {interval}")
        self.dim, self.heads, self.max_len, self.causal = dim, heads, max_len, causal
        self.num_features, self.feature_redraw_interval = num_features, interval
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.rpe_bias = nn.Parameter(torch.zeros(heads, 2 * max_len - 1))
        self.register_buffer("features", rpe_op.orthogonal_features(num_features, dim // heads))
        self.calls_since_redraw = 0

    @torch.no_grad()
    def redraw_features(self) -> None:
        """Draw a new orthogonal feature matrix in place (same shape, dtype and device)."""
        fresh = rpe_op.orthogonal_features(self.num_features, self.dim // self.heads)
        self.features.copy_(fresh.to(self.features))
        self.calls_since_redraw = 0

    def forward(self, x: Tensor) -> Tensor:
        check_tensor("x", x, FLOAT_DTYPES, min_dim=3, max_dim=3)
        b, t, dim = x.shape
        if dim != self.dim:
            raise ValueError(f"x has {dim} features but the layer was built for dim={self.dim}")
        if t > self.max_len:
            raise ValueError(f"x has T={t} positions but the layer's bias covers max_len={self.max_len}")
        if x.dtype != self.qkv.weight.dtype or x.device != self.qkv.weight.device:
            raise ValueError(
                f"x is {x.dtype} on {x.device} but the layer's parameters are {self.qkv.weight.dtype} on "
                f"{self.qkv.weight.device}"
            )
        if self.training and self.feature_redraw_interval:
            if self.calls_since_redraw >= self.feature_redraw_interval:
                self.redraw_features()
            self.calls_since_redraw += 1
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, dim // self.heads).unbind(2)
        bias = self.rpe_bias[:, self.max_len - t : self.max_len + t - 1] if t else self.rpe_bias[:, :0]
        z = ops.rpe_kernel_attention(q, k, v, bias, causal=self.causal, features=self.features)
        return self.out(z.reshape(b, t, dim))
