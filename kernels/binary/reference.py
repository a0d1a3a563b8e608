"""NumPy float64 / integer oracle for binary (XNOR/popcount) ops. Importable by tests, benchmarks and users.

Conventions, shared by every backend (see README.md for the derivation):
- sign(x) = +1 for x >= 0 and -1 otherwise, so sign(0) = +1 (and sign(NaN) = -1, since NaN >= 0 is false).
- Packing runs along the last axis K. Bit j of word w holds element w * WORD + j (LSB first); a set bit means -1.
  When K is not a multiple of WORD, the last word's high bits are padding and are 0 (+1) in every operand, so
  they xor to 0 and never reach a popcount; the true K enters the dot product instead.
- For a, w in {+1, -1}^K with bits A, W: a . w = K - 2 * popcount(A xor W).
- Weights follow nn.Linear: w is [N, K] and the matmul is sign(a) @ sign(w).T, so both operands pack along K.

Traffic of the packed GEMM on [M, K] x [N, K]: M*K/8 + N*K/8 bytes in, 4*M*N bytes out, M*N*K binary MACs,
done as M*N*K/WORD xor+popcount pairs.
"""

import numpy as np

from accelkit.kernels._common.words import num_words

WORD_BITS = (32, 64)
_WORD_DTYPE = {32: np.uint32, 64: np.uint64}


def sign(x: np.ndarray) -> np.ndarray:
    """+1 where x >= 0, else -1, as float64."""
    return np.where(np.asarray(x) >= 0, 1.0, -1.0)


def pack_bits(x: np.ndarray, word_bits: int = 32) -> np.ndarray:
    """[..., K] real -> [..., ceil(K / word_bits)] uint32/uint64; bit 1 marks a negative element (sign -1)."""
    if word_bits not in WORD_BITS:
        raise ValueError(f"word_bits must be 32 or 64, got {word_bits}")
    x = np.asarray(x)
    k = x.shape[-1]
    w = num_words(k, word_bits)
    bits = np.zeros((*x.shape[:-1], w * word_bits), dtype=np.uint64)
    bits[..., :k] = ~(x >= 0)
    bits = bits.reshape(*x.shape[:-1], w, word_bits)
    weights = np.left_shift(np.uint64(1), np.arange(word_bits, dtype=np.uint64))
    return (bits * weights).sum(axis=-1, dtype=np.uint64).astype(_WORD_DTYPE[word_bits])


def unpack_bits(words: np.ndarray, k: int, word_bits: int = 32) -> np.ndarray:
    """Inverse of pack_bits: [..., W] words -> [..., k] in {+1, -1} float64."""
    words = np.asarray(words).astype(np.uint64)
    shifts = np.arange(word_bits, dtype=np.uint64)
    bits = (words[..., :, None] >> shifts) & np.uint64(1)
    bits = bits.reshape(*words.shape[:-1], -1)[..., :k]
    return 1.0 - 2.0 * bits.astype(np.float64)


def popcount(words: np.ndarray) -> np.ndarray:
    """Per-element count of set bits, as int64."""
    words = np.asarray(words)
    as_bytes = words.astype(words.dtype.newbyteorder("<")).view(np.uint8).reshape(*words.shape, words.dtype.itemsize)
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1, dtype=np.int64)


def xnor_popcount_matmul(a_bits: np.ndarray, w_bits: np.ndarray, k: int) -> np.ndarray:
    """Packed [..., W] x packed [N, W] -> int64 [..., N] dot products of the +-1 vectors they encode."""
    a_bits, w_bits = np.asarray(a_bits), np.asarray(w_bits)
    diff = popcount(a_bits[..., None, :] ^ w_bits)
    return k - 2 * diff.sum(axis=-1)


def spike_matmul(s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spikes s in {0, 1}^[..., K] times +-1 weights sign(w) [N, K] -> float64 [..., N]."""
    return np.asarray(s, dtype=np.float64) @ sign(w).T


def spike_and_popcount_matmul(s_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """The AND-popcount form of spike_matmul on packed operands.

    s_bits packs the spikes with bit 1 = spike (pack_bits(-s) gives that layout); w_bits packs weights with
    bit 1 = -1. A spike meets +1 or -1, so s . w = popcount(S) - 2 * popcount(S and W); no K is needed because
    padding bits of S are 0.
    """
    s_bits, w_bits = np.asarray(s_bits), np.asarray(w_bits)
    fired = popcount(s_bits).sum(axis=-1)[..., None]
    negative = popcount(s_bits[..., None, :] & w_bits).sum(axis=-1)
    return fired - 2 * negative


def binary_matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sign(a) [..., K] @ sign(w).T with w [N, K] -> float64 [..., N]."""
    return sign(a) @ sign(w).T


def ste_mask(x: np.ndarray) -> np.ndarray:
    """Straight-through estimator: d sign(x)/dx is taken as 1 where |x| <= 1 and 0 elsewhere."""
    return (np.abs(np.asarray(x, dtype=np.float64)) <= 1.0).astype(np.float64)


def binary_matmul_bwd(a: np.ndarray, w: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of binary_matmul through the STE: (grad_a [..., K], grad_w [N, K])."""
    grad = np.asarray(grad, dtype=np.float64)
    grad_a = (grad @ sign(w)) * ste_mask(a)
    # Explicit row count: reshape(-1, 0) cannot infer the -1 when K = 0 or N = 0.
    rows = int(np.prod(np.shape(a)[:-1]))
    rows_g = grad.reshape(rows, grad.shape[-1])
    rows_a = sign(a).reshape(rows, np.shape(a)[-1])
    grad_w = (rows_g.T @ rows_a) * ste_mask(w)
    return grad_a, grad_w


def channel_scale(x: np.ndarray) -> np.ndarray:
    """XNOR-Net's alpha = mean |x| over every axis but the first (the output channel), kept broadcastable."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    if x.ndim < 2:
        raise ValueError("channel scaling needs at least 2 dims [N, ...]")
    return x.mean(axis=tuple(range(1, x.ndim)), keepdims=True)


def _scale(x: np.ndarray, scale: str | None) -> np.ndarray | float:
    if scale is None:
        return 1.0
    if scale == "tensor":
        return np.abs(np.asarray(x, dtype=np.float64)).mean()
    if scale == "channel":
        return channel_scale(x)
    raise ValueError(f"scale must be None, 'tensor' or 'channel', got {scale!r}")


def binarize(x: np.ndarray, scale: str | None = None) -> np.ndarray:
    """alpha * sign(x), alpha = 1 (None), mean |x| ('tensor') or per output channel mean |x| ('channel')."""
    return _scale(x, scale) * sign(x)


def binarize_bwd(x: np.ndarray, grad: np.ndarray, scale: str | None = None) -> np.ndarray:
    """Gradient of binarize: the STE term alpha * g * 1{|x| <= 1}, plus, when alpha depends on x,
    d alpha / dx_j = sign(x_j) / n times sum_i g_i sign(x_i) over the n elements alpha averages."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.asarray(grad, dtype=np.float64)
    s = sign(x)
    out = _scale(x, scale) * grad * ste_mask(x)
    if scale == "tensor":
        out = out + s * (grad * s).sum() / x.size
    elif scale == "channel":
        axes = tuple(range(1, x.ndim))
        n = int(np.prod(x.shape[1:]))
        out = out + s * (grad * s).sum(axis=axes, keepdims=True) / n
    return out
