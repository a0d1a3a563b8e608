"""Delta rule (DeltaNet) and gated delta rule: chunked and recurrent forms as one torch op (op.py), Triton kernels
and a CPU path."""
