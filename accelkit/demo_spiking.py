"""The spiking part of `accelkit demo`: the LIF, IF and PLIF neurons and QSD's multi-level spikes against their
float64 oracle (kernels/spiking/reference.py), on the C++ path and, where triton is installed, the Triton kernels."""

from collections.abc import Callable

from accelkit._optional import available

Check = tuple[str, str, tuple[float, bool]]
# T = 7 steps of 3 x 37 neurons (odd, not a power of 2): small enough for the Triton interpreter.
T, B, N = 7, 3, 37


def _inputs(gen):
    import torch

    # Multiples of 1/16, so the fp32 membrane is exact and the spikes can be compared with the oracle exactly.
    x = (torch.randint(-12, 28, (T, B, N), generator=gen) / 16.0).requires_grad_()
    grad = torch.randint(-16, 16, (T, B, N), generator=gen) / 16.0
    return x, grad


def _neuron_checks(check: Callable, gen) -> list[Check]:
    import torch

    from accelkit import ops
    from accelkit.kernels.spiking import reference as ref

    rows = []
    for name, kind, call, decay in (
        ("lif", "lif", lambda x: ops.lif(x, return_v=True), 0.5),
        ("if_neuron soft reset", "if", lambda x: ops.if_neuron(x, v_reset=None, surrogate="atan", return_v=True), 0.0),
    ):
        x, grad = _inputs(gen)
        spikes, v = call(x)
        (spikes * grad).sum().backward()
        x64 = x.detach().double().reshape(T, -1).numpy()
        opts = dict(kind=kind, decay=decay, v_reset=None if kind == "if" else 0.0)
        s_ref, v_ref, _ = ref.neuron_forward(x64, **opts)
        surrogate = "atan" if kind == "if" else "sigmoid"
        gx, _, _ = ref.neuron_backward(x64, None, grad.double().reshape(T, -1).numpy(), surrogate=surrogate, **opts)
        rows += [
            (f"{name} spikes", "cpu (C++)", check(s_ref, spikes.reshape(T, -1))),
            (f"{name} v_seq", "cpu (C++)", check(v_ref, v.reshape(T, -1))),
            (f"{name} grad x", "cpu (C++)", check(gx, x.grad.reshape(T, -1))),
        ]
    x, grad = _inputs(gen)
    w = torch.zeros(1, requires_grad=True)
    (ops.plif(x, w, detach_reset=True) * grad).sum().backward()
    x64 = x.detach().double().reshape(T, -1).numpy()
    g64 = grad.double().reshape(T, -1).numpy()
    _, _, g_decay = ref.neuron_backward(x64, None, g64, decay=0.5, detach_reset=True)
    rows.append(("plif grad w", "cpu (C++)", check(_ref_array(g_decay * 0.25), w.grad)))
    z = torch.linspace(-1.0, 5.0, 49)
    rows.append(("multispike (QSD)", "cpu (PyTorch)", check(ref.multispike(z.double().numpy()), ops.multispike(z))))
    return rows


def _ref_array(value: float):
    import numpy as np

    return np.array([value])


def _triton_checks(check: Callable, gen) -> list[Check]:
    import torch

    from accelkit.kernels.spiking import reference as ref
    from accelkit.kernels.spiking.triton_kernels import neuron_backward_triton, neuron_forward_triton

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, grad = _inputs(gen)
    x2, g2 = x.detach().reshape(T, -1).to(device), grad.reshape(T, -1).to(device)
    decay = torch.tensor([0.5], device=device)
    opts = dict(decay_input=True, v_threshold=1.0, v_reset=0.0)
    spikes, _, _, h = neuron_forward_triton(x2, None, decay, **opts)
    gx, _, _ = neuron_backward_triton(
        x2, h, None, g2, None, None, decay, want_decay=False, surrogate="sigmoid", alpha=4.0, detach_reset=False,
        **opts,
    )  # fmt: skip
    x64, g64 = x2.double().cpu().numpy(), g2.double().cpu().numpy()
    s_ref, _, _ = ref.neuron_forward(x64)
    gx_ref, _, _ = ref.neuron_backward(x64, None, g64)
    return [
        ("lif spikes (Triton)", "triton", check(s_ref, spikes)),
        ("lif grad x (Triton)", "triton", check(gx_ref, gx)),
    ]


def spiking_checks(check: Callable) -> list[Check]:
    """Rows for the demo's oracle table: (op, backend, (max abs err, within tolerance))."""
    import torch

    gen = torch.Generator().manual_seed(2)
    triton_rows = _triton_checks(check, gen) if available("triton") else []
    return [*_neuron_checks(check, gen), *triton_rows]
