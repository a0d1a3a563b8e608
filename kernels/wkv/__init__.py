"""SpikeGPT's WKV (the RWKV-4 time mix): `reference` the float64 oracles, `cpu` the C++ launchers, `triton_kernels`
the GPU/interpreter kernels, `op` the torch.library op. See README.md."""
