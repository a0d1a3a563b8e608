"""Spike-driven self-attention (SDSA V1/V2) and the {0,1}-spike x {+1,-1}-weight matmul: `reference` the float64
oracles and popcount forms, `op` the torch.library ops. See README.md."""
