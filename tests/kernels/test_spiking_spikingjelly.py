"""External check: accelkit's neurons against SpikingJelly 2.0.0's LIFNode / IFNode / ParametricLIFNode
(step_mode='m', its torch backend, the CPU path) on the same inputs: identical spikes, membrane and gradients (x,
v_init through the stored membrane, w) within fp32's tolerance, for every surrogate both libraries share (Sigmoid,
ATan, PiecewiseQuadratic = our "triangle"), hard and soft reset, detach_reset, decay_input. Also the modules'
state: kept between calls until reset(), as SpikingJelly's."""

import pytest
import torch
from tolerance import assert_close

from accelkit import nn as ak_nn
from accelkit import ops

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

SURROGATES = {"sigmoid": "Sigmoid", "atan": "ATan", "triangle": "PiecewiseQuadratic"}
NODES = {"lif": ("LIFNode", "tau"), "if": ("IFNode", None), "plif": ("ParametricLIFNode", "init_tau")}


def _pair(kind, surrogate, alpha, **kwargs):
    sj_cls, tau_name = NODES[kind]
    sur_kwargs = {} if alpha is None else {"alpha": alpha}
    sj_sur = getattr(sj_surrogate, SURROGATES[surrogate])(**sur_kwargs)
    ours_sur = getattr(sj_surrogate, SURROGATES[surrogate])(**sur_kwargs)
    if tau_name is not None:
        kwargs[tau_name] = 2.0 if kind == "plif" else 3.0
    else:
        kwargs.pop("decay_input", None)
    sj = getattr(sj_neuron, sj_cls)(surrogate_function=sj_sur, step_mode="m", store_v_seq=True, **kwargs)
    ours = getattr(ak_nn, sj_cls)(surrogate_function=ours_sur, step_mode="m", store_v_seq=True, **kwargs)
    return sj, ours


# IFNode has no decay_input: it appears once, with decay_input=True (ignored).
KIND_DECAY = [("lif", True), ("lif", False), ("plif", True), ("plif", False), ("if", True)]


@pytest.mark.parametrize("kind, decay_input", KIND_DECAY)
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("v_reset", [0.0, -0.3, None])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_modules_match_spikingjelly(kind, decay_input, surrogate, v_reset, detach_reset):
    gen = torch.Generator().manual_seed(hash((kind, surrogate, v_reset, detach_reset, decay_input)) % 2**31)
    alpha = {"sigmoid": 3.0, "atan": None, "triangle": 0.8}[surrogate]
    sj, ours = _pair(kind, surrogate, alpha, v_reset=v_reset, detach_reset=detach_reset, decay_input=decay_input)
    # Two calls: the second starts from the membrane the first left, and the loss reaches back through it.
    xs = [torch.randn(6, 3, 37, generator=gen) * 0.9 + 0.6 for _ in range(2)]
    grads = [(torch.randn(6, 3, 37, generator=gen), torch.randn(6, 3, 37, generator=gen)) for _ in range(2)]
    results = []
    for node in (sj, ours):
        leaves = [x.clone().requires_grad_() for x in xs]
        loss = 0
        outs = []
        for x, (gs, gv) in zip(leaves, grads, strict=True):
            s = node(x)
            loss = loss + (s * gs).sum() + (node.v_seq * gv).sum()
            outs.append((s.detach(), node.v_seq.detach()))
        loss.backward()
        w_grad = node.w.grad.clone() if kind == "plif" else None
        results.append((outs, [x.grad for x in leaves], w_grad))
    (sj_outs, sj_gx, sj_gw), (outs, gx, gw) = results
    for (s_ref, v_ref), (s, v) in zip(sj_outs, outs, strict=True):
        assert torch.equal(s, s_ref), "spikes differ from SpikingJelly's"
        assert_close("v_seq", v_ref.double(), v)
    for g_ref, g in zip(sj_gx, gx, strict=True):
        assert_close("grad x", g_ref.double(), g)
    if kind == "plif":
        assert_close("grad w", sj_gw.double().reshape(1), gw.reshape(1))


def test_functional_lif_matches_spikingjelly_with_v_init():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 50, generator=gen) + 0.5
    v0 = torch.randn(50, generator=gen) * 0.3
    sj = sj_neuron.LIFNode(tau=2.0, surrogate_function=sj_surrogate.ATan(), step_mode="m", store_v_seq=True)
    x_sj, v0_sj = x.clone().requires_grad_(), v0.clone().requires_grad_()
    sj.v = v0_sj
    s_sj = sj(x_sj)
    (s_sj.sum() + sj.v_seq.sum()).backward()
    x_ak, v0_ak = x.clone().requires_grad_(), v0.clone().requires_grad_()
    s, v = ops.lif(x_ak, v0_ak, surrogate="atan", return_v=True)
    (s.sum() + v.sum()).backward()
    assert torch.equal(s, s_sj)
    assert_close("grad x", x_sj.grad.double(), x_ak.grad)
    assert_close("grad v_init", v0_sj.grad.double(), v0_ak.grad)


def test_module_state_and_reset():
    node = ak_nn.LIFNode(tau=2.0)
    x = torch.full((3, 4), 1.5)
    first = node(x)
    second = node(x)
    assert not torch.equal(first, second), "the second call must start from the kept membrane"
    node.reset()
    assert torch.equal(node(x), first)
    # A new neuron shape (batch size) starts from v_reset instead of failing.
    assert node(torch.full((3, 7), 1.5)).shape == (3, 7)
    single = ak_nn.IFNode(step_mode="s")
    assert single(torch.full((4,), 0.6)).sum() == 0 and single(torch.full((4,), 0.6)).sum() == 4
    with pytest.raises(ValueError, match="step_mode"):
        ak_nn.LIFNode(step_mode="x")
    with pytest.raises(ValueError, match="surrogate_function"):
        ak_nn.LIFNode(surrogate_function=sj_surrogate.Erf())
    with pytest.raises(ValueError, match="init_tau"):
        ak_nn.ParametricLIFNode(init_tau=1.0)
