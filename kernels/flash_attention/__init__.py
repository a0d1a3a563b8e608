"""FlashAttention-2: forward and backward as one torch op (op.py), Triton kernels (CUDA) and a CPU path."""
