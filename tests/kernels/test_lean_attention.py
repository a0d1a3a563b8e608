"""Lean Attention and split-KV decode against the float64 oracle (kernels/attention/reference.decode_attention).

The Triton launcher runs here under the interpreter on CPU tensors (small shapes: the interpreter is slow); the
public ops run their CPU (C++) path, and their CUDA path in the `cuda`-marked tests. Cache slots past each
sequence's length and pages no sequence reaches hold NaN, so a kernel that reads them fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given
from strategies import seeds
from tolerance import assert_close, assert_within_peer_error

from accelkit.kernels.attention import reference as ref
from accelkit.kernels.lean_attention import triton_kernels as tk
from accelkit.kernels.lean_attention.schedule import lean_schedule


@dataclass
class Case:
    q: torch.Tensor  # [B, T_q, H_q, D]
    k: torch.Tensor  # contiguous [B, T_cache, H_kv, D] or paged [num_blocks, page_size, H_kv, D]
    v: torch.Tensor
    seqlens: torch.Tensor  # [B] int32
    table: torch.Tensor | None  # [B, max_blocks] int32 or None

    def oracle(self, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        table = None if self.table is None else self.table.numpy()
        return ref.decode_attention(
            _np(self.q), _np(self.k), _np(self.v), self.seqlens.numpy(), block_table=table, scale=scale
        )


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def make_case(
    lengths: list[int], t_q: int, h_q: int, h_kv: int, d: int, *, seed: int, dtype=torch.float32, t_cache=None
) -> Case:
    gen = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    t_cache = max([*lengths, 1]) if t_cache is None else t_cache
    q = torch.randn(batch, t_q, h_q, d, generator=gen, dtype=torch.float64).to(dtype)
    k = torch.randn(batch, t_cache, h_kv, d, generator=gen, dtype=torch.float64).to(dtype)
    v = torch.randn(batch, t_cache, h_kv, d, generator=gen, dtype=torch.float64).to(dtype)
    for b, n in enumerate(lengths):
        k[b, n:] = float("nan")
        v[b, n:] = float("nan")
    return Case(q, k, v, torch.tensor(lengths, dtype=torch.int32), None)


def paged(case: Case, page_size: int, *, seed: int) -> Case:
    """The same cache cut into pages of page_size slots, shuffled among spare NaN pages."""
    batch, t_cache, h_kv, d = case.k.shape
    per_seq = max(1, -(-t_cache // page_size))
    num_blocks = batch * per_seq + 3
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_blocks, generator=gen)[: batch * per_seq].view(batch, per_seq)
    pages = []
    for x in (case.k, case.v):
        cache = torch.full((num_blocks, page_size, h_kv, d), float("nan"), dtype=x.dtype)
        padded = torch.full((batch, per_seq * page_size, h_kv, d), float("nan"), dtype=x.dtype)
        padded[:, :t_cache] = x
        cache[order.reshape(-1)] = padded.view(batch * per_seq, page_size, h_kv, d)
        pages.append(cache)
    # Table entries past what a sequence reaches point nowhere: they must never be read.
    table = order.to(torch.int32).clone()
    for b, n in enumerate(case.seqlens.tolist()):
        table[b, -(-n // page_size) :] = 10**6
    return Case(case.q, pages[0], pages[1], case.seqlens, table)


def run_lean(case: Case, programs: int, scale: float | None = None):
    d = case.q.shape[-1]
    return tk.lean_attention_triton(case.q, case.k, case.v, case.seqlens, case.table, scale or d**-0.5, programs)


def check_fp32(case: Case, out: torch.Tensor, lse: torch.Tensor, scale: float | None = None) -> None:
    ref_out, ref_lse = case.oracle(scale)
    assert out.shape == case.q.shape and out.dtype == case.q.dtype
    assert lse.dtype == torch.float32 and lse.shape == ref_lse.shape
    assert not torch.isnan(out).any() and not torch.isnan(lse).any()
    np.testing.assert_array_equal(torch.isneginf(lse).numpy(), np.isneginf(ref_lse), err_msg="-inf LSE placement")
    assert_close("out", ref_out, out)
    finite = np.isfinite(ref_lse)
    assert_close("lse", ref_lse[finite], lse.numpy()[finite], dtype=torch.float32)


# --- The Triton launcher under the interpreter ------------------------------------------------------------------

lengths_st = st.lists(st.one_of(st.sampled_from([0, 1, 2, 63, 64, 65]), st.integers(0, 150)), min_size=1, max_size=3)


@given(
    lengths_st,
    st.sampled_from([1, 2, 3]),
    st.sampled_from([(1, 1), (2, 1), (3, 1), (4, 2), (6, 3)]),
    st.sampled_from([16, 24, 32]),
    st.integers(1, 12),
    st.sampled_from([None, 1, 16]),
    seeds,
)
def test_lean_triton_matches_oracle(lengths, t_q, heads, d, programs, page_size, seed):
    case = make_case(lengths, t_q, *heads, d, seed=seed)
    if page_size is not None:
        case = paged(case, page_size, seed=seed)
    out, lse = run_lean(case, programs)
    check_fp32(case, out, lse)


def test_lean_triton_invariant_to_num_programs():
    # 3 sequences x 2 KV heads with 1, 0 and 200 keys: 8 LeanTiles of 64 keys over 6 output tiles.
    case = make_case([1, 0, 200], 2, 4, 2, 32, seed=1)
    tiles = lean_schedule(case.seqlens.numpy(), 2, tk.block_sizes(32)[0], 1).total_lean_tiles
    results = {p: run_lean(case, p) for p in (1, 2, 7, tiles + 5)}
    for p, (out, lse) in results.items():
        check_fp32(case, out, lse)
        assert_close(f"out with {p} programs vs 1", results[1][0], out)
        finite = torch.isfinite(results[1][1])
        assert_close(f"lse with {p} programs vs 1", results[1][1][finite], lse[finite])


@pytest.mark.parametrize("page_size", [1, 16, 256])
def test_paged_equals_contiguous(page_size):
    case = make_case([37, 0, 1, 90], 1, 2, 1, 16, seed=page_size)
    want, want_lse = run_lean(case, 3)
    out, lse = run_lean(paged(case, page_size, seed=7), 3)
    assert_close("paged out", want, out)
    np.testing.assert_array_equal(torch.isneginf(lse).numpy(), torch.isneginf(want_lse).numpy())
    finite = torch.isfinite(want_lse)
    assert_close("paged lse", want_lse[finite], lse[finite])
    check_fp32(case, out, lse)


def test_lean_triton_many_rows_and_custom_scale():
    # GROUP * T_q = 8 * 3 = 24 rows: two row blocks of 16; a head dim of 40 pads to 64 with masked columns.
    case = make_case([70, 5], 3, 8, 1, 40, seed=3)
    out, lse = run_lean(case, 2, scale=0.3)
    check_fp32(case, out, lse, scale=0.3)


def test_lean_triton_non_contiguous_inputs():
    # q a transposed view, the caches a slice of a wider head dim: strides no multiple of 16, the unaligned path.
    case = make_case([33, 70], 2, 2, 2, 16, seed=4)
    q = case.q.transpose(1, 2).contiguous().transpose(1, 2)
    wide_k = torch.full((*case.k.shape[:3], 21), float("nan"))
    wide_v = wide_k.clone()
    wide_k[..., 2:18], wide_v[..., 2:18] = case.k, case.v
    view = Case(q, wide_k[..., 2:18], wide_v[..., 2:18], case.seqlens, None)
    assert not view.k.is_contiguous() and not q.is_contiguous()
    out, lse = run_lean(view, 3)
    check_fp32(case, out, lse)


@pytest.mark.parametrize("splits", [1, 3, 50])
def test_split_kv_triton_matches_oracle(splits):
    case = make_case([0, 1, 130], 2, 2, 1, 16, seed=splits)
    out, lse = tk.split_kv_attention_triton(case.q, case.k, case.v, case.seqlens, None, 16**-0.5, splits)
    check_fp32(case, out, lse)


def test_split_kv_triton_default_splits():
    case = make_case([129], 1, 1, 1, 16, seed=5)
    out, lse = tk.split_kv_attention_triton(case.q, case.k, case.v, case.seqlens, None, 0.25, None)
    check_fp32(case, out, lse)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_lean_triton_16bit_within_flash_criterion(dtype):
    case = make_case([150, 3], 2, 4, 2, 32, seed=11, dtype=dtype)
    out, lse = run_lean(case, 3)
    ref_out, ref_lse = case.oracle()
    assert out.dtype == dtype
    assert_within_peer_error("out", ref_out, out, same_precision_decode(case), dtype=dtype)
    assert_close("lse", ref_lse, lse, dtype=dtype)


def same_precision_decode(case: Case) -> torch.Tensor:
    """The plain PyTorch decode attention in q's dtype (scores, softmax and product all 16-bit): the peer whose
    error the FlashAttention criterion scales."""
    batch, t_q, h_q, d = case.q.shape
    h_kv = case.k.shape[2]
    out = torch.zeros_like(case.q)
    for b, n in enumerate(case.seqlens.tolist()):
        k = case.k[b, :n].repeat_interleave(h_q // h_kv, dim=1).transpose(0, 1)  # [H_q, n, D]
        v = case.v[b, :n].repeat_interleave(h_q // h_kv, dim=1).transpose(0, 1)
        s = (case.q[b].transpose(0, 1) @ k.transpose(1, 2)) * d**-0.5  # [H_q, T_q, n]
        visible = torch.arange(n)[None, :] <= n - t_q + torch.arange(t_q)[:, None]
        p = torch.softmax(s.masked_fill(~visible, float("-inf")), dim=-1).nan_to_num(0.0)
        out[b] = (p @ v).transpose(0, 1)
    return out
