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
from accelkit.kernels.lean_attention.op import lean_attention, split_kv_attention
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


def run_lean(case: Case, programs: int | None, scale: float | None = None):
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
    st.one_of(st.none(), st.integers(1, 12)),  # None: the launcher's default count
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
    tiles = lean_schedule(case.seqlens.numpy(), 2, tk.block_sizes(32, 4)[0], 1).total_lean_tiles
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
    # 130 and 5 keys are 3 + 1 LeanTiles; 3 programs cut the first tile in two, so the merge runs per row block.
    case = make_case([130, 5], 3, 8, 1, 40, seed=3)
    schedule = lean_schedule(case.seqlens.numpy(), 1, tk.block_sizes(40, 4)[0], 3)
    assert schedule.num_pieces.tolist() == [2, 1]
    out, lse = run_lean(case, 3, scale=0.3)
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


def test_op_route_to_triton_with_host_lengths():
    # What the op does for CUDA tensors: check the values once, hand the host lengths to the launcher.
    from accelkit.kernels.lean_attention.op import _check_values

    case = paged(make_case([0, 70, 1], 2, 2, 2, 16, seed=8), 16, seed=2)
    lengths = _check_values(case.seqlens, case.table, case.k)
    np.testing.assert_array_equal(lengths, [0, 70, 1])
    for launch in (tk.lean_attention_triton, tk.split_kv_attention_triton):
        out, lse = launch(case.q, case.k, case.v, case.seqlens, case.table, 0.25, 2, lengths=lengths)
        check_fp32(case, out, lse, scale=0.25)


@pytest.mark.parametrize("splits", [1, 3, 50])
def test_split_kv_triton_matches_oracle(splits):
    case = make_case([0, 1, 130], 2, 2, 1, 16, seed=splits)
    out, lse = tk.split_kv_attention_triton(case.q, case.k, case.v, case.seqlens, None, 16**-0.5, splits)
    check_fp32(case, out, lse)


def test_split_kv_triton_default_splits():
    case = make_case([129], 1, 1, 1, 16, seed=5)
    out, lse = tk.split_kv_attention_triton(case.q, case.k, case.v, case.seqlens, None, 0.25, None)
    check_fp32(case, out, lse)


@given(
    st.sampled_from([torch.float16, torch.bfloat16]),
    lengths_st,
    st.sampled_from([1, 3]),
    st.sampled_from([(1, 1), (4, 2)]),
    st.sampled_from([16, 64]),
    st.integers(1, 7),
    st.sampled_from([None, 16]),
    seeds,
)
def test_lean_triton_16bit_within_flash_criterion(dtype, lengths, t_q, heads, d, programs, page_size, seed):
    case = make_case([max(n, t_q) for n in lengths], t_q, *heads, d, seed=seed, dtype=dtype)
    peer = same_precision_decode(case)
    if page_size is not None:
        case = paged(case, page_size, seed=seed)
    out, lse = run_lean(case, programs)
    ref_out, ref_lse = case.oracle()
    assert out.dtype == dtype
    assert_within_peer_error("out", ref_out, out, peer, dtype=dtype)
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


# --- The public ops (CPU: the C++ path of cpu.py) ---------------------------------------------------------------


def call(fn, case: Case, q: torch.Tensor | None = None, **kwargs):
    return fn(q if q is not None else case.q, case.k, case.v, case.seqlens, block_table=case.table, **kwargs)


