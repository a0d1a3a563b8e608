"""Public PyTorch ops. Importing this module imports torch and registers the accelkit:: ops."""

from accelkit.kernels.binary.op import binarize, binary_matmul, pack_bits, packed_binary_matmul

__all__ = ["binarize", "binary_matmul", "pack_bits", "packed_binary_matmul"]
