"""Kernelized attention with relative positional encoding in O(T log T) through the FFT (Luo et al., NeurIPS 2021)."""
