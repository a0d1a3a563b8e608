"""delta_rule's Triton kernels through their launchers against the float64 oracle: chunk forward, chunk backward
(recomputing the chunk states) and the fused recurrent kernel, both rules. Without a GPU they run under the Triton
interpreter, which runs every program of the grid one after another in NumPy, so the shapes are tiny and the drawn
examples few; the CPU path is tested widely in test_delta_rule.py with the same cases and checks.
"""

from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from test_delta_rule import Case, check_against_oracle, make_inputs

from accelkit.kernels.delta_rule import triton_kernels
from accelkit.kernels.delta_rule.args import check_args
from accelkit.kernels.delta_rule.triton_kernels import AOT_SPECS
from accelkit.kernels.delta_rule.triton_launch import delta_rule_bwd, delta_rule_fwd

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def run_launchers(case: Case, x: dict):
    """(o, final state, grads) from the launchers, as the op calls them."""
    knobs = {"g": x["g"], "scale": case.scale, "initial_state": x["initial_state"], "cu_seqlens": x["cu_seqlens"],
             "chunk_size": case.chunk, "use_qk_l2norm": case.l2norm, "mode": case.mode}  # fmt: skip
    p = check_args(x["q"], x["k"], x["v"], x["beta"], **knobs)
    cu = case.cu if case.varlen else None
    args = (x["q"], x["k"], x["v"], x["beta"], x["g"], x["initial_state"], cu, p)
    o, ht = delta_rule_fwd(*args)
    grads = list(delta_rule_bwd(x["do"], x["dht"], *args))
    grads[4] = grads[4] if case.gated else None
    grads[5] = grads[5] if case.h0 else None
    return o, ht, grads


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_launchers_match_oracle(gated, mode):
    # Packed sequences with an empty one and one of a single token, K != V, neither a power of 2, an initial state.
    case = Case((17, 0, 1, 20), True, 1, 20, 40, gated, True, 0.5, True, 16, mode, "strided", 3)
    x = make_inputs(case, torch.float32, DEVICE)
    check_against_oracle(case, x, run_launchers(case, x), torch.float32)


@settings(max_examples=4)
@given(
    lens=st.sampled_from(((33,), (16, 16), (1, 1), (40,))),
    chunk=st.sampled_from((16, 32, 64)),
    dims=st.sampled_from(((16, 60), (60, 16), (100, 16))),
    gated=st.booleans(),
    dtype=st.sampled_from((torch.float32, torch.float16, torch.bfloat16)),
)
def test_launchers_drawn_cases(lens, chunk, dims, gated, dtype):
    case = Case(lens, False, 1, *dims, gated, len(lens) == 1, None, False, chunk, "chunk", "contiguous", chunk)
    x = make_inputs(case, dtype, DEVICE)
    check_against_oracle(case, x, run_launchers(case, x), dtype)


def test_chunk_kernels_equal_fused_recurrent():
    case = Case((2, 19), True, 2, 16, 16, True, True, None, True, 16, "chunk", "contiguous", 8)
    x = make_inputs(case, torch.float32, DEVICE)
    o, ht, _ = run_launchers(case, x)
    o_r, ht_r, _ = run_launchers(dataclasses.replace(case, mode="recurrent"), x)
    torch.testing.assert_close(o, o_r, atol=2e-6, rtol=2e-6)
    torch.testing.assert_close(ht, ht_r, atol=2e-6, rtol=2e-6)


def test_aot_registry_lists_every_kernel():
    # Every kernel of the module (the launchers launch them all) for both rules, three dtypes and d = 64/128/256, and
    # the CI build check's subset still holds each kernel of both rules in fp16 and fp32 at the smallest and largest d.
    kernels = sorted(name for name in vars(triton_kernels) if name.endswith("_kernel"))
    assert len(kernels) == 10
    configs = [
        (rule, dtype, d) for rule in ("delta", "gated") for dtype in ("fp16", "bf16", "fp32") for d in (64, 128, 256)
    ]
    assert sorted(s.name for s in AOT_SPECS) == sorted(f"{k}[{r},{t},d{d}]" for k in kernels for r, t, d in configs)
    ci = sorted(s.name for s in AOT_SPECS if s.ci_build)
    assert ci == sorted(f"{k}[{r},{t},d{d}]" for k in kernels for r, t, d in configs if t != "bf16" and d != 128)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("dims", [(64, 64), (128, 128), (256, 256), (100, 60)])
def test_op_cuda_matches_oracle(dtype, dims):
    from test_delta_rule import run_op

    for gated in (False, True):
        case = Case((300, 1, 129), True, 2, *dims, gated, True, None, True, 64, "chunk", "transposed", 1)
        x = make_inputs(case, dtype, "cuda")
        check_against_oracle(case, x, run_op(case, x), dtype)
