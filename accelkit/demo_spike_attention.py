"""The spike-attention part of `accelkit demo`: SDSA V1/V2, the spike x binary matmul and SpikeGPT's WKV against
their float64 oracles (kernels/spike_attention/reference.py, kernels/wkv/reference.py), on the CPU paths and, where
triton is installed, WKV's Triton kernels."""

from collections.abc import Callable

from accelkit._optional import available

Check = tuple[str, str, tuple[float, bool]]
# SDSA: T = 4 steps, B = 2, H = 3 heads, N = 37 tokens, D = 13 channels (odd, not powers of 2).
SHAPE = (4, 2, 3, 37, 13)
# WKV: B = 2 sequences of T = 45 steps, C = 70 channels (past one 64-channel Triton block).
B, T, C = 2, 45, 70


def _spikes(gen, shape, rate: float = 0.3):
    import torch

    return (torch.rand(shape, generator=gen) < rate).float().requires_grad_()


def _sdsa_checks(check: Callable, gen) -> list[Check]:
    import torch

    from accelkit import ops
    from accelkit.kernels.spike_attention import reference as ref

    rows = []
    for name, fn, ref_fwd, ref_grads in (
        ("sdsa_v1", ops.sdsa_v1, ref.sdsa_v1, ref.sdsa_v1_grads),
        ("sdsa_v2", ops.sdsa_v2, ref.sdsa_v2, ref.sdsa_v2_grads),
    ):
        q, k, v = (_spikes(gen, SHAPE) for _ in range(3))
        grad = torch.randn(SHAPE, generator=gen)
        out = fn(q, k, v)
        out.backward(grad)
        args = [x.detach().double().numpy() for x in (q, k, v)]
        gq, gk, gv = ref_grads(*args, grad.double().numpy())
        backend = "cpu (C++ LIF)" if name == "sdsa_v1" else "cpu (PyTorch)"
        rows += [
            (f"{name} fwd", backend, check(ref_fwd(*args), out)),
            (f"{name} grad q", backend, check(gq, q.grad)),
            (f"{name} grad k", backend, check(gk, k.grad)),
            (f"{name} grad v", backend, check(gv, v.grad)),
        ]
    s = _spikes(gen, (9, 130)).detach()
    w = torch.randn(11, 130, generator=gen)
    want = ref.spike_binary_matmul(s.double().numpy(), w.double().numpy())
    rows.append(("spike_binary_matmul", "cpu (C++ popcount)", check(want, ops.spike_binary_matmul(s, w))))
    return rows


def _wkv_inputs(gen):
    import torch

    w = -torch.randn(C, generator=gen).exp()
    u = torch.randn(C, generator=gen)
    k, v, gy = (torch.randn(B, T, C, generator=gen) for _ in range(3))
    return w, u, k, v, gy


def _wkv_checks(check: Callable, gen) -> list[Check]:
    from accelkit import ops
    from accelkit.kernels.wkv import reference as ref

    w, u, k, v, gy = _wkv_inputs(gen)
    args = [x.requires_grad_() for x in (w, u, k, v)]
    y = ops.wkv(*args)
    y.backward(gy)
    arrays = [x.detach().double().numpy() for x in (w, u, k, v)]
    grads = ref.wkv_grads(*arrays, gy.double().numpy())
    rows = [("wkv fwd", "cpu (C++)", check(ref.wkv(*arrays), y))]
    rows += [(f"wkv grad {n}", "cpu (C++)", check(g, x.grad)) for n, x, g in zip("wukv", args, grads, strict=True)]
    if available("triton"):
        from accelkit.kernels.wkv.triton_kernels import wkv_bwd, wkv_fwd

        plain = [x.detach() for x in args]
        rows.append(("wkv fwd", "triton", check(ref.wkv(*arrays), wkv_fwd(*plain))))
        rows.append(("wkv grad k", "triton", check(grads[2], wkv_bwd(*plain, gy)[2])))
    return rows


def spike_attention_checks(check: Callable) -> list[Check]:
    """Rows for the demo's oracle table: (op, backend, (max abs err, within tolerance))."""
    import torch

    gen = torch.Generator().manual_seed(3)
    return [*_sdsa_checks(check, gen), *_wkv_checks(check, gen)]
