"""Lean Attention: stream-K decode attention over long, ragged, paged KV caches, and Flash-Decoding's fixed split-KV
as its baseline. `schedule` is the partition (pure NumPy), `triton_kernels` the GPU/interpreter kernels, `op` the
torch.library ops; the C++ CPU path is `cpu`. See README.md."""
