"""The attention part of `accelkit demo`: flash, lean and split-KV attention against the float64 oracle, and a small
decode timing against torch SDPA."""

from collections.abc import Callable

from accelkit._optional import available

Check = tuple[str, str, tuple[float, bool]]
# Odd, non-power-of-2 sizes with GQA (H_q = 4, H_kv = 2): small enough for the Triton interpreter.
B, T_Q, T_K, H_Q, H_KV, D = 2, 37, 45, 4, 2, 32


def _qkv(gen, t_q: int = T_Q, t_k: int = T_K):
    import torch

    q = torch.randn(B, t_q, H_Q, D, generator=gen)
    k, v = (torch.randn(B, t_k, H_KV, D, generator=gen) for _ in range(2))
    return q, k, v


def _flash_checks(check: Callable, gen) -> list[Check]:
    """flash_attention on CPU, causal, forward and the three gradients through autograd."""
    import torch

    from accelkit import ops
    from accelkit.kernels.attention import reference as ref

    q, k, v = (x.requires_grad_() for x in _qkv(gen))
    out = ops.flash_attention(q, k, v, causal=True)
    do = torch.randn(out.shape, generator=gen)
    out.backward(do)
    qn, kn, vn = (x.detach().numpy() for x in (q, k, v))
    o_ref, lse_ref = ref.attention(qn, kn, vn, causal=True)
    dq, dk, dv = ref.attention_bwd(qn, kn, vn, o_ref, lse_ref, do.numpy(), causal=True)
    backend = "cpu (PyTorch)"
    return [
        ("flash_attention fwd", backend, check(o_ref, out)),
        ("flash_attention dq", backend, check(dq, q.grad)),
        ("flash_attention dk", backend, check(dk, k.grad)),
        ("flash_attention dv", backend, check(dv, v.grad)),
    ]


def _decode_inputs(gen):
    """One new token per sequence over a ragged KV cache of 45 slots (23 and 45 valid keys)."""
    import torch

    q = torch.randn(B, H_Q, D, generator=gen)
    k, v = (torch.randn(B, T_K, H_KV, D, generator=gen) for _ in range(2))
    return q, k, v, torch.tensor([23, T_K], dtype=torch.int32)


def _decode_checks(check: Callable, gen) -> list[Check]:
    from accelkit import ops
    from accelkit.kernels.attention import reference as ref

    q, k, v, lens = _decode_inputs(gen)
    o_ref, _ = ref.decode_attention(q.numpy(), k.numpy(), v.numpy(), lens.numpy())
    return [
        ("lean_attention", "cpu (C++)", check(o_ref, ops.lean_attention(q, k, v, lens, num_programs=3))),
        ("split_kv_attention", "cpu (C++)", check(o_ref, ops.split_kv_attention(q, k, v, lens, num_splits=3))),
    ]


def _triton_checks(check: Callable, gen) -> list[Check]:
    """The Triton flash forward and the lean launcher, run by the interpreter here (compiled on a GPU)."""
    import torch

    from accelkit.kernels.attention import reference as ref
    from accelkit.kernels.flash_attention.triton_kernels import flash_attn_fwd
    from accelkit.kernels.lean_attention.triton_kernels import lean_attention_triton

    device = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v = _qkv(gen, 9, 21)
    out, _ = flash_attn_fwd(q.to(device), k.to(device), v.to(device), causal=True)
    o_ref, _ = ref.attention(q.numpy(), k.numpy(), v.numpy(), causal=True)
    dq, dk, dv, lens = _decode_inputs(gen)
    dec, _ = lean_attention_triton(
        dq[:, None].to(device), dk.to(device), dv.to(device), lens.to(device), None, D**-0.5, 3
    )
    dec_ref, _ = ref.decode_attention(dq.numpy(), dk.numpy(), dv.numpy(), lens.numpy())
    return [
        ("flash_attention fwd (Triton)", "triton", check(o_ref, out)),
        ("lean_attention (Triton)", "triton", check(dec_ref, dec[:, 0])),
    ]


def attention_checks(check: Callable) -> list[Check]:
    """Rows for the demo's oracle table: (op, backend, (max abs err, within tolerance))."""
    import torch

    gen = torch.Generator().manual_seed(1)
    triton_rows = _triton_checks(check, gen) if available("triton") else []
    return [*_flash_checks(check, gen), *_decode_checks(check, gen), *triton_rows]


def decode_bench(t: int = 8192, repeats: int = 10) -> list[tuple[str, str]]:
    """ops.lean_attention against torch SDPA on one token over a float32 cache of t keys, B = 1, H = 8, D = 64."""
    import torch
    import torch.nn.functional as F

    from accelkit import ops
    from accelkit.timing import sample_seconds

    h, d = 8, 64
    q = torch.randn(1, h, d)
    k, v = torch.randn(1, t, h, d), torch.randn(1, t, h, d)
    lens = torch.tensor([t], dtype=torch.int32)
    # SDPA reads the same cache as [B, H, T, D] views, what a user holding this cache would pass.
    q4, k4, v4 = q[:, :, None], k.transpose(1, 2), v.transpose(1, 2)
    ours = min(sample_seconds(lambda: ops.lean_attention(q, k, v, lens), repeats, warmup=1))
    peer = min(sample_seconds(lambda: F.scaled_dot_product_attention(q4, k4, v4), repeats, warmup=1))
    return [
        ("problem", f"B = 1, H = {h}, T = {t}, D = {d}, float32, one new token"),
        ("ops.lean_attention", f"{ours * 1e3:8.3f} ms"),
        ("torch SDPA", f"{peer * 1e3:8.3f} ms"),
        ("ratio (SDPA / ours)", f"{peer / ours:8.2f}x  (full size: python bench/run.py decode_attention)"),
    ]
