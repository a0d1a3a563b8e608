"""The one tolerance table, per output dtype, shared by the tests and `accelkit demo`. Never loosened per test."""

import numpy as np
import torch

# (atol, rtol) per output dtype: rtol is about the dtype's unit roundoff times a small accumulation factor.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 2e-6),
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (1e-2, 8e-3),
}
EXACT = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)


def outside(ref: np.ndarray, out: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Boolean mask of the elements of `out` outside the tolerance of `dtype` around the oracle `ref`."""
    if dtype in EXACT:
        return ref != out
    atol, rtol = TOLERANCES[dtype]
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    return ~(np.abs(out64 - ref64) <= atol + rtol * np.abs(ref64))