@given(
    st.lists(st.one_of(st.sampled_from([0, 1, 2, 255, 256, 257]), st.integers(0, 700)), min_size=1, max_size=4),
    st.sampled_from([0, 1, 2, 5]),  # 0: q [B, H_q, D], one token
    st.sampled_from([(1, 1), (4, 1), (6, 2), (3, 3)]),
    st.sampled_from([1, 7, 64, 80, 128]),
    st.sampled_from([None, 1, 3, 64]),
    st.sampled_from([None, 1, 16]),
    st.sampled_from(["lean", "split"]),
    seeds,
)
def test_op_matches_oracle_cpu(lengths, t_q, heads, d, count, page_size, kind, seed):
    lengths = [max(n, t_q) if n else 0 for n in lengths]
    case = make_case(lengths, max(t_q, 1), *heads, d, seed=seed)
    if page_size is not None:
        case = paged(case, page_size, seed=seed)
    q = case.q[:, 0] if t_q == 0 else case.q
    fn, knob = (lean_attention, "num_programs") if kind == "lean" else (split_kv_attention, "num_splits")
    out, lse = call(fn, case, q, return_lse=True, **{knob: count})
    ref_out, ref_lse = case.oracle()
    if t_q == 0:
        ref_out, ref_lse = ref_out[:, 0], ref_lse[..., 0]
    assert out.shape == q.shape and lse.shape == ref_lse.shape and lse.dtype == torch.float32
    np.testing.assert_array_equal(torch.isneginf(lse).numpy(), np.isneginf(ref_lse))
    assert_close("out", ref_out, out)
    finite = np.isfinite(ref_lse)
    assert_close("lse", ref_lse[finite], lse[torch.from_numpy(finite)])


def test_op_invariant_to_num_programs_cpu():
    case = make_case([1, 0, 3000, 700], 2, 8, 2, 64, seed=21)
    ref_out, _ = case.oracle()
    first = None
    for programs in (1, 2, 7, 200):
        out = call(lean_attention, case, num_programs=programs)
        assert_close(f"out with {programs} programs", ref_out, out)
        first = out if first is None else first
        assert_close(f"out with {programs} programs vs 1", first, out)


@pytest.mark.parametrize("page_size", [1, 16, 256])
def test_op_paged_equals_contiguous_cpu(page_size):
    case = make_case([300, 0, 1, 513], 3, 4, 4, 32, seed=page_size)
    want, want_lse = call(lean_attention, case, return_lse=True, num_programs=5)
    got, lse = call(lean_attention, paged(case, page_size, seed=3), return_lse=True, num_programs=5)
    assert_close("paged out", want, got)
    finite = torch.isfinite(want_lse)
    assert torch.equal(torch.isneginf(lse), torch.isneginf(want_lse))
    assert_close("paged lse", want_lse[finite], lse[finite])


@pytest.mark.parametrize("fn", ["lean", "split"])
def test_op_bf16_cpu_within_flash_criterion(fn):
    case = make_case([400, 17, 1], 2, 4, 2, 64, seed=31, dtype=torch.bfloat16)
    out = call(lean_attention if fn == "lean" else split_kv_attention, case)
    assert out.dtype == torch.bfloat16
    assert_within_peer_error("out", case.oracle()[0], out, same_precision_decode(case), dtype=torch.bfloat16)


def _op_samples() -> list[tuple]:
    contiguous = make_case([40, 0, 7], 2, 4, 2, 16, seed=41)
    pages = paged(make_case([40, 3], 1, 2, 1, 16, seed=42), 16, seed=5)
    return [
        (contiguous.q, contiguous.k, contiguous.v, contiguous.seqlens, None, 0.25, 3),
        (pages.q, pages.k, pages.v, pages.seqlens, pages.table, 0.25, None),
    ]


@pytest.mark.parametrize("op", ["lean_attention", "split_kv_attention"])
def test_opcheck(op):
    for args in _op_samples():
        # The caches hold NaN past each length on purpose; opcheck compares outputs only.
        torch.library.opcheck(getattr(torch.ops.accelkit, op).default, args)


@pytest.mark.parametrize("fn", ["lean", "split"])
def test_torch_compile_fullgraph(fn):
    op = lean_attention if fn == "lean" else split_kv_attention
    case = make_case([50, 1], 1, 4, 2, 32, seed=51)
    q = case.q[:, 0]

    def step(q, k, v, seqlens):
        out, lse = op(q, k, v, seqlens, return_lse=True)
        return out * 2.0, lse

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    out, lse = compiled(q, case.k, case.v, case.seqlens)
    want, want_lse = step(q, case.k, case.v, case.seqlens)
    assert_close("compiled out", want, out)
    assert_close("compiled lse", want_lse, lse)
    assert_close("compiled vs oracle", 2.0 * case.oracle()[0][:, 0], out)


