"""Layers built on the accelkit ops. Importing this module imports torch.

`BinaryLinear` is a drop-in for `torch.nn.Linear` whose forward is XNOR + popcount on sign bits (BinaryNet,
Courbariaux et al. 2016; XNOR-Net, Rastegari et al. 2016): swap one `nn.Linear` for `BinaryLinear.from_linear`.
`LIFNode`, `IFNode` and `ParametricLIFNode` take SpikingJelly's constructor arguments and keep the membrane between
calls until `reset()`, so `from spikingjelly.activation_based.neuron import LIFNode` becomes
`from accelkit.nn import LIFNode`. `DeltaNet` is a DeltaNet / Gated DeltaNet attention layer on `ops.delta_rule`.
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

__all__ = ["BinaryLinear", "DeltaNet", "IFNode", "LIFNode", "ParametricLIFNode", "RPEKernelAttention"]

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


def _positive_int(value, name: str) -> int:
    value = as_int(value, name)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class DeltaNet(nn.Module):
    """DeltaNet attention (Yang et al. 2024, arXiv 2406.06484), or Gated DeltaNet with use_gate, on ops.delta_rule.

    x [B, T, hidden_size] -> [B, T, hidden_size]. Per head: q, k [head_dim] and v [value_dim] projections, each
    through an optional short causal depthwise convolution (kernel conv_size) and SiLU, as fla's layer defaults;
    beta = sigmoid(b_proj(x)) (2 x that with allow_neg_eigval, arXiv 2411.12537); with use_gate, the log decay
    g = logsigmoid(g_proj(x)); q and k are l2-normalised inside the op; each head's output is RMS-normalised before
    o_proj. forward(x, initial_state=None, cu_seqlens=None, return_state=False) returns y, or (y, final state
    float32 [N, H, head_dim, value_dim]) with return_state; the convolutions restart at each call and sequence.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        *,
        head_dim: int | None = None,
        value_dim: int | None = None,
        use_short_conv: bool = True,
        conv_size: int = 4,
        use_gate: bool = False,
        allow_neg_eigval: bool = False,
        mode: str = "chunk",
        chunk_size: int = 64,
    ) -> None:
        super().__init__()
        hidden, heads = _positive_int(hidden_size, "hidden_size"), _positive_int(num_heads, "num_heads")
        head_dim = hidden // heads if head_dim is None else _positive_int(head_dim, "head_dim")
        value_dim = head_dim if value_dim is None else _positive_int(value_dim, "value_dim")
        for name, flag in (("use_short_conv", use_short_conv), ("use_gate", use_gate),
                           ("allow_neg_eigval", allow_neg_eigval)):  # fmt: skip
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        from accelkit.kernels.delta_rule.args import CHUNK_SIZES, MAX_HEAD_DIM, MODES

        if not 1 <= head_dim <= MAX_HEAD_DIM or not 1 <= value_dim <= MAX_HEAD_DIM:
            raise ValueError(f"head_dim {head_dim} and value_dim {value_dim} must lie in [1, {MAX_HEAD_DIM}]")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if as_int(chunk_size, "chunk_size") not in CHUNK_SIZES:
            raise ValueError(f"chunk_size must be one of {CHUNK_SIZES}, got {chunk_size}")
        conv_size = _positive_int(conv_size, "conv_size")
        self.hidden_size, self.num_heads, self.head_dim, self.value_dim = hidden, heads, head_dim, value_dim
        self.mode, self.chunk_size, self.allow_neg_eigval = mode, chunk_size, allow_neg_eigval
        weights = (hidden, heads * (2 * head_dim + value_dim))
        check_result_size("hidden_size", weights, torch.float32, torch.device("cpu"))
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, heads * value_dim, bias=False)
        self.b_proj = nn.Linear(hidden, heads, bias=False)
        self.g_proj = nn.Linear(hidden, heads, bias=True) if use_gate else None
        self.convs = None
        if use_short_conv:
            widths = (heads * head_dim, heads * head_dim, heads * value_dim)
            self.convs = nn.ModuleList(nn.Conv1d(w, w, conv_size, groups=w, padding=conv_size - 1) for w in widths)
        self.o_norm = nn.RMSNorm(value_dim, eps=1e-5)
        self.o_proj = nn.Linear(heads * value_dim, hidden, bias=False)

    def _short_conv(self, x: Tensor, i: int, cu: list[int] | None) -> Tensor:
        conv = self.convs[i]
        pieces = [x] if cu is None else [x[:, a:b] for a, b in zip(cu[:-1], cu[1:], strict=True)]
        # A piece of no tokens stays empty: torch's conv1d refuses a zero-length input.
        out = [nn.functional.silu(conv(p.transpose(1, 2))[..., : p.shape[1]].transpose(1, 2)) if p.shape[1] else p
               for p in pieces]  # fmt: skip
        return torch.cat(out, 1) if out else x

    def forward(
        self,
        x: Tensor,
        *,
        initial_state: Tensor | None = None,
        cu_seqlens: Tensor | None = None,
        return_state: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        check_tensor("x", x, FLOAT_DTYPES, min_dim=3, max_dim=3)
        b, t, hidden = x.shape
        if hidden != self.hidden_size:
            raise ValueError(f"x has {hidden} features but the layer was built for hidden_size={self.hidden_size}")
        if x.dtype != self.q_proj.weight.dtype or x.device != self.q_proj.weight.device:
            raise ValueError(f"x is {x.dtype} on {x.device} but the layer's parameters are "
                             f"{self.q_proj.weight.dtype} on {self.q_proj.weight.device}")  # fmt: skip
        cu = None
        if cu_seqlens is not None and self.convs is not None:
            check_tensor("cu_seqlens", cu_seqlens, (torch.int64, torch.int32), min_dim=1, max_dim=1)
            from accelkit.kernels.delta_rule.args import check_cu_seqlens_values

            cu = check_cu_seqlens_values(cu_seqlens, t) if cu_seqlens.device.type != "meta" else None
        h, kd, vd = self.num_heads, self.head_dim, self.value_dim
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.convs is not None:
            q, k, v = (self._short_conv(z, i, cu) for i, z in enumerate((q, k, v)))
        beta = torch.sigmoid(self.b_proj(x)) * (2.0 if self.allow_neg_eigval else 1.0)
        g = None if self.g_proj is None else nn.functional.logsigmoid(self.g_proj(x))
        o, state = ops.delta_rule(
            q.view(b, t, h, kd), k.view(b, t, h, kd), v.view(b, t, h, vd), beta, g=g, initial_state=initial_state,
            output_final_state=return_state, cu_seqlens=cu_seqlens, chunk_size=self.chunk_size, use_qk_l2norm=True,
            mode=self.mode,
        )  # fmt: skip
        y = self.o_proj(self.o_norm(o).reshape(b, t, h * vd))
        return (y, state) if return_state else y
