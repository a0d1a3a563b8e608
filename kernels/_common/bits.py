"""Bit helpers shared by the Triton kernels.

The population counts are SWAR (SIMD within a register) sequences of shifts, masks, adds and one multiply rather
than libdevice's popc, because the Triton interpreter cannot run libdevice calls; plain integer ops run in NumPy
there. Compiled, LLVM recognises this exact sequence as llvm.ctpop and the NVPTX backend emits one `popc.b32` or
`popc.b64` per word (Triton 3.9, sm_80 and sm_90; tests/test_gpu_build.py checks the PTX). The recognition is
pattern matching: the equivalent first step `(v & 0x55..) + ((v >> 1) & 0x55..)` is not folded and compiles to
the shifts, masks and adds as written, so keep the sequence as it is.
"""

import triton
import triton.language as tl


@triton.jit
def popcount32(x):
    """Set bits of each 32-bit word in `x` (int32 or uint32), as int32."""
    # Unsigned, so that `>>` shifts in zeros rather than copies of the sign bit.
    v = x.to(tl.uint32, bitcast=True)
    v = v - ((v >> 1) & 0x55555555)
    v = (v & 0x33333333) + ((v >> 2) & 0x33333333)
    v = (v + (v >> 4)) & 0x0F0F0F0F
    # The multiply sums the four byte counts into the top byte; the wrap-around of the lower bytes is intended.
    v = (v * 0x01010101) >> 24
    return v.to(tl.int32)


@triton.jit
def popcount64(x):
    """Set bits of each 64-bit word in `x` (int64 or uint64), as int32."""
    v = x.to(tl.uint64, bitcast=True)
    v = v - ((v >> 1) & 0x5555555555555555)
    v = (v & 0x3333333333333333) + ((v >> 2) & 0x3333333333333333)
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v * 0x0101010101010101) >> 56
    return v.to(tl.int32)


@triton.jit
def negative_bit(x):
    """1 where x is not >= 0 (negative or NaN), else 0, as int32: the packing convention's set bit.

    The float sign bit is not used: -0.0 has it set but counts as +1 here (sign(0) = +1), and a NaN with a clear
    sign bit must still count as -1, matching the reference's `~(x >= 0)`.
    """
    if x.dtype.primitive_bitwidth == 16:
        # The interpreter stores bfloat16 as raw uint16 and compares bit patterns (every bf16 then reads >= 0);
        # widening to fp32 is exact for fp16 and bf16, so it changes nothing on a GPU. fp64 stays as it is:
        # narrowing it would round tiny negatives such as -1e-300 to -0.0 and flip their bit.
        x = x.to(tl.float32)
    return tl.where(x >= 0, 0, 1)


@triton.jit
def popcount(x, WIDTH: tl.constexpr):
    """popcount32 or popcount64 by word width, chosen at compile time."""
    if WIDTH == 64:
        count = popcount64(x)
    else:
        count = popcount32(x)
    return count