def test_torch_compile_inductor():
    case = make_case([20, 0, 9], 2, 2, 1, 16, seed=52)
    compiled = torch.compile(lambda *a: lean_attention(*a, num_programs=2) + 1.0, fullgraph=True)
    assert_close("inductor", case.oracle()[0] + 1.0, compiled(case.q, case.k, case.v, case.seqlens))


def test_aot_registry_lists_every_kernel_build():
    from accelkit.kernels._common import aot

    ids = {spec.id for spec in aot.discover()}
    for dtype in ("fp16", "bf16", "fp32"):
        for d in (64, 128, 256):
            assert f"lean_attention/lean_attention_kernel[{dtype},d{d}]" in ids


@pytest.mark.parametrize("route", ["op", "triton"])
def test_matches_flash_attention_on_the_same_inputs(route):
    # Decode is causal attention aligned bottom-right over each sequence's first cache_seqlens[b] keys: the varlen
    # flash_attention over the packed valid keys must agree, including the query of a 1-key sequence with T_q = 2
    # that sees nothing.
    from accelkit.ops import flash_attention

    lengths, t_q = [1, 300, 17, 0], 2
    case = make_case(lengths, t_q, 4, 2, 32, seed=91)
    if route == "op":
        out, lse = call(lean_attention, case, return_lse=True, num_programs=3)
    else:
        out, lse = run_lean(case, 3)
    keys = torch.cat([case.k[b, :n] for b, n in enumerate(lengths)])
    values = torch.cat([case.v[b, :n] for b, n in enumerate(lengths)])
    cu_k = torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int32)
    cu_q = torch.arange(len(lengths) + 1, dtype=torch.int32) * t_q
    f_out, f_lse = flash_attention(
        case.q.flatten(0, 1), keys, values, causal=True, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, return_lse=True
    )
    assert_close("lean vs flash out", f_out.double().view(case.q.shape), out)
    f_lse = f_lse.view(case.q.shape[2], len(lengths), t_q).transpose(0, 1)  # [H_q, B * T_q] -> [B, H_q, T_q]
    assert torch.equal(torch.isneginf(lse), torch.isneginf(f_lse))
    finite = torch.isfinite(lse)
    assert_close("lean vs flash lse", f_lse[finite].double(), lse[finite])


def test_public_ops_are_exported():
    import accelkit.ops

    assert accelkit.ops.lean_attention is lean_attention
    assert accelkit.ops.split_kv_attention is split_kv_attention


def _bad(**changes):
    case = make_case([5, 3], 2, 4, 2, 16, seed=61)
    args = {"q": case.q, "k_cache": case.k, "v_cache": case.v, "cache_seqlens": case.seqlens}
    kwargs = {}
    for key, value in changes.items():
        (args if key in args else kwargs)[key] = value(case) if callable(value) else value
    return args, kwargs


BAD_INPUTS = [
    ("q", dict(q=lambda c: c.q.repeat(1, 1, 1, 1)[:, :, :3])),  # 3 query heads over 2 KV heads
    ("k_cache", dict(k_cache=lambda c: c.k[..., :8])),  # head dims differ
    ("q", dict(q=lambda c: torch.zeros(2, 2, 4, 300), k_cache=lambda c: torch.zeros(2, 5, 2, 300),
               v_cache=lambda c: torch.zeros(2, 5, 2, 300))),  # head dim out of range
    ("k_cache", dict(k_cache=lambda c: c.k.double())),
    ("v_cache", dict(v_cache=lambda c: c.v.bfloat16())),
    ("q", dict(q=lambda c: c.q.half(), k_cache=lambda c: c.k.half(), v_cache=lambda c: c.v.half())),  # CPU fp16
    ("cache_seqlens", dict(cache_seqlens=lambda c: torch.tensor([6, 3], dtype=torch.int32))),  # past T_cache
    ("cache_seqlens", dict(cache_seqlens=lambda c: torch.tensor([-1, 3], dtype=torch.int32))),
    ("cache_seqlens", dict(cache_seqlens=lambda c: c.seqlens.long())),
    ("cache_seqlens", dict(cache_seqlens=lambda c: c.seqlens[:1])),
    ("T_q", dict(q=lambda c: torch.zeros(2, 17, 4, 16))),
    ("block_table", dict(k_cache=lambda c: torch.zeros(3, 4, 2, 16), v_cache=lambda c: torch.zeros(3, 4, 2, 16),
                         block_table=torch.tensor([[0, 1], [3, 0]], dtype=torch.int32))),  # page 3 of 3 blocks
    ("block_table", dict(k_cache=lambda c: torch.zeros(3, 4, 2, 16), v_cache=lambda c: torch.zeros(3, 4, 2, 16),
                         block_table=torch.tensor([[0, 1], [2, 0]], dtype=torch.int64))),
    ("cache_seqlens", dict(k_cache=lambda c: torch.zeros(3, 2, 2, 16), v_cache=lambda c: torch.zeros(3, 2, 2, 16),
                           block_table=torch.tensor([[0, 1], [2, 0]], dtype=torch.int32))),  # 5 keys > 2 pages of 2
    ("num_programs", dict(num_programs=0)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "changes"), BAD_INPUTS)
