"""The C++ chunk forward of delta_rule (csrc/delta_rule_chunk.cpp, what mode="chunk" runs on the CPU when the
extension is built) against the float64 oracle and against the PyTorch chunk form it replaced (cpu.chunk_forward,
still the fallback): odd, empty and single-token sequences, varlen, both rules, h0 or not, K != V, non-power-of-2
dims, every chunk size the op takes, non-contiguous views, every dtype; every instruction-set path; thread-count
independence; the binding's refusals. The gradients through this forward are test_delta_rule.py's (the backward
recomputes from the inputs, so it does not depend on which forward ran).
"""

from __future__ import annotations

from unittest import mock

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from strategies import seeds
from test_delta_rule import Case, make_inputs, oracle
from tolerance import assert_close

from accelkit._native import available, native
from accelkit.kernels.delta_rule import cpu
from accelkit.kernels.delta_rule.op import delta_rule

pytestmark = pytest.mark.skipif(not available(), reason="accelkit._C is not built")

ODD_DIMS = (1, 3, 16, 20, 33, 64, 100)
LENGTHS = (1, 2, 5, 17, 63, 64, 65, 100)


@st.composite
def native_cases(draw) -> Case:
    varlen = draw(st.booleans())
    n = draw(st.integers(1, 3))
    if varlen:  # empty and 1-token sequences among the packed ones
        lens = tuple(draw(st.lists(st.sampled_from((0, 1, *LENGTHS)), min_size=n, max_size=n)))
    else:
        lens = (draw(st.sampled_from((0, *LENGTHS))),) * n
    return Case(lens, varlen, draw(st.integers(1, 3)), draw(st.sampled_from(ODD_DIMS)),
                draw(st.sampled_from(ODD_DIMS)), draw(st.booleans()), draw(st.booleans()),
                draw(st.sampled_from((None, 0.5))), draw(st.booleans()), draw(st.sampled_from((16, 32, 64))),
                "chunk", draw(st.sampled_from(("contiguous", "strided", "transposed"))), draw(seeds))  # fmt: skip


def forward(case: Case, x: dict, *, native_path: bool):
    """(o, final state) of the op under no_grad, through the C++ chunk form or the PyTorch one."""
    kw = {"g": x["g"], "initial_state": x["initial_state"], "cu_seqlens": x["cu_seqlens"], "scale": case.scale,
          "chunk_size": case.chunk, "use_qk_l2norm": case.l2norm, "output_final_state": True}  # fmt: skip
    with torch.no_grad(), mock.patch.object(cpu, "native_available", lambda: native_path):
        return delta_rule(x["q"], x["k"], x["v"], x["beta"], **kw)


@settings(max_examples=30, deadline=None)
@given(case=native_cases(), dtype=st.sampled_from((torch.float32, torch.float32, torch.float16, torch.bfloat16)))
def test_native_chunk_matches_oracle_and_torch_chunk(case, dtype):
    x = make_inputs(case, dtype)
    o, ht = forward(case, x, native_path=True)
    want_o, want_ht, _ = oracle(case, x)
    assert o.dtype == dtype and o.shape == x["v"].shape
    assert ht.dtype == torch.float32 and ht.shape == (case.n, case.heads, case.kd, case.vd)
    assert_close("o", want_o, o, dtype=dtype)
    assert_close("final_state", want_ht, ht, dtype=dtype)
    torch_o, torch_ht = forward(case, x, native_path=False)
    assert_close("o against the torch chunk form", torch_o.float(), o.float(), dtype=dtype)
    assert_close("final_state against the torch chunk form", torch_ht, ht, dtype=torch.float32)


def _binding_args(case: Case, x: dict) -> dict:
    """The op's inputs as the binding takes them: float32 rows [B * T, H, D], q not yet scaled."""
    rows = x["q"].shape[0] * x["q"].shape[1]

    def flat(t):
        return np.ascontiguousarray(t.reshape(rows, *t.shape[2:]).float().numpy())

    h0 = x["initial_state"]
    return {"q": flat(x["q"]), "k": flat(x["k"]), "v": flat(x["v"]), "beta": flat(x["beta"]),
            "g": None if x["g"] is None else flat(x["g"]), "initial_state": None if h0 is None else h0.numpy(),
            "cu_seqlens": np.asarray(case.cu, np.int64), "o": np.full((rows, case.heads, case.vd), np.nan, np.float32),
            "final_state": np.full((case.n, case.heads, case.kd, case.vd), np.nan, np.float32),
            "scale": case.kd**-0.5 if case.scale is None else case.scale}  # fmt: skip


ISAS = [isa for isa in ("scalar", "avx2", "avx512") if available() and native().delta_rule_chunk_isa_supported(isa)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("chunk", [1, 16, 20, 64])
def test_every_isa_and_chunk_matches_oracle(isa, gated, chunk):
    case = Case((70, 0, 1, 33), True, 2, 20, 33, gated, True, None, False, chunk, "chunk", "contiguous", chunk)
    x = make_inputs(case, torch.float32)
    args = _binding_args(case, x)
    native().delta_rule_chunk(**args, chunk_size=chunk, isa=isa, threads=2)
    want_o, want_ht, _ = oracle(case, x)
    assert_close("o", want_o, args["o"].reshape(want_o.shape), dtype=torch.float32)
    assert_close("final_state", want_ht, args["final_state"], dtype=torch.float32)


def test_thread_count_does_not_change_the_result():
    case = Case((40, 3, 0, 65), True, 3, 16, 24, True, True, None, False, 16, "chunk", "contiguous", 11)
    x = make_inputs(case, torch.float32)
    results = []
    for threads in (1, 2, 5):
        args = _binding_args(case, x)
        native().delta_rule_chunk(**args, chunk_size=16, threads=threads)
        results.append((args["o"], args["final_state"]))
    for o, ht in results[1:]:
        np.testing.assert_array_equal(o, results[0][0])
        np.testing.assert_array_equal(ht, results[0][1])


def test_native_chunk_binding_refuses_bad_arguments():
    case = Case((2, 3), True, 2, 3, 4, False, False, None, False, 16, "chunk", "contiguous", 0)
    x = make_inputs(case, torch.float32)
    good = _binding_args(case, x)
    native().delta_rule_chunk(**good, chunk_size=16)
    assert np.isfinite(good["o"]).all() and np.isfinite(good["final_state"]).all()
    bad = [
        ("chunk_size must lie in", {"chunk_size": 0}),
        ("chunk_size must lie in", {"chunk_size": 257}),
        ("isa must be", {"isa": "sse9"}),
        ("q must be float32", {"q": good["q"].astype(np.float64)}),
        (
            "cu_seqlens must never decrease",
            {"cu_seqlens": np.array([0, 4, 2, 5], np.int64), "final_state": np.zeros((3, 2, 3, 4), np.float32)},
        ),
        ("o must not overlap", {"o": good["v"]}),
        ("threads", {"threads": -1}),
    ]
    for match, change in bad:
        with pytest.raises(ValueError, match=match):
            native().delta_rule_chunk(**{"chunk_size": 16, **good, **change})
