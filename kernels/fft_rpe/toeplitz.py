"""The two ways to apply the Toeplitz coefficient matrix C[i, j] = c[T - 1 + j - i] of one head: by FFT (circulant
embedding, O(T log T) per column) and blocked direct (O(T^2), key blocks, never the T x T matrix). Both run on any
torch device; the columns are the features times [v, 1], so one pass gives the numerator and the normaliser.

Shapes: phi_q, phi_k [B, H, T, m]; v1 = [v, 1] [B, H, T, E] with E = D_v + 1; c [H, 2T - 1] (the shifted,
causal-masked coefficients); the forward returns Y [B, H, T, E] with Y[i, e] = sum_r phi_q[i, r] sum_j C[i, j]
phi_k[j, r] v1[j, e]. The backward takes U = dL/dY and returns the gradients of phi_q, phi_k, v1 and c.

Memory: the FFT path never holds the T x (m * E) matrix of columns phi_k[:, r] * v1[:, e]; it streams CHUNK_COLUMNS
of them at a time through rfft -> multiply -> irfft -> contract, so its peak is O(T * (m + E)) plus one chunk
(a constant number of columns times the FFT length). The direct path holds one [T, DIRECT_BLOCK] key block.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Columns per FFT batch: big enough that one torch.fft call amortises its setup over many transforms, small enough
# that the chunk (about 5 x columns x 2T floats in the backward) stays below the O(T * m) tensors for m = 64.
CHUNK_COLUMNS = 256
# Keys per block of the direct path: its [T, block] score tile is the path's extra memory.
DIRECT_BLOCK = 256
# The FFT path transforms in float64 whatever the input dtype. An FFT's rounding is relative to the whole column,
# not to each output, and the causal first rows (a normaliser of one or a few terms) are far below the column's
# norm: with float32 transforms the output missed float32's tolerance (atol 1e-5) by 2.5e-5 at T = 97 (D = 16,
# m = 32, bias 0.5 randn) and by 2.8e-5 at T = 1500, measured against the float64 oracle. float64 transforms cost
# about 2x the float32 ones on pocketfft.
FFT_DTYPE = torch.float64


def fft_length(t: int) -> int:
    """The smallest 2^a 3^b 5^c >= 2T - 1: a circulant that long holds the linear convolution without wrap-around,
    and pocketfft / cuFFT are fastest on such smooth lengths."""
    need = max(2 * t - 1, 1)
    best = 1 << (need - 1).bit_length()
    p5 = 1
    while p5 < best:
        p3 = p5
        while p3 < best:
            n = p3
            while n < need:
                n *= 2
            best = min(best, n)
            p3 *= 3
        p5 *= 5
    return best


def _spectra(c: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """rfft of the coefficient vector laid out for C (flipped: index u holds offset i - j = u - (T - 1)) and for
    C^T (as is); [H, n // 2 + 1] each, one per head shared by the batch and every column."""
    return torch.fft.rfft(c.flip(-1), n=n), torch.fft.rfft(c, n=n)


def _chunks(m: int, e: int):
    step = max(1, CHUNK_COLUMNS // e)
    return ((r, min(r + step, m)) for r in range(0, m, step))


def _padded(like: Tensor, m: int, e: int, n: int) -> Tensor:
    """A zeroed [B, H, features per chunk, E, n] buffer: each chunk's columns are written into its first T entries
    and the zero tail stays, so rfft reads it as is (rfft(x, n=n) would zero-fill and copy a padded tensor per call,
    about a quarter of the path's time at T = 2048 in a profile)."""
    b, h = like.shape[:2]
    return torch.zeros((b, h, min(m, max(1, CHUNK_COLUMNS // e)), e, n), dtype=like.dtype, device=like.device)


def fft_forward(phi_q: Tensor, phi_k: Tensor, v1: Tensor, c: Tensor) -> Tensor:
    """Y by FFT; see the module docstring."""
    dtype = phi_q.dtype
    phi_q, phi_k, v1, c = (x.to(FFT_DTYPE) for x in (phi_q, phi_k, v1, c))
    b, h, t, m = phi_q.shape
    e = v1.shape[-1]
    n = fft_length(t)
    spec = _spectra(c, n)[0][None, :, None, None, :]  # [1, H, 1, 1, F]
    fq, fk, vt = phi_q.transpose(-1, -2), phi_k.transpose(-1, -2).contiguous(), v1.transpose(-1, -2).contiguous()
    out = torch.zeros((b, h, e, t), dtype=phi_q.dtype, device=phi_q.device)
    buf = _padded(phi_q, m, e, n)
    for r0, r1 in _chunks(m, e):
        cols = buf[:, :, : r1 - r0]
        torch.mul(fk[:, :, r0:r1, None, :], vt[:, :, None], out=cols[..., :t])  # [B, H, mc, E, T]
        y = torch.fft.irfft(torch.fft.rfft(cols) * spec, n=n)[..., t - 1 : 2 * t - 1]
        out += (y * fq[:, :, r0:r1, None, :]).sum(2)
    return out.transpose(-1, -2).to(dtype)


def fft_backward(
    phi_q: Tensor, phi_k: Tensor, v1: Tensor, c: Tensor, u: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of phi_q, phi_k, v1 and c given U = dL/dY, streaming the same column chunks as the forward.

    With A the columns phi_k[:, r] v1[:, e] and G = phi_q[:, r] U[:, e]: dphi_q = sum_e U_e (C A)_{r,e},
    dA = C^T G, and dc[T - 1 + s] = sum_{cols} sum_i G_i A_{i+s}, a correlation, accumulated in the frequency
    domain from the two spectra the gradients compute anyway and inverted once at the end.
    """
    dtype = phi_q.dtype
    phi_q, phi_k, v1, c, u = (x.to(FFT_DTYPE) for x in (phi_q, phi_k, v1, c, u))
    b, h, t, m = phi_q.shape
    e = v1.shape[-1]
    n = fft_length(t)
    spec_c, spec_ct = (s[None, :, None, None, :] for s in _spectra(c, n))
    fq, fk = phi_q.transpose(-1, -2).contiguous(), phi_k.transpose(-1, -2).contiguous()
    vt, ut = v1.transpose(-1, -2).contiguous(), u.transpose(-1, -2).contiguous()
    d_fq, d_fk = torch.empty_like(fq), torch.empty_like(fk)
    d_vt = torch.zeros_like(vt)
    corr = torch.zeros((h, n // 2 + 1), dtype=spec_c.dtype, device=c.device)
    buf = _padded(phi_q, m, e, n)
    for r0, r1 in _chunks(m, e):
        cols = buf[:, :, : r1 - r0]
        torch.mul(fk[:, :, r0:r1, None, :], vt[:, :, None], out=cols[..., :t])  # A: [B, H, mc, E, T]
        f_a = torch.fft.rfft(cols)
        d_fq[:, :, r0:r1] = (torch.fft.irfft(f_a * spec_c, n=n)[..., t - 1 : 2 * t - 1] * ut[:, :, None]).sum(3)
        torch.mul(fq[:, :, r0:r1, None, :], ut[:, :, None], out=cols[..., :t])  # G, in the same buffer
        f_g = torch.fft.rfft(cols)  # [B, H, mc, E, F]
        corr += (f_g.conj() * f_a).sum((0, 2, 3))
        del f_a
        d_a = torch.fft.irfft(f_g * spec_ct, n=n)[..., t - 1 : 2 * t - 1]
        del f_g
        d_fk[:, :, r0:r1] = (d_a * vt[:, :, None]).sum(3)
        d_vt += (d_a * fk[:, :, r0:r1, None, :]).sum(2)
    lags = torch.fft.irfft(corr, n=n)  # lags[s mod n] = sum_i G_i A_{i+s}
    d_c = torch.cat((lags[:, n - t + 1 :], lags[:, :t]), dim=-1)
    grads = (d_fq.transpose(-1, -2), d_fk.transpose(-1, -2), d_vt.transpose(-1, -2), d_c)
    return tuple(g.to(dtype) for g in grads)


def _hankel(c: Tensor, j0: int, rows: int, cols: int) -> Tensor:
    """The [H, rows, cols] view c[h, j0 + i' + jj]: the coefficient block of keys j0.. against queries read in
    reverse (i' = T - 1 - i), where the Toeplitz block becomes a Hankel one, a plain strided view of c."""
    return c[:, j0:].as_strided((c.shape[0], rows, cols), (c.stride(0), c.stride(1), c.stride(1)))


def _rows(t: int, j0: int, causal: bool) -> int:
    """Reversed query rows that can see key block j0: all, or for causal the queries i >= j0 (i' < T - j0)."""
    return t - j0 if causal else t


def direct_forward(phi_q: Tensor, phi_k: Tensor, v1: Tensor, c: Tensor, causal: bool) -> Tensor:
    """Y by blocked direct products over key blocks, O(T * DIRECT_BLOCK) extra memory."""
    t = phi_q.shape[2]
    fq = phi_q.flip(2)
    out = torch.zeros(v1.shape, dtype=v1.dtype, device=v1.device)
    for j0 in range(0, t, DIRECT_BLOCK):
        j1 = min(j0 + DIRECT_BLOCK, t)
        rows = _rows(t, j0, causal)
        s = fq[:, :, :rows] @ phi_k[:, :, j0:j1].transpose(-1, -2)  # [B, H, rows, bk]
        s *= _hankel(c, j0, rows, j1 - j0)
        out[:, :, :rows] += s @ v1[:, :, j0:j1]  # [B, H, rows, E]
    return out.flip(2)


def direct_backward(
    phi_q: Tensor, phi_k: Tensor, v1: Tensor, c: Tensor, u: Tensor, causal: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of phi_q, phi_k, v1 and c, block by block; dc sums the anti-diagonals of each block's dL/dC."""
    h, t = c.shape[0], phi_q.shape[2]
    fq, ur = phi_q.flip(2), u.flip(2)
    d_fq = torch.zeros_like(fq)
    d_fk, d_v1 = torch.empty_like(phi_k), torch.empty_like(v1)
    d_c = torch.zeros_like(c)
    block = min(DIRECT_BLOCK, t)
    diag = (torch.arange(t, device=c.device)[:, None] + torch.arange(block, device=c.device)[None, :]).flatten()
    for j0 in range(0, t, DIRECT_BLOCK):
        j1 = min(j0 + DIRECT_BLOCK, t)
        rows, bk = _rows(t, j0, causal), j1 - j0
        coef = _hankel(c, j0, rows, bk)
        s = fq[:, :, :rows] @ phi_k[:, :, j0:j1].transpose(-1, -2)  # [B, H, rows, bk]
        d_m = ur[:, :, :rows] @ v1[:, :, j0:j1].transpose(-1, -2)  # [B, H, rows, bk]
        d_v1[:, :, j0:j1] = (s * coef).transpose(-1, -2) @ ur[:, :, :rows]  # [B, H, bk, E]
        d_coef = (d_m * s).sum(0).reshape(h, rows, bk)
        index = diag.view(t, block)[:rows, :bk].reshape(1, -1).expand(h, -1)
        d_c[:, j0:].scatter_add_(1, index, d_coef.reshape(h, -1))
        d_m *= coef
        d_fq[:, :, :rows] += d_m @ phi_k[:, :, j0:j1]  # [B, H, rows, m]
        d_fk[:, :, j0:j1] = d_m.transpose(-1, -2) @ fq[:, :, :rows]  # [B, H, bk, m]
    return d_fq.flip(2), d_fk, d_v1, d_c
