"""The rpe_kernel_attention part of `accelkit demo`: the FFT and direct paths, forward and the bias gradient, against
the float64 oracle, and the Triton feature map where triton is installed."""

from collections.abc import Callable

from accelkit._optional import available

Check = tuple[str, str, tuple[float, bool]]
# Odd, prime and non-power-of-2 sizes; D_v != D.
B, T, H, D, DV, M = 2, 97, 3, 16, 12, 32


def _path_checks(check: Callable, gen) -> list[Check]:
    import torch

    from accelkit import ops
    from accelkit.kernels.fft_rpe import reference as ref
    from accelkit.kernels.fft_rpe.op import orthogonal_features

    q, k = (torch.randn(B, T, H, D, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, T, H, DV, generator=gen, dtype=torch.float64)
    bias = 0.5 * torch.randn(H, 2 * T - 1, generator=gen, dtype=torch.float64)
    w = orthogonal_features(M, D, seed=0, dtype=torch.float64)
    want = ref.rpe_kernel_attention(*(x.numpy() for x in (q, k, v, bias, w)), causal=True)
    rows = []
    for method in ("fft", "direct"):
        for dtype in (torch.float64, torch.float32):
            args = [x.to(dtype) for x in (q, k, v, bias)]
            out = ops.rpe_kernel_attention(*args, causal=True, features=w.to(dtype), method=method)
            backend = "cpu (torch.fft)" if method == "fft" else "cpu (PyTorch)"
            rows.append((f"rpe_kernel_attention fwd {method} {str(dtype)[6:]}", backend, check(want, out)))
    # The bias gradient of both paths against each other in float64 (the oracle has no backward): an FFT
    # correlation against the direct path's anti-diagonal sums.
    grads = {}
    for method in ("fft", "direct"):
        leaf = bias.clone().requires_grad_()
        ops.rpe_kernel_attention(q, k, v, leaf, causal=True, features=w, method=method).sum().backward()
        grads[method] = leaf.grad
    rows.append(("rpe_kernel_attention d(bias) fft", "cpu (torch.fft)", check(grads["direct"].numpy(), grads["fft"])))
    return rows


def _triton_checks(check: Callable, gen) -> list[Check]:
    import numpy as np
    import torch

    from accelkit.kernels.fft_rpe import reference as ref
    from accelkit.kernels.fft_rpe.triton_kernels import prf_forward, prf_row_max

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(37, D, generator=gen).to(device)
    w = torch.randn(M, D, generator=gen).to(device)
    top, _ = prf_row_max(x, w)
    logits = ref.feature_logits(x.double().cpu().numpy(), w.double().cpu().numpy())
    want = np.exp(logits - logits.max(-1, keepdims=True)) / np.sqrt(M)
    return [("rpe_kernel_attention phi (Triton)", "triton", check(want, prf_forward(x, w, top)))]


def fft_rpe_checks(check: Callable) -> list[Check]:
    """Rows for the demo's oracle table: (op, backend, (max abs err, within tolerance))."""
    import torch

    gen = torch.Generator().manual_seed(3)
    triton_rows = _triton_checks(check, gen) if available("triton") else []
    return [*_path_checks(check, gen), *triton_rows]