def test_bad_input_raises_value_error_naming_argument(name, changes):
    args, kwargs = _bad(**changes)
    with pytest.raises(ValueError, match=name):
        lean_attention(*args.values(), **kwargs)


def test_bad_types_raise_type_error():
    case = make_case([5], 1, 1, 1, 16, seed=71)
    with pytest.raises(TypeError, match="scale"):
        lean_attention(case.q, case.k, case.v, case.seqlens, scale="0.5")
    with pytest.raises(TypeError, match="num_splits"):
        split_kv_attention(case.q, case.k, case.v, case.seqlens, num_splits=2.5)
    with pytest.raises(TypeError, match="k_cache"):
        lean_attention(case.q, case.k.numpy(), case.v, case.seqlens)


# --- The public ops on a GPU (Triton) ---------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("page_size", [None, 1, 16, 256])
def test_op_cuda_matches_oracle(dtype, d, page_size):
    case = make_case([0, 1, 5000, 777], 3, 8, 2, d, seed=d, dtype=dtype)
    peer = same_precision_decode(case)
    if page_size is not None:
        case = paged(case, page_size, seed=1)
    ref_out, ref_lse = case.oracle()
    dev = Case(*(None if x is None else x.cuda() for x in (case.q, case.k, case.v, case.seqlens, case.table)))
    for programs in (None, 1, 7, 10_000):
        out, lse = call(lean_attention, dev, return_lse=True, num_programs=programs)
        check_device_result(ref_out, ref_lse, out.cpu(), lse.cpu(), peer, dtype)
    for splits in (None, 1, 5):
        out, lse = call(split_kv_attention, dev, return_lse=True, num_splits=splits)
        check_device_result(ref_out, ref_lse, out.cpu(), lse.cpu(), peer, dtype)


def check_device_result(ref_out, ref_lse, out, lse, peer, dtype) -> None:
    assert not torch.isnan(out).any()
    np.testing.assert_array_equal(torch.isneginf(lse).numpy(), np.isneginf(ref_lse))
    finite = np.isfinite(ref_lse)
    if dtype == torch.float32:
        assert_close("out", ref_out, out)
        assert_close("lse", ref_lse[finite], lse[torch.from_numpy(finite)])
    else:
        assert_within_peer_error("out", ref_out, out, peer, dtype=dtype)
        assert_close("lse", ref_lse[finite], lse.numpy()[finite], dtype=dtype)


@pytest.mark.cuda
def test_op_cuda_compile_and_opcheck():
    for args in _op_samples():
        dev = tuple(x.cuda() if isinstance(x, torch.Tensor) else x for x in args)
        torch.library.opcheck(torch.ops.accelkit.lean_attention.default, dev)
        torch.library.opcheck(torch.ops.accelkit.split_kv_attention.default, dev)
    case = make_case([300, 2], 1, 4, 2, 64, seed=81, dtype=torch.float16)
    q, k, v, s = (x.cuda() for x in (case.q, case.k, case.v, case.seqlens))
    compiled = torch.compile(lambda *a: lean_attention(*a), fullgraph=True)
    assert_close("compiled", lean_attention(q, k, v, s).cpu(), compiled(q, k, v, s).cpu())
