"""Packed sign words: words per K, word size from dtype and dtype from word size, and the checks of `k` and
`word_bits`. The one copy used by the ops, every launcher (C++, CUDA C, Triton), the oracle and the benchmarks, so
the same mistake gets the same error, naming the argument, on every path.

Errors follow one rule (kernels/_common/checks.py too): TypeError when an argument has the wrong Python type (a
float or bool where an int is needed, a list where a tensor is needed), ValueError when the type is right and the
value is not (dtype, shape, device, range).

Torch is imported only by the dtype helpers, so the NumPy oracle can use `num_words` without it.
"""

from __future__ import annotations

import operator
import sys
from typing import Any

WORD_BITS = (32, 64)
# Results are int32 dot products in [-k, k], and the Triton and CUDA C kernels take k as a 32-bit integer.
K_MAX = 2**31 - 1


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for b > 0, exact for Python ints of any size."""
    return -(-a // b)


def num_words(k: int, word_bits: int) -> int:
    """Words of `word_bits` bits needed for k elements; 0 for k = 0."""
    return ceil_div(k, word_bits)


def as_int(value: Any, name: str) -> int:
    """`value` as a Python int. ints, NumPy integers and torch.SymInt pass; bool, float, tensors and everything else
    raise TypeError naming `name`."""
    if type(value) is int:
        return value
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.SymInt):
        return value
    if isinstance(value, bool) or (torch is not None and isinstance(value, torch.Tensor)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.bool_):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def check_word_bits(word_bits: Any, name: str = "word_bits") -> int:
    """word_bits as an int, 32 or 64; TypeError for a non-int (64.0, True), ValueError for another int."""
    bits = as_int(word_bits, name)
    if bits not in WORD_BITS:
        raise ValueError(f"{name} must be 32 or 64, got {bits}")
    return bits


def word_dtype(word_bits: Any, name: str = "word_bits"):
    """The torch dtype that carries words of `word_bits` bits: int32 or int64 (torch has no uint32/uint64
    arithmetic, so words travel as signed integers holding the bit pattern)."""
    from accelkit.kernels._common.dtypes import WORD_DTYPES

    return WORD_DTYPES[check_word_bits(word_bits, name)]


def word_bits_of(dtype: Any, name: str) -> int:
    """Bits per packed word held by `dtype`: 32 for int32, 64 for int64 (torch dtypes), and for NumPy or CuPy
    dtypes any 32- or 64-bit integer. ValueError naming `name` otherwise."""
    try:
        import torch

        if isinstance(dtype, torch.dtype):
            bits = {torch.int32: 32, torch.int64: 64}.get(dtype)
            if bits is None:
                raise ValueError(f"{name} must hold packed words as int32 or int64, got {dtype}")
            return bits
    except ImportError:  # pragma: no cover - NumPy/CuPy-only callers
        pass
    import numpy as np

    np_dtype = np.dtype(dtype)
    if np_dtype.kind not in "iu" or np_dtype.itemsize not in (4, 8):
        raise ValueError(f"{name} must hold packed words as int32 or int64, got {np_dtype}")
    return 8 * np_dtype.itemsize


def check_k(k: Any, words: int, word_bits: int, name: str = "k") -> int:
    """k as an int that needs exactly `words` words of `word_bits` bits (so no element is read as padding and no
    padding as an element) and fits an int32 result; TypeError for a non-int, ValueError otherwise."""
    k = as_int(k, name)
    if type(k) is not int:  # a torch.SymInt while tracing: the kernels check the value when they run
        return k
    hi = words * word_bits
    lo = (words - 1) * word_bits if words else -1
    if not (lo < k <= hi) or k < 0:
        need = "k = 0" if words == 0 else f"{lo} < k <= {hi}"
        raise ValueError(f"{name}={k} does not fit {words} words of {word_bits} bits: need {need}")
    if k > K_MAX:
        raise ValueError(f"{name}={k} is over {K_MAX}: dot products of that length do not fit an int32 result")
    return k
