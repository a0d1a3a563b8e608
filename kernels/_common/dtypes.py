"""Dtypes shared by the ops, their launchers and the tests."""

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# Packed sign words by word size. Torch has no unsigned 32/64-bit arithmetic, so words travel as signed integers
# holding the bit pattern.
WORD_DTYPES = {32: torch.int32, 64: torch.int64}
