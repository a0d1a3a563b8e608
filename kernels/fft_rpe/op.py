"""rpe_kernel_attention as torch.library ops: kernelized attention with a relative-position bias, O(T log T) by FFT
or O(T^2) blocked direct, one name on CPU and CUDA, autograd through a backward op of its own.

The public function casts to the compute dtype (float64 stays, everything else runs in float32, FFTs included),
L2-normalises q and k when asked, and draws orthogonal random features when none are given; those steps are plain
differentiable torch. The op takes the prepared tensors and returns the output and the normaliser (which the
backward needs); its backward recomputes the features and streams the same column chunks again, so no tensor of
T x m x D_v elements ever exists (autograd through torch.fft would keep every chunk's spectra alive).
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import Tensor

from accelkit.kernels._common.checks import check_same_device, check_tensor
from accelkit.kernels.fft_rpe import cpu, toeplitz
from accelkit.kernels.fft_rpe.reference import COEFF_HALF_RANGE

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
METHODS = ("auto", "fft", "direct")
# Seconds of one unit of FFT work (columns x n log2 n, float64 transforms) over one unit of direct work
# (T^2 x (m + E)): the value at which the model's crossover equals the one bench/fft_rpe.py measured (fwd + bwd,
# fp32, m = D_v = 64; the run is in kernels/fft_rpe/README.md). CUDA is not calibrated yet and
# uses the CPU value.
FFT_UNIT_COST = {"cpu": 28.0}


def choose_method(t: int, m: int, e: int, device_type: str) -> str:
    """ "fft" or "direct" for T positions, m features and E = D_v + 1 columns per feature, by the cost model
    m E n log2(n) x FFT_UNIT_COST against T^2 (m + E), n the FFT length."""
    if t < 2:
        return "direct"
    n = toeplitz.fft_length(t)
    fft_cost = m * e * n * math.log2(n) * FFT_UNIT_COST.get(device_type, FFT_UNIT_COST["cpu"])
    return "fft" if fft_cost < t * t * (m + e) else "direct"


def orthogonal_features(
    num_features: int, dim: int, *, seed: int | None = None, dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:  # fmt: skip
    """W [num_features, dim]: blocks of dim orthogonal rows (QR of a Gaussian matrix), each row rescaled to the norm
    of an independent N(0, I) vector, so every row is marginally N(0, I) as the estimator needs (Performer's ORF).
    Drawn in float64 on the CPU from `seed` (torch's global generator when None), then moved."""
    m, d = _check_count("num_features", num_features), _check_count("dim", dim)
    gen = torch.Generator().manual_seed(_check_seed(seed)) if seed is not None else None
    blocks = []
    for _ in range(-(-m // d)):
        qr = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
        # Signs of R's diagonal folded into Q make Q Haar-distributed; LAPACK's raw Q is not, and its rows then
        # favour some directions, which biases the estimator (a floor in the error as m grows).
        blocks.append((qr.Q * torch.sign(torch.diagonal(qr.R))).T)
    rows = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=gen, dtype=torch.float64).norm(dim=1)
    return (rows * norms[:, None]).to(dtype=dtype, device=device)


def _feature_fns(x: Tensor):
    """The Triton kernels on CUDA for D <= 256, the PyTorch ones (cpu.py) elsewhere."""
    if x.device.type == "cuda":
        from accelkit.kernels.fft_rpe import triton_kernels as tk

        if x.shape[-1] <= tk.MAX_HEAD_DIM:
            return tk.prf_row_max, tk.prf_forward, tk.prf_backward
    return cpu.row_max, cpu.feature_map, cpu.feature_map_backward


def _features(x: Tensor, w: Tensor, is_query: bool):
    """phi [B, H, T, m] of x [B, T, H, D], the shift per row [B, T, H], its column and, for keys, the row t* [B, H]
    holding the (batch, head) max."""
    row_max, forward, _ = _feature_fns(x)
    top, arg = row_max(x, w)
    t_star = None
    if not is_query:
        top, t_star = top.max(dim=1)
        top = top[:, None, :].expand(x.shape[:3])
    return forward(x, w, top).permute(0, 2, 1, 3), top, arg, t_star


def _coefficients(rpe_bias: Tensor, t: int, causal: bool) -> tuple[Tensor, Tensor, Tensor]:
    """c = exp(b - s) [H, 2T - 1], zero past offset 0 when causal, s = max(midpoint, max - COEFF_HALF_RANGE) over
    the offsets in use (reference.bias_shift says why); and where s came from: the offsets of the max and the min
    [H, 2] with the weight of each in s [H, 2], for the backward."""
    used = torch.arange(rpe_bias.shape[-1], device=rpe_bias.device) <= t - 1 if causal else None
    top_b = rpe_bias if used is None else rpe_bias.masked_fill(~used, float("-inf"))
    low_b = rpe_bias if used is None else rpe_bias.masked_fill(~used, float("inf"))
    top, i_top = top_b.max(-1, keepdim=True)
    low, i_low = low_b.min(-1, keepdim=True)
    mid = 0.5 * (top + low)
    from_mid = mid >= top - COEFF_HALF_RANGE
    shift = torch.where(from_mid, mid, top - COEFF_HALF_RANGE)
    weights = torch.cat((torch.where(from_mid, 0.5, 1.0), torch.where(from_mid, 0.5, 0.0)), -1).to(rpe_bias.dtype)
    return torch.exp(top_b - shift), torch.cat((i_top, i_low), -1), weights


def _path(t: int, m: int, e: int, device: torch.device, method: str) -> str:
    return choose_method(t, m, e, device.type) if method == "auto" else method


def _forward(q, k, v, rpe_bias, w, causal: bool, eps: float, method: str) -> tuple[Tensor, Tensor]:
    b, t, h, _ = q.shape
    if q.numel() == 0 or v.numel() == 0:
        return v.new_zeros(v.shape), q.new_zeros((b, h, t))
    fq, _, _, _ = _features(q, w, True)
    fk, _, _, _ = _features(k, w, False)
    c = _coefficients(rpe_bias, t, causal)[0]
    v1 = F.pad(v.permute(0, 2, 1, 3), (0, 1), value=1.0)  # [B, H, T, D_v + 1]
    if _path(t, w.shape[0], v1.shape[-1], q.device, method) == "fft":
        y = toeplitz.fft_forward(fq, fk, v1, c)
    else:
        y = toeplitz.direct_forward(fq, fk, v1, c, causal)
    den = y[..., -1]
    out = y[..., :-1] / (den.clamp_min(0.0) + eps)[..., None]
    return out.permute(0, 2, 1, 3).contiguous(), den.contiguous()


def _backward(grad_out, q, k, v, rpe_bias, w, out, den, causal: bool, eps: float, method: str):
    b, t, h, _ = q.shape
    if q.numel() == 0 or v.numel() == 0:
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v), torch.zeros_like(rpe_bias)
    _, _, fn_backward = _feature_fns(q)
    fq, sq, aq, _ = _features(q, w, True)
    fk, sk, ak, t_star = _features(k, w, False)
    c, c_arg, c_weights = _coefficients(rpe_bias, t, causal)
    v1 = F.pad(v.permute(0, 2, 1, 3), (0, 1), value=1.0)
    scale = 1.0 / (den.clamp_min(0.0) + eps)
    g = grad_out.permute(0, 2, 1, 3) * scale[..., None]  # dL/dnum [B, H, T, D_v]
    g_den = -(g * out.permute(0, 2, 1, 3)).sum(-1) * (den > 0)
    u = torch.cat((g, g_den[..., None]), dim=-1)
    if _path(t, w.shape[0], v1.shape[-1], q.device, method) == "fft":
        d_fq, d_fk, d_v1, d_c = toeplitz.fft_backward(fq, fk, v1, c, u)
    else:
        d_fq, d_fk, d_v1, d_c = toeplitz.direct_backward(fq, fk, v1, c, u, causal)
    d_fq, d_fk = d_fq.permute(0, 2, 1, 3), d_fk.permute(0, 2, 1, 3)
    dq = fn_backward(q, w, sq, aq, None, d_fq)
    # The keys' one shift per (batch, head) sits on row t*: its gradient -sum(dP) is added there only.
    total = (d_fk * fk.permute(0, 2, 1, 3)).sum((1, 3))  # [B, H]
    extra = torch.zeros(k.shape[:3], dtype=k.dtype, device=k.device).scatter_(1, t_star[:, None, :], -total[:, None])
    dk = fn_backward(k, w, sk, ak, extra, d_fk)
    d_b = d_c * c
    return dq, dk, d_v1[..., :-1].permute(0, 2, 1, 3).contiguous(), _shift_gradient(d_b, c_arg, c_weights)


def _shift_gradient(d_b: Tensor, index: Tensor, weights: Tensor) -> Tensor:
    """dL/db from dL/db with the shift held fixed: s moves with the bias at its max and min (weights), and every c
    moves by -ds, so each of those offsets also receives its weight times -sum(dL/db)."""
    return d_b.scatter_add(-1, index, -weights * d_b.sum(-1, keepdim=True))


@torch.library.custom_op("accelkit::rpe_kernel_attention", mutates_args=())
def _op(
    q: Tensor, k: Tensor, v: Tensor, rpe_bias: Tensor, features: Tensor, causal: bool, eps: float, method: str
) -> tuple[Tensor, Tensor]:
    return _forward(q, k, v, rpe_bias, features, causal, eps, method)


@_op.register_fake
def _(q, k, v, rpe_bias, features, causal, eps, method):
    b, t, h, _ = q.shape
    return v.new_empty(v.shape), q.new_empty((b, h, t))


@torch.library.custom_op("accelkit::rpe_kernel_attention_backward", mutates_args=())
def _bwd_op(
    grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, rpe_bias: Tensor, features: Tensor, out: Tensor, den: Tensor,
    causal: bool, eps: float, method: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    return _backward(grad_out, q, k, v, rpe_bias, features, out, den, causal, eps, method)


@_bwd_op.register_fake
def _(grad_out, q, k, v, rpe_bias, features, out, den, causal, eps, method):
    return tuple(torch.empty_like(x, memory_format=torch.contiguous_format) for x in (q, k, v, rpe_bias))


def _setup(ctx, inputs, output) -> None:
    q, k, v, rpe_bias, features, causal, eps, method = inputs
    ctx.save_for_backward(q, k, v, rpe_bias, features, *output)
    ctx.knobs = (causal, eps, method)


def _autograd(ctx, grad_out: Tensor | None, _grad_den: Tensor | None):
    q, k, v, rpe_bias, features, out, den = ctx.saved_tensors
    if grad_out is None:
        grad_out = torch.zeros_like(out)
    dq, dk, dv, db = _bwd_op(grad_out.contiguous(), q, k, v, rpe_bias, features, out, den, *ctx.knobs)
    return dq, dk, dv, db, None, None, None, None


_op.register_autograd(_autograd, setup_context=_setup)


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def _check_seed(seed) -> int:
    return _check_count("seed", seed, minimum=0)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a float, got {type(eps).__name__}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    return float(eps)


def _check_shapes(q: Tensor, k: Tensor, v: Tensor, rpe_bias: Tensor) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, x, DTYPES, min_dim=4, max_dim=4)
    check_tensor("rpe_bias", rpe_bias, DTYPES, min_dim=2, max_dim=2)
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but q has {q.dtype}")
    check_same_device(("q", q), ("k", k), ("v", v), ("rpe_bias", rpe_bias))
    b, t, h, d = q.shape
    if k.shape[1] != t:
        raise ValueError(f"k has T_k={k.shape[1]} but q has T_q={t}: rpe_kernel_attention is self-attention")
    if k.shape != q.shape:
        raise ValueError(f"k has shape {tuple(k.shape)} but q has {tuple(q.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v has shape {tuple(v.shape)}; need [B, T, H] = {tuple(q.shape[:3])} like q")
    if d < 1:
        raise ValueError("q has head dim D=0; need D >= 1")
    if tuple(rpe_bias.shape) != (h, max(2 * t - 1, 0)):
        raise ValueError(f"rpe_bias has shape {tuple(rpe_bias.shape)}; need [H, 2T - 1] = [{h}, {max(2 * t - 1, 0)}]")


def rpe_kernel_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rpe_bias: Tensor,
    *,
    causal: bool = False,
    features: Tensor | None = None,
    num_features: int = 256,
    normalize_qk: bool = True,
    eps: float = 1e-6,
    seed: int | None = None,
    method: str = "auto",
) -> Tensor:
    """Kernelized attention with a relative-position bias (Luo et al., NeurIPS 2021), in O(T log T) by FFT.

    q, k [B, T, H, D], v [B, T, H, D_v], rpe_bias [H, 2T - 1] with rpe_bias[h, T - 1 + (j - i)] the bias of query
    i and key j. With phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), x' = x / D**0.25, and c = exp(b):

        z_i = sum_j c_{j-i} phi(q_i).phi(k_j) v_j / (sum_j c_{j-i} phi(q_i).phi(k_j) + eps)

    over keys j <= i when causal. features is W [m, D]; when None, num_features orthogonal random features are
    drawn from seed (torch's global generator when seed is None; pass features under torch.compile). normalize_qk
    L2-normalises q and k first. method "fft" (O(T log T)), "direct" (blocked O(T^2), memory O(T * block)) or
    "auto" (a cost model picks). Returns z [B, T, H, D_v] in q's dtype; 16-bit inputs compute in float32.
    Differentiable in q, k, v and rpe_bias (not in features).
    """
    _check_shapes(q, k, v, rpe_bias)
    causal, normalize_qk = _check_flag("causal", causal), _check_flag("normalize_qk", normalize_qk)
    eps = _check_eps(eps)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    if features is None:
        num_features = _check_count("num_features", num_features)
        if seed is not None:
            _check_seed(seed)
        features = orthogonal_features(num_features, q.shape[-1], seed=seed, dtype=compute, device=q.device)
    else:
        check_tensor("features", features, DTYPES, min_dim=2, max_dim=2)
        check_same_device(("q", q), ("features", features))
        if features.shape[1] != q.shape[-1]:
            raise ValueError(f"features has D={features.shape[1]} but q has head dim {q.shape[-1]}")
        if features.shape[0] < 1:
            raise ValueError("features has 0 rows; need num_features >= 1")
    qc, kc, vc = q.to(compute), k.to(compute), v.to(compute)
    if normalize_qk:
        qc, kc = F.normalize(qc, dim=-1), F.normalize(kc, dim=-1)
    out, _ = _op(qc, kc, vc, rpe_bias.to(compute), features.detach().to(compute), causal, eps, method)
    return out.to(q.dtype)


__all__ = ["choose_method", "orthogonal_features", "rpe_kernel_attention"]
