"""Public PyTorch ops. Importing this module imports torch and registers the accelkit:: ops."""

from accelkit.kernels.binary.op import binarize, binary_matmul, pack_bits, packed_binary_matmul
from accelkit.kernels.delta_rule.op import delta_rule
from accelkit.kernels.fft_rpe.op import rpe_kernel_attention
from accelkit.kernels.flash_attention.op import flash_attention
from accelkit.kernels.lean_attention.op import lean_attention, split_kv_attention
from accelkit.kernels.spike_attention.op import sdsa_v1, sdsa_v2, spike_binary_matmul
from accelkit.kernels.spiking.op import if_neuron, lif, multispike, plif
from accelkit.kernels.wkv.op import wkv

__all__ = [
    "binarize",
    "binary_matmul",
    "delta_rule",
    "flash_attention",
    "if_neuron",
    "lean_attention",
    "lif",
    "multispike",
    "pack_bits",
    "packed_binary_matmul",
    "plif",
    "rpe_kernel_attention",
    "sdsa_v1",
    "sdsa_v2",
    "spike_binary_matmul",
    "split_kv_attention",
    "wkv",
]
