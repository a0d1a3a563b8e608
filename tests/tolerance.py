"""One comparison helper with one tolerance table per dtype. Tolerances are never loosened per test."""

import numpy as np
import torch

from accelkit.kernels._common.tolerance import EXACT, TOLERANCES, outside


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.double() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def assert_close(name: str, ref, out, *, dtype: torch.dtype | None = None) -> None:
    """Compare `out` with the float64 (or integer) oracle `ref`; fail with max abs error, relative RMS error and
    the first bad index. Integer dtypes must match exactly."""
    if dtype is None:
        dtype = out.dtype if isinstance(out, torch.Tensor) else torch.float64
    ref_np, out_np = _numpy(ref), _numpy(out)
    if ref_np.shape != out_np.shape:
        raise AssertionError(f"{name}: shape {out_np.shape} != reference shape {ref_np.shape}")
    if ref_np.size == 0:
        return
    bad = outside(ref_np, out_np, dtype)
    if dtype in EXACT:
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise AssertionError(
                f"{name}: {int(bad.sum())} of {bad.size} integers differ; first at {first}: "
                f"got {out_np[first]}, expected {ref_np[first]}"
            )
        return
    atol, rtol = TOLERANCES[dtype]
    ref64, out64 = ref_np.astype(np.float64), out_np.astype(np.float64)
    err = np.abs(out64 - ref64)
    if bad.any():
        max_abs = float(np.nanmax(err)) if np.isfinite(err).any() else float("nan")
        rms = float(np.sqrt(np.nanmean((out64 - ref64) ** 2)) / max(np.sqrt(np.mean(ref64**2)), 1e-300))
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{name} ({dtype}): {int(bad.sum())} of {bad.size} elements outside atol={atol}, rtol={rtol}; "
            f"max abs err {max_abs:.3e}, relative RMS err {rms:.3e}; first at {first}: "
            f"got {out64[first]}, expected {ref64[first]}"
        )


def assert_within_peer_error(name: str, ref, out, peer, *, dtype: torch.dtype, factor: float = 2.0) -> None:
    """The FlashAttention criterion for 16-bit kernels: the max abs error of `out` against the float64 oracle `ref`
    is at most `factor` times that of `peer`, a plain PyTorch implementation in the same precision (2x forward,
    3x backward in the FlashAttention papers), plus the atol of `dtype` from the one table as the small margin that
    keeps a peer with zero error from demanding an exact result."""
    ref_np, out_np, peer_np = _numpy(ref).astype(np.float64), _numpy(out), _numpy(peer)
    if ref_np.shape != out_np.shape or ref_np.shape != peer_np.shape:
        raise AssertionError(f"{name}: shapes {out_np.shape} (out), {peer_np.shape} (peer), {ref_np.shape} (ref)")
    if ref_np.size == 0:
        return
    if np.isnan(out_np).any():
        raise AssertionError(f"{name} ({dtype}): NaN at {tuple(int(i) for i in np.argwhere(np.isnan(out_np))[0])}")
    ours = float(np.max(np.abs(out_np - ref_np)))
    theirs = float(np.nanmax(np.abs(peer_np - ref_np)))
    bound = factor * theirs + TOLERANCES[dtype][0]
    if not ours <= bound:
        raise AssertionError(
            f"{name} ({dtype}): max abs err {ours:.3e} > {factor} x same-precision PyTorch's {theirs:.3e} "
            f"+ atol {TOLERANCES[dtype][0]}"
        )
