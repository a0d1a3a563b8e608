"""The delta-rule part of `accelkit demo`: DeltaNet and gated DeltaNet (ops.delta_rule) against the float64 oracle,
chunk and recurrent modes, forward and every gradient, and the Triton launchers where triton is installed."""

from collections.abc import Callable

Check = tuple[str, str, tuple[float, bool]]
# Two packed sequences (one shorter than a chunk), K != V, neither a power of 2: small enough for the interpreter.
LENS, H, K, V = (5, 40), 2, 20, 12


def _inputs(gen, gated: bool):
    import torch
    import torch.nn.functional as F

    t = sum(LENS)
    q = torch.randn(1, t, H, K, generator=gen)
    k = F.normalize(torch.randn(1, t, H, K, generator=gen), dim=-1)
    v = torch.randn(1, t, H, V, generator=gen) * V**-0.5
    beta = torch.sigmoid(torch.randn(1, t, H, generator=gen))
    g = F.logsigmoid(torch.randn(1, t, H, generator=gen) + 2) if gated else None
    h0 = torch.randn(len(LENS), H, K, V, generator=gen) * V**-0.5
    cu = torch.tensor([0, LENS[0], t], dtype=torch.int64)
    return q, k, v, beta, g, h0, cu


def _op_rows(check: Callable, gen, gated: bool, mode: str) -> list[Check]:
    import torch

    from accelkit import ops
    from accelkit.kernels.delta_rule import reference as ref

    q, k, v, beta, g, h0, cu = _inputs(gen, gated)
    leaves = [x.clone().requires_grad_() for x in (q, k, v, beta, h0)]
    g_leaf = None if g is None else g.clone().requires_grad_()
    o, ht = ops.delta_rule(*leaves[:4], g=g_leaf, initial_state=leaves[4], cu_seqlens=cu, output_final_state=True,
                           chunk_size=16, mode=mode)  # fmt: skip
    do, dht = torch.randn(o.shape, generator=gen), torch.randn(ht.shape, generator=gen)
    torch.autograd.backward((o, ht), (do, dht))
    args = [x.numpy() for x in (q, k, v, beta)]
    kw = {"g": None if g is None else g.numpy(), "initial_state": h0.numpy(), "cu_seqlens": cu.numpy()}
    o_ref, ht_ref = ref.recurrence(*args, **kw)
    grads = ref.recurrence_backward(do.numpy(), dht.numpy(), *args, **kw)
    name = f"{'gated_' if gated else ''}delta_rule {mode}"
    backend = "cpu (PyTorch)"
    rows = [(f"{name} fwd", backend, check(o_ref, o)), (f"{name} state", backend, check(ht_ref, ht))]
    for label, want, leaf in zip(("dq", "dk", "dv", "dbeta"), grads, leaves, strict=False):
        rows.append((f"{name} {label}", backend, check(want, leaf.grad)))
    rows.append((f"{name} dh0", backend, check(grads[5], leaves[4].grad)))
    if g_leaf is not None:
        rows.append((f"{name} dg", backend, check(grads[4], g_leaf.grad)))
    return rows


def _triton_rows(check: Callable, gen) -> list[Check]:
    """The chunk kernels (forward and backward) through the launchers: the interpreter here, compiled on a GPU."""
    import torch

    from accelkit.kernels.delta_rule import reference as ref
    from accelkit.kernels.delta_rule.args import check_args
    from accelkit.kernels.delta_rule.triton_launch import delta_rule_bwd, delta_rule_fwd

    device = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v, beta, g, h0, cu = (None if x is None else x.to(device) for x in _inputs(gen, True))
    p = check_args(q, k, v, beta, g=g, initial_state=h0, cu_seqlens=cu, chunk_size=16)
    cu_list = cu.tolist()
    o, ht = delta_rule_fwd(q, k, v, beta, g, h0, cu_list, p)
    do, dht = torch.randn(o.shape, device=device), torch.randn(ht.shape, device=device)
    grads = delta_rule_bwd(do, dht, q, k, v, beta, g, h0, cu_list, p)
    args = [x.cpu().numpy() for x in (q, k, v, beta)]
    kw = {"g": g.cpu().numpy(), "initial_state": h0.cpu().numpy(), "cu_seqlens": cu.cpu().numpy()}
    o_ref, _ = ref.recurrence(*args, **kw)
    want = ref.recurrence_backward(do.cpu().numpy(), dht.cpu().numpy(), *args, **kw)
    rows = [("gated_delta_rule fwd (Triton)", "triton", check(o_ref, o))]
    for label, w, got in zip(("dq", "dk", "dv", "dbeta", "dg", "dh0"), want, grads, strict=True):
        rows.append((f"gated_delta_rule {label} (Triton)", "triton", check(w, got)))
    return rows


def delta_rule_checks(check: Callable, *, triton: bool) -> list[Check]:
    """Rows for the demo's oracle table: (op, backend, (max abs err, within tolerance)); the Triton rows only with
    `triton` (the demo's own check that triton is installed)."""
    import torch

    gen = torch.Generator().manual_seed(8)
    rows = [*_op_rows(check, gen, False, "chunk"), *_op_rows(check, gen, True, "chunk"),
            *_op_rows(check, gen, True, "recurrent")]  # fmt: skip
    return rows + (_triton_rows(check, gen) if triton else [])
