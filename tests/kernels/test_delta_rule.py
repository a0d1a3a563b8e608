"""delta_rule on the CPU against the float64 oracle (kernels/delta_rule/reference.py): outputs, final state and every
gradient, both rules, both modes; chunk == recurrent, varlen == separate calls, split-and-carry == whole; fla-core's
own references; opcheck, torch.compile, bad input. The Triton kernels are in test_delta_rule_triton.py.

Keys are l2-normalised (by the op, or before it) and beta lies in (0, 1), as in every DeltaNet: the transition
I - beta k k^T is then a contraction, and so is each chunk's unit-lower-triangular solve. v, do, the initial state
and its gradient are scaled by V**-0.5 so every row has norm ~1: gradients such as dbeta are sums of V products that
cancel, and at unit-variance rows of 256 the float32 rounding of those terms alone nears the table's float32 atol,
whatever the implementation. 16-bit cases are compared
with the oracle run on the same rounded inputs, so the table's 16-bit rows measure the op, not the input rounding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from strategies import make_tensor, seeds
from tolerance import assert_close

from accelkit.kernels.delta_rule import reference as ref
from accelkit.kernels.delta_rule.op import delta_rule

DIMS = (16, 60, 100, 128, 256)
LENGTHS = (1, 63, 64, 65, 7, 33, 129)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
GRAD_NAMES = ("dq", "dk", "dv", "dbeta", "dg", "dh0")


@dataclass(frozen=True)
class Case:
    lens: tuple[int, ...]  # one per sequence; dense cases have B equal lengths
    varlen: bool
    heads: int
    kd: int
    vd: int
    gated: bool
    h0: bool
    scale: float | None
    l2norm: bool
    chunk: int
    mode: str
    layout: str
    seed: int

    @property
    def cu(self) -> list[int]:
        return [0, *np.cumsum(self.lens).tolist()]

    @property
    def n(self) -> int:
        return len(self.lens)


@st.composite
def cases(draw, *, dims=DIMS, lengths=LENGTHS, max_seqs: int = 3) -> Case:
    varlen = draw(st.booleans())
    n = draw(st.integers(1, max_seqs))
    if varlen:
        lens = tuple(draw(st.lists(st.sampled_from((0, *lengths)), min_size=n, max_size=n)))
    else:
        lens = (draw(st.sampled_from(lengths)),) * n
    kd, vd = draw(st.sampled_from(dims)), draw(st.sampled_from(dims))
    return Case(lens, varlen, draw(st.integers(1, 2)), kd, vd, draw(st.booleans()), draw(st.booleans()),
                draw(st.sampled_from((None, 0.5, 1.0))), draw(st.booleans()), draw(st.sampled_from((16, 32, 64))),
                draw(st.sampled_from(("chunk", "chunk", "recurrent"))),
                draw(st.sampled_from(("contiguous", "strided", "transposed"))), draw(seeds))  # fmt: skip


def make_inputs(case: Case, dtype: torch.dtype, device="cpu") -> dict:
    """q, k, v, beta, g, initial_state, cu_seqlens (None where the case has none) and the upstream gradients."""
    b, t = (1, sum(case.lens)) if case.varlen else (case.n, case.lens[0])
    h, s = case.heads, case.seed

    def tensor(shape, seed, layout=case.layout):
        return make_tensor(shape, dtype, seed=seed, layout=layout, scale=1.0).to(device)

    unit = case.vd**-0.5
    q, k, v = tensor((b, t, h, case.kd), s), tensor((b, t, h, case.kd), s + 1), tensor((b, t, h, case.vd), s + 2)
    v = (v.float() * unit).to(dtype)
    if not case.l2norm:
        k = F.normalize(k.float(), dim=-1).to(dtype)
    gen = torch.Generator().manual_seed(s + 3)
    beta = torch.sigmoid(torch.randn(b, t, h, generator=gen)).to(dtype).to(device)
    g = F.logsigmoid(torch.randn(b, t, h, generator=gen) + 2).to(dtype).to(device) if case.gated else None
    h0 = (torch.randn(case.n, h, case.kd, case.vd, generator=gen) * unit).to(device) if case.h0 else None
    cu = torch.tensor(case.cu, dtype=torch.int64, device=device) if case.varlen else None
    do = (torch.randn(b, t, h, case.vd, generator=gen) * unit).to(dtype).to(device)
    dht = (torch.randn(case.n, h, case.kd, case.vd, generator=gen) * unit).to(device)
    return {"q": q, "k": k, "v": v, "beta": beta, "g": g, "initial_state": h0, "cu_seqlens": cu, "do": do, "dht": dht}


def run_op(case: Case, x: dict, **overrides):
    """The op with autograd: (o, final state, grads of q, k, v, beta, g, h0 (None where absent))."""
    leaves = {key: x[key].detach().clone().requires_grad_() if x[key] is not None else None
              for key in ("q", "k", "v", "beta", "g", "initial_state")}  # fmt: skip
    knobs = {"scale": case.scale, "chunk_size": case.chunk, "use_qk_l2norm": case.l2norm, "mode": case.mode}
    knobs.update(overrides)
    o, ht = delta_rule(leaves["q"], leaves["k"], leaves["v"], leaves["beta"], g=leaves["g"],
                       initial_state=leaves["initial_state"], cu_seqlens=x["cu_seqlens"], output_final_state=True,
                       **knobs)  # fmt: skip
    torch.autograd.backward((o, ht), (x["do"], x["dht"]))
    grads = [None if leaf is None else leaf.grad for leaf in leaves.values()]
    return o, ht, grads


def oracle(case: Case, x: dict):
    """float64 (o, final state, dq, dk, dv, dbeta, dg, dh0) of the same (rounded) inputs."""
    np_ = {key: None if val is None else val.detach().cpu().double().numpy() for key, val in x.items()}
    kw = {"g": np_["g"], "scale": case.scale, "initial_state": np_["initial_state"], "cu_seqlens": np_["cu_seqlens"],
          "use_qk_l2norm": case.l2norm}  # fmt: skip
    o, ht = ref.recurrence(np_["q"], np_["k"], np_["v"], np_["beta"], **kw)
    grads = ref.recurrence_backward(np_["do"], np_["dht"], np_["q"], np_["k"], np_["v"], np_["beta"], **kw)
    return o, ht, grads


def check_against_oracle(case: Case, x: dict, result, dtype: torch.dtype) -> None:
    o, ht, grads = result
    want_o, want_ht, want_grads = oracle(case, x)
    assert o.dtype == dtype and o.shape == x["v"].shape
    assert ht.dtype == torch.float32 and ht.shape == (case.n, case.heads, case.kd, case.vd)
    assert_close("o", want_o, o, dtype=dtype)
    assert_close("final_state", want_ht, ht, dtype=dtype)
    for name, want, got in zip(GRAD_NAMES, want_grads, grads, strict=True):
        if got is None:
            assert name in ("dg", "dh0"), f"{name} missing"
            continue
        assert_close(name, want, got, dtype=dtype)


# --- The oracle itself ---------------------------------------------------------------------------------------------
@settings(max_examples=10)
@given(case=cases(dims=(3, 5, 8), lengths=(1, 4, 5, 9, 13)), chunk=st.sampled_from((1, 2, 4, 16)))
def test_reference_chunkwise_equals_recurrence(case, chunk):
    x = make_inputs(case, torch.float64)
    np_ = {key: None if val is None else val.numpy() for key, val in x.items()}
    kw = {"g": np_["g"], "scale": case.scale, "initial_state": np_["initial_state"], "cu_seqlens": np_["cu_seqlens"],
          "use_qk_l2norm": case.l2norm}  # fmt: skip
    o1, s1 = ref.recurrence(np_["q"], np_["k"], np_["v"], np_["beta"], **kw)
    o2, s2 = ref.chunkwise(np_["q"], np_["k"], np_["v"], np_["beta"], chunk_size=chunk, **kw)
    np.testing.assert_allclose(o2, o1, atol=1e-12, rtol=1e-12)
    np.testing.assert_allclose(s2, s1, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("gated", [False, True])
def test_reference_backward_matches_finite_differences(gated):
    case = Case((3, 0, 4), True, 2, 3, 2, gated, True, 0.7, True, 16, "chunk", "contiguous", 5)
    x = {key: None if val is None else val.double().numpy() for key, val in make_inputs(case, torch.float64).items()}
    kw = {"scale": 0.7, "cu_seqlens": x["cu_seqlens"], "use_qk_l2norm": True}
    names = ["q", "k", "v", "beta", "g", "initial_state"]
    args = {name: x[name] if x[name] is not None else np.zeros_like(x["beta"]) for name in names}

    def loss(a):
        o, s = ref.recurrence(a["q"], a["k"], a["v"], a["beta"], g=a["g"], initial_state=a["initial_state"], **kw)
        return float((o * x["do"]).sum() + (s * x["dht"]).sum())

    grads = ref.recurrence_backward(x["do"], x["dht"], args["q"], args["k"], args["v"], args["beta"], g=args["g"],
                                    initial_state=args["initial_state"], **kw)  # fmt: skip
    for name, grad in zip(names, grads, strict=True):
        numeric = np.zeros_like(args[name])
        for idx in np.ndindex(numeric.shape):
            hi, lo = ({**args, name: args[name].copy()} for _ in range(2))
            hi[name][idx] += 1e-6
            lo[name][idx] -= 1e-6
            numeric[idx] = (loss(hi) - loss(lo)) / 2e-6
        np.testing.assert_allclose(grad, numeric, atol=1e-7, rtol=1e-6, err_msg=name)


# --- The op against the oracle --------------------------------------------------------------------------------------
@settings(max_examples=25)
@given(case=cases(), dtype=st.sampled_from(DTYPES))
def test_op_matches_oracle(case, dtype):
    x = make_inputs(case, dtype)
    check_against_oracle(case, x, run_op(case, x), dtype)


@pytest.mark.parametrize("t", [1, 63, 64, 65, 97])
@pytest.mark.parametrize("chunk", [16, 32, 64])
def test_op_edge_lengths_and_chunks(t, chunk):
    case = Case((t, t), False, 2, 60, 100, True, True, None, False, chunk, "chunk", "transposed", t + chunk)
    x = make_inputs(case, torch.float32)
    check_against_oracle(case, x, run_op(case, x), torch.float32)


@pytest.mark.parametrize(("kd", "vd"), [(16, 256), (256, 16), (100, 128), (128, 60)])
def test_op_head_dims(kd, vd):
    case = Case((40, 0, 70), True, 1, kd, vd, False, True, 0.5, True, 64, "chunk", "strided", kd * vd)
    x = make_inputs(case, torch.float32)
    check_against_oracle(case, x, run_op(case, x), torch.float32)


# --- Identities --------------------------------------------------------------------------------------------------
def _same(a, b, what):
    for name, x, y in zip(("o", "final_state", *GRAD_NAMES), a, b, strict=True):
        if x is None or y is None:
            assert x is None and y is None, f"{what}: {name}"
            continue
        torch.testing.assert_close(x, y, atol=2e-5, rtol=2e-5, msg=lambda m, n=name: f"{what}: {n}: {m}")


def _flat(result):
    o, ht, grads = result
    return (o, ht, *grads)


@settings(max_examples=10)
@given(case=cases(dims=(16, 60)))
def test_chunk_equals_recurrent(case):
    x = make_inputs(case, torch.float32)
    chunk = _flat(run_op(case, x, mode="chunk"))
    recurrent = _flat(run_op(case, x, mode="recurrent"))
    _same(chunk, recurrent, "chunk vs recurrent")


@settings(max_examples=10)
@given(case=cases(dims=(16, 60), max_seqs=4))
def test_varlen_equals_separate_calls(case):
    case = dataclasses.replace(case, varlen=True, h0=True, layout="contiguous")
    x = make_inputs(case, torch.float32)
    o, ht, grads = run_op(case, x)
    for n, (a, b) in enumerate(zip(case.cu[:-1], case.cu[1:], strict=True)):
        one = Case(
            (b - a,), False, *[getattr(case, f) for f in Case.__dataclass_fields__ if f not in ("lens", "varlen")]
        )
        sl = slice(a, b)
        y = {key: x[key][:, sl] for key in ("q", "k", "v", "beta", "do")}
        y.update(g=None if x["g"] is None else x["g"][:, sl], initial_state=x["initial_state"][n : n + 1],
                 dht=x["dht"][n : n + 1], cu_seqlens=None)  # fmt: skip
        so, sht, sgrads = run_op(one, y)
        torch.testing.assert_close(o[:, sl], so, atol=2e-5, rtol=2e-5)
        torch.testing.assert_close(ht[n : n + 1], sht, atol=2e-5, rtol=2e-5)
        for name, whole, part in zip(GRAD_NAMES, grads, sgrads, strict=True):
            if whole is None:
                continue
            want = whole[n : n + 1] if name == "dh0" else whole[:, sl]
            torch.testing.assert_close(want, part, atol=2e-5, rtol=2e-5, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("split", [1, 37, 64, 100])
def test_split_and_carry_state_equals_whole(gated, split):
    # fla issues #285 and #494: the final state of the first part, passed as the initial state of the second, must
    # give the whole sequence's output and final state.
    case = Case((150,), False, 2, 60, 16, gated, True, None, True, 64, "chunk", "contiguous", split)
    x = make_inputs(case, torch.float32)
    kw = {"use_qk_l2norm": True, "output_final_state": True}
    g = x["g"]
    whole, whole_ht = delta_rule(x["q"], x["k"], x["v"], x["beta"], g=g, initial_state=x["initial_state"], **kw)
    parts, state = [], x["initial_state"]
    for sl in (slice(0, split), slice(split, 150)):
        o, state = delta_rule(x["q"][:, sl], x["k"][:, sl], x["v"][:, sl], x["beta"][:, sl],
                              g=None if g is None else g[:, sl], initial_state=state, **kw)  # fmt: skip
        parts.append(o)
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=2e-6, rtol=2e-6)
    torch.testing.assert_close(state, whole_ht, atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("shape", [(0, 5, 2), (2, 0, 2), (1, 4, 0)])
def test_size_zero(shape):
    b, t, h = shape
    q, k, v = torch.randn(b, t, h, 16, requires_grad=True), torch.randn(b, t, h, 16), torch.randn(b, t, h, 24)
    beta = torch.rand(b, t, h)
    h0 = torch.randn(b, h, 16, 24, requires_grad=True)
    o, ht = delta_rule(q, k, v, beta, initial_state=h0, output_final_state=True)
    assert o.shape == v.shape and ht.shape == h0.shape
    torch.testing.assert_close(ht, h0.detach())
    (o.sum() + (ht * 2).sum()).backward()
    assert q.grad.shape == q.shape
    torch.testing.assert_close(h0.grad, torch.full_like(h0, 2.0))


def test_final_state_none_unless_asked():
    q = torch.randn(1, 5, 1, 16)
    o, ht = delta_rule(q, q, q, torch.rand(1, 5, 1))
    assert ht is None and o.shape == q.shape


# --- fla-core's pure-PyTorch references ----------------------------------------------------------------------------
@pytest.mark.parametrize("gated", [False, True])
def test_matches_fla_reference(gated):
    fla_naive = pytest.importorskip("fla.ops.delta_rule.naive", reason="fla-core is installed by make setup")
    gdn_naive = pytest.importorskip("fla.ops.gated_delta_rule.naive")
    case = Case((70, 70), False, 2, 32, 48, gated, True, 0.3, False, 64, "chunk", "contiguous", 11)
    x = make_inputs(case, torch.float32)
    o, ht, _ = run_op(case, x)
    q, k, v, beta, h0 = x["q"], x["k"], x["v"], x["beta"], x["initial_state"]
    if gated:
        want_o, want_ht = gdn_naive.naive_recurrent_gated_delta_rule(
            q, k, v, beta, x["g"], scale=0.3, initial_state=h0, output_final_state=True
        )
    else:
        # delta_rule_recurrence has no scale argument: it scales q by K**-0.5, so q is pre-scaled to match 0.3.
        tr = [t.transpose(1, 2) for t in (q * (0.3 * 32**0.5), k, v, beta)]
        want_o, want_ht = fla_naive.delta_rule_recurrence(*tr, initial_state=h0, output_final_state=True)
        want_o = want_o.transpose(1, 2)
    torch.testing.assert_close(o.detach(), want_o.float(), atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(ht.detach(), want_ht.float(), atol=2e-5, rtol=2e-5)


# --- opcheck, torch.compile --------------------------------------------------------------------------------------
@pytest.mark.parametrize("full", [False, True])
def test_opcheck(full):
    case = Case((9, 0, 20) if full else (21,), full, 2, 16, 24, full, full, 0.5, full, 16, "chunk", "contiguous", 3)
    x = make_inputs(case, torch.float32)
    args = [x[key] if x[key] is None else x[key].detach().requires_grad_() for key in ("q", "k", "v", "beta", "g",
                                                                                        "initial_state")]  # fmt: skip
    args += [x["cu_seqlens"], 0.5, 16, full, "chunk"]
    torch.library.opcheck(torch.ops.accelkit.delta_rule.default, tuple(args))


def test_torch_compile_fullgraph_matches_eager():
    case = Case((5, 0, 40), True, 2, 16, 32, True, True, None, True, 32, "chunk", "contiguous", 9)
    x = make_inputs(case, torch.float32)

    def f(q, k, v, beta, g, h0):
        o, ht = delta_rule(q, k, v, beta, g=g, initial_state=h0, cu_seqlens=x["cu_seqlens"], chunk_size=32,
                           use_qk_l2norm=True, output_final_state=True)  # fmt: skip
        return o * 2, ht

    names = ("q", "k", "v", "beta", "g", "initial_state")
    eager_leaves = [x[n].detach().clone().requires_grad_() for n in names]
    comp_leaves = [x[n].detach().clone().requires_grad_() for n in names]
    eager, comp = f(*eager_leaves), torch.compile(f, fullgraph=True, backend="aot_eager")(*comp_leaves)
    for a, b in zip(eager, comp, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    torch.autograd.backward(eager, (x["do"], x["dht"]))
    torch.autograd.backward(comp, (x["do"], x["dht"]))
    for a, b in zip(eager_leaves, comp_leaves, strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0)


# --- Bad input -----------------------------------------------------------------------------------------------------
def _bad_calls():
    q, v, beta = torch.randn(2, 6, 3, 16), torch.randn(2, 6, 3, 8), torch.rand(2, 6, 3)
    packed, pbeta = torch.randn(1, 6, 3, 16), torch.rand(1, 6, 3)

    def cu(*values):
        return torch.tensor(values, dtype=torch.int64)

    return [
        ("T, H", lambda: delta_rule(q, q, torch.randn(2, 5, 3, 8), beta)),
        ("T, H", lambda: delta_rule(q, q, torch.randn(2, 6, 2, 8), beta)),
        ("q and k", lambda: delta_rule(q, torch.randn(2, 6, 3, 20), v, beta)),
        ("beta must be", lambda: delta_rule(q, q, v, torch.rand(2, 6))),
        ("beta must be", lambda: delta_rule(q, q, v, torch.rand(2, 6, 3, 1))),
        ("g must be", lambda: delta_rule(q, q, v, beta, g=torch.rand(2, 5, 3))),
        ("B must be 1", lambda: delta_rule(q, q, v, beta, cu_seqlens=cu(0, 6))),
        ("cu_seqlens must start", lambda: delta_rule(packed, packed, packed, pbeta, cu_seqlens=cu(0, 4, 2, 6))),
        ("cu_seqlens must start", lambda: delta_rule(packed, packed, packed, pbeta, cu_seqlens=cu(0, 5))),
        ("cu_seqlens must have dtype", lambda: delta_rule(packed, packed, packed, pbeta, cu_seqlens=cu(0, 6).float())),
        ("initial_state must be", lambda: delta_rule(q, q, v, beta, initial_state=torch.zeros(2, 3, 8, 16))),
        (
            "initial_state must be",
            lambda: delta_rule(
                packed, packed, packed, pbeta, cu_seqlens=cu(0, 2, 6), initial_state=torch.zeros(1, 3, 16, 16)
            ),
        ),  # fmt: skip
        (
            "initial_state must have dtype",
            lambda: delta_rule(q, q, v, beta, initial_state=torch.zeros(2, 3, 16, 8).half()),
        ),
        ("K \\(k.shape", lambda: delta_rule(*(torch.randn(1, 2, 1, 257),) * 3, torch.rand(1, 2, 1))),
        ("v has dtype", lambda: delta_rule(q, q, v.half(), beta)),
        ("q must have dtype", lambda: delta_rule(q.double(), q.double(), v.double(), beta)),
        ("q must be", lambda: delta_rule(q[0], q[0], v[0], beta[0])),
        ("chunk_size", lambda: delta_rule(q, q, v, beta, chunk_size=8)),
        ("mode", lambda: delta_rule(q, q, v, beta, mode="parallel")),
        ("scale", lambda: delta_rule(q, q, v, beta, scale=float("nan"))),
        ("is on meta", lambda: delta_rule(q, q.to("meta"), v, beta)),
    ]


def test_bad_input_raises_value_error_naming_the_argument():
    for match, call in _bad_calls():
        with pytest.raises(ValueError, match=match):
            call()


def test_bad_python_types_raise_type_error():
    q, beta = torch.randn(1, 4, 2, 16), torch.rand(1, 4, 2)
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        delta_rule(q.numpy(), q, q, beta)
    with pytest.raises(TypeError, match="output_final_state"):
        delta_rule(q, q, q, beta, output_final_state=1)
    with pytest.raises(TypeError, match="scale"):
        delta_rule(q, q, q, beta, scale="0.1")
    with pytest.raises(TypeError, match="chunk_size"):
        delta_rule(q, q, q, beta, chunk_size=64.0)
    with pytest.raises(TypeError, match="mode"):
        delta_rule(q, q, q, beta, mode=None)


def test_positive_log_decay_is_computed_as_given():
    # g > 0 is documented as allowed (the state grows); it must still match the oracle.
    case = Case((20,), False, 1, 16, 16, True, False, None, True, 16, "chunk", "contiguous", 2)
    x = make_inputs(case, torch.float32)
    x["g"] = x["g"].abs() * 0.05
    check_against_oracle(case, x, run_op(case, x), torch.float32)


# --- accelkit.nn.DeltaNet ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_gate", [False, True])
def test_deltanet_layer_chunk_equals_recurrent_and_carries_state(use_gate):
    from accelkit.nn import DeltaNet

    torch.manual_seed(0)
    layer = DeltaNet(32, 2, use_gate=use_gate, chunk_size=16)
    x = torch.randn(2, 40, 32, requires_grad=True)
    y, state = layer(x, return_state=True)
    layer.mode = "recurrent"
    y_rec = layer(x)
    torch.testing.assert_close(y_rec, y, atol=2e-5, rtol=2e-5)
    assert state.shape == (2, 2, 16, 16) and y.shape == x.shape
    y.square().sum().backward()
    assert bool(torch.isfinite(x.grad).all()) and bool(x.grad.abs().sum() > 0)
    assert all(p.grad is not None for p in layer.parameters())
    # Without the short convolution, whose window restarts at each call, two halves carried by state equal one call.
    plain = DeltaNet(32, 2, use_gate=use_gate, use_short_conv=False)
    whole, _ = plain(x, return_state=True)
    first, carried = plain(x[:, :25], return_state=True)
    second = plain(x[:, 25:], initial_state=carried)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=2e-5, rtol=2e-5)


def test_deltanet_layer_empty_sequences():
    # A fuzz find: the short convolution refused a piece of no tokens (torch's conv1d takes no zero-length input).
    from accelkit.nn import DeltaNet

    torch.manual_seed(0)
    layer = DeltaNet(16, 2, head_dim=8)
    assert layer(torch.randn(1, 0, 16)).shape == (1, 0, 16)
    x = torch.randn(1, 5, 16)
    with_empty = layer(x, cu_seqlens=torch.tensor([0, 0, 5, 5], dtype=torch.int32))
    torch.testing.assert_close(with_empty, layer(x), atol=1e-6, rtol=1e-6)


def test_gpu_check_delta_rule_case_runs_on_cpu():
    # bench/gpu_check.py's figure-gathering path at a tiny size, so a typo there shows here, not on the one GPU run.
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("bench_gpu_check_delta", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs = []

    def timer(fn, repeats):
        runs.append(fn())
        return 1.0

    row = module.delta_rule_case(1, 40, 16, 1, hidden=32, device="cpu", dtype=torch.float32, timer=timer)
    assert row == {"B": 1, "T": 40, "H": 2, "D": 16, "ours_fwd_ms": 1.0, "ours_fwdbwd_ms": 1.0}
    assert runs[0].shape == (1, 40, 2, 16) and bool(torch.isfinite(runs[0]).all())


# --- mode="recurrent" on the CPU: the C++ token loop and its PyTorch fallback --------------------------------------
def test_recurrent_pytorch_fallback_matches_oracle(monkeypatch):
    from accelkit.kernels.delta_rule import cpu

    monkeypatch.setattr(cpu, "native_available", lambda: False)
    case = Case((9, 0, 20), True, 2, 16, 24, True, True, 0.5, True, 16, "recurrent", "strided", 4)
    x = make_inputs(case, torch.float32)
    check_against_oracle(case, x, run_op(case, x), torch.float32)


def test_native_recurrent_binding_refuses_bad_arrays():
    from accelkit._native import available, native

    if not available():
        pytest.skip("accelkit._C is not built")
    rows, h, kd, vd = 5, 2, 3, 4
    f32 = np.float32
    good = {"q": np.zeros((rows, h, kd), f32), "k": np.zeros((rows, h, kd), f32), "v": np.zeros((rows, h, vd), f32),
            "beta": np.zeros((rows, h), f32), "g": None, "initial_state": None,
            "cu_seqlens": np.array([0, 2, 5], np.int64), "o": np.zeros((rows, h, vd), f32),
            "final_state": np.zeros((2, h, kd, vd), f32), "scale": 1.0}  # fmt: skip
    native().delta_rule_recurrent(**good)
    bad = [
        ("q must be float32", {"q": np.zeros((rows, h, kd))}),
        ("k has the wrong shape", {"k": np.zeros((rows, h, kd + 1), f32)}),
        ("cu_seqlens must start", {"cu_seqlens": np.array([0, 2, 4], np.int64)}),
        (
            "cu_seqlens must never decrease",
            {"cu_seqlens": np.array([0, 3, 2, 5], np.int64), "final_state": np.zeros((3, h, kd, vd), f32)},
        ),  # fmt: skip
        ("cu_seqlens must have dtype int64", {"cu_seqlens": np.array([0, 5], np.int32)}),
        ("initial_state has the wrong shape", {"initial_state": np.zeros((1, h, kd, vd), f32)}),
        ("o must not overlap", {"o": good["v"]}),
        ("final_state must be C-contiguous", {"final_state": np.zeros((2, h, vd, kd), f32).transpose(0, 1, 3, 2)}),
        ("threads", {"threads": -1}),
    ]
    for match, change in bad:
        with pytest.raises(ValueError, match=match):
            native().delta_rule_recurrent(**{**good, **change})
