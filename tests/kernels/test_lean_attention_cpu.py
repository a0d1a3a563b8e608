"""The C++ decode attention (csrc/attention_decode.cpp, launchers in kernels/lean_attention/cpu.py) against the
float64 oracle kernels/attention/reference.decode_attention.

The kernel computes in float32 whatever the input dtypes (bfloat16 caches and queries widen exactly), so outputs
meet the float32 row of the tolerance table, and a bfloat16 output the bfloat16 row (one rounding of a float32
result). The oracle gets the same bfloat16 values widened, so the comparison measures the kernel alone.
"""

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given
from strategies import seeds
from tolerance import assert_close

from accelkit._native import native
from accelkit.kernels.attention.reference import decode_attention
from accelkit.kernels.lean_attention.cpu import CPU_BLOCK_N, lean_attention_cpu, split_kv_attention_cpu
from accelkit.kernels.lean_attention.schedule import lean_schedule

ISAS = [
    pytest.param(isa, marks=pytest.mark.skipif(not native().decode_attention_isa_supported(isa), reason=f"no {isa}"))
    for isa in ("avx512", "avx2", "scalar")
]
HEAD_DIMS = (1, 3, 16, 33, 64, 128)
CHUNKS = (1, 2, 5, 16)
# Lengths on the edges of the kernel's 64-key chunks and of small LeanTiles, and the empty and one-key caches.
lengths_st = st.one_of(st.sampled_from([0, 1, 2, 15, 16, 17, 63, 64, 65, 129]), st.integers(0, 200))


def _inputs(seed, batch, t_q, h_kv, group, d, lengths, *, cache_dtype=torch.float32, q_dtype=torch.float32, extra=3):
    gen = torch.Generator().manual_seed(seed)
    t_cache = max(lengths, default=0) + extra
    q = torch.randn(batch, t_q, h_kv * group, d, generator=gen).to(q_dtype)
    k = torch.randn(batch, t_cache, h_kv, d, generator=gen).to(cache_dtype)
    v = torch.randn(batch, t_cache, h_kv, d, generator=gen).to(cache_dtype)
    return q, k, v, torch.tensor(lengths, dtype=torch.int32)


def _oracle(q, k, v, seqlens, block_table=None, scale=None):
    table = None if block_table is None else block_table.numpy()
    f64 = [x.double().numpy() for x in (q, k, v)]
    return decode_attention(*f64, seqlens.numpy(), block_table=table, scale=scale)


def _check(name, ref, out, lse, q_dtype):
    assert out.dtype == q_dtype and lse.dtype == torch.float32
    assert_close(f"{name} out", ref[0], out, dtype=q_dtype)
    _check_lse(f"{name} lse", ref[1], lse)


def _check_lse(name, ref, lse):
    """-inf (a query that saw no key) exactly where the oracle has it, the finite values within float32's
    tolerance (assert_close would subtract -inf from -inf)."""
    ref = np.asarray(ref, dtype=np.float64)
    got = lse.double().numpy()
    empty = np.isneginf(ref)
    np.testing.assert_array_equal(np.isneginf(got), empty, err_msg=f"{name}: -inf pattern")
    assert_close(name, np.where(empty, 0.0, ref), np.where(empty, 0.0, got), dtype=torch.float32)


def _paged(k, v, seqlens, page_size, seed):
    """The cache as shuffled pages [num_pages, page_size, H_kv, D] with a block table, plus one spare page no
    sequence uses (filled with NaN: reading it would show)."""
    batch, t_cache = k.shape[:2]
    per_seq = -(-t_cache // page_size)
    num_pages = batch * per_seq + 1
    order = torch.randperm(batch * per_seq, generator=torch.Generator().manual_seed(seed))
    table = order.reshape(batch, per_seq).to(torch.int32)
    pages = []
    for cache in (k, v):
        padded = torch.full((batch, per_seq * page_size, *cache.shape[2:]), float("nan"), dtype=cache.dtype)
        padded[:, :t_cache] = cache
        paged = torch.full((num_pages, page_size, *cache.shape[2:]), float("nan"), dtype=cache.dtype)
        paged[table.reshape(-1).long()] = padded.reshape(batch * per_seq, page_size, *cache.shape[2:])
        pages.append(paged)
    return pages[0], pages[1], table


@given(
    seed=seeds,
    lengths=st.lists(lengths_st, min_size=1, max_size=3),
    t_q=st.sampled_from(CHUNKS),
    h_kv=st.integers(1, 3),
    group=st.sampled_from([1, 2, 3, 4]),
    d=st.sampled_from(HEAD_DIMS),
    cache_dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    q_dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    num_programs=st.one_of(st.none(), st.sampled_from([1, 2, 7]), st.integers(1, 40)),
)
@pytest.mark.parametrize("isa", ISAS)
def test_lean_matches_oracle(isa, seed, lengths, t_q, h_kv, group, d, cache_dtype, q_dtype, num_programs):
    q, k, v, seqlens = _inputs(
        seed, len(lengths), t_q, h_kv, group, d, lengths, cache_dtype=cache_dtype, q_dtype=q_dtype
    )
    out, lse = lean_attention_cpu(q, k, v, seqlens, None, None, num_programs, block_n=16, isa=isa)
    _check("lean", _oracle(q, k, v, seqlens), out, lse, q_dtype)


@given(
    seed=seeds,
    lengths=st.lists(lengths_st, min_size=1, max_size=3),
    t_q=st.sampled_from(CHUNKS),
    h_kv=st.integers(1, 3),
    group=st.sampled_from([1, 2]),
    d=st.sampled_from(HEAD_DIMS),
    num_splits=st.one_of(st.none(), st.integers(1, 9)),
)
def test_split_kv_matches_oracle(seed, lengths, t_q, h_kv, group, d, num_splits):
    q, k, v, seqlens = _inputs(seed, len(lengths), t_q, h_kv, group, d, lengths)
    out, lse = split_kv_attention_cpu(q, k, v, seqlens, None, None, num_splits, block_n=16)
    _check("split-KV", _oracle(q, k, v, seqlens), out, lse, torch.float32)


@pytest.mark.parametrize("page_size", [1, 16, 256])
@pytest.mark.parametrize("cache_dtype", [torch.float32, torch.bfloat16])
def test_paged_equals_contiguous(page_size, cache_dtype):
    lengths = [0, 1, 300, 257, 64]
    q, k, v, seqlens = _inputs(7, len(lengths), 2, 2, 2, 64, lengths, cache_dtype=cache_dtype)
    k_pages, v_pages, table = _paged(k, v, seqlens, page_size, seed=page_size)
    for programs in (1, 3, 11):
        flat = lean_attention_cpu(q, k, v, seqlens, None, 0.1, programs, block_n=32)
        paged = lean_attention_cpu(q, k_pages, v_pages, seqlens, table, 0.1, programs, block_n=32)
        # The same schedule does the same float operations in the same order whatever the page layout.
        assert torch.equal(flat[0], paged[0]) and torch.equal(flat[1], paged[1])
    ref = _oracle(q, k_pages, v_pages, seqlens, table, scale=0.1)
    _check(f"paged page_size={page_size}", ref, *paged, torch.float32)


def test_output_invariant_to_num_programs():
    lengths = [0, 1, 2000, 777, 64]
    q, k, v, seqlens = _inputs(3, len(lengths), 5, 3, 2, 128, lengths)
    tiles = lean_schedule(seqlens.numpy(), 3, CPU_BLOCK_N, 1).total_lean_tiles
    base_out, base_lse = lean_attention_cpu(q, k, v, seqlens, None, None, 1)
    for programs in (2, 7, tiles + 5):
        out, lse = lean_attention_cpu(q, k, v, seqlens, None, None, programs)
        assert_close(f"num_programs={programs} out", base_out.double(), out)
        _check_lse(f"num_programs={programs} lse", base_lse.double().numpy(), lse)
    _check("lean num_programs=1", _oracle(q, k, v, seqlens), base_out, base_lse, torch.float32)


def test_same_schedule_same_bits_on_any_thread_count():
    lengths = [3000, 1, 900]
    q, k, v, seqlens = _inputs(5, len(lengths), 1, 4, 1, 64, lengths)
    runs = [lean_attention_cpu(q, k, v, seqlens, None, None, 6, threads=t) for t in (1, 2, 6)]
    for out, lse in runs[1:]:
        assert torch.equal(out, runs[0][0]) and torch.equal(lse, runs[0][1])


def test_long_sequence_many_groups_and_pieces():
    # 64-row groups (T_q = 16 x 4 query heads), heads beyond one group, several chunks and pieces per tile.
    lengths = [5000, 4097]
    q, k, v, seqlens = _inputs(11, len(lengths), 16, 5, 4, 40, lengths, cache_dtype=torch.bfloat16)
    out, lse = lean_attention_cpu(q, k, v, seqlens, None, None, 7, block_n=64)
    _check("long", _oracle(q, k, v, seqlens), out, lse, torch.float32)
    lengths = [6000]
    q, k, v, seqlens = _inputs(12, 1, 1, 96, 1, 32, lengths)
    out, lse = lean_attention_cpu(q, k, v, seqlens, None, None, 3, block_n=128)
    _check("96 heads", _oracle(q, k, v, seqlens), out, lse, torch.float32)


@pytest.mark.parametrize("layout", ["q_transposed", "q_strided", "cache_strided_heads"])
def test_non_contiguous(layout):
    lengths = [70, 0, 130]
    q, k, v, seqlens = _inputs(9, len(lengths), 5, 2, 2, 33, lengths)
    if layout == "q_transposed":
        q = q.transpose(1, 2).contiguous().transpose(1, 2)
    elif layout == "q_strided":
        wide = torch.full((*q.shape[:-1], 2 * q.shape[-1]), float("nan"))
        wide[..., ::2] = q
        q = wide[..., ::2]
    else:
        # Every other KV head of a cache with twice the heads: rows of D still contiguous, heads 2 D apart.
        wide_k = torch.full((*k.shape[:2], 2 * k.shape[2], k.shape[3]), float("nan"))
        wide_v = wide_k.clone()
        wide_k[:, :, ::2], wide_v[:, :, ::2] = k, v
        k, v = wide_k[:, :, ::2], wide_v[:, :, ::2]
    assert not (q.is_contiguous() and k.is_contiguous())
    out, lse = lean_attention_cpu(q, k, v, seqlens, None, None, 3, block_n=16)
    _check(layout, _oracle(q, k, v, seqlens), out, lse, torch.float32)


def test_cache_with_strided_head_dim_is_copied():
    lengths = [20]
    q, k, v, seqlens = _inputs(1, 1, 1, 2, 1, 8, lengths)
    k_t = k.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert k_t.stride(-1) != 1
    out, lse = lean_attention_cpu(q, k_t, v, seqlens, None, None, 2)
    _check("strided D", _oracle(q, k, v, seqlens), out, lse, torch.float32)


def test_empty_batch_and_all_empty_sequences():
    q, k, v, seqlens = _inputs(2, 3, 2, 2, 2, 16, [0, 0, 0])
    out, lse = lean_attention_cpu(q, k, v, seqlens, None, None, 4)
    assert torch.equal(out, torch.zeros_like(out)) and torch.isneginf(lse).all()
    q, k, v, seqlens = _inputs(2, 0, 2, 2, 2, 16, [])
    out, lse = lean_attention_cpu(q, k, v, seqlens, None, None, None)
    assert out.shape == (0, 2, 4, 16) and lse.shape == (0, 4, 2)


def test_chunk_longer_than_cache():
    # T_q = 5 over 3 keys: queries 0 and 1 see nothing (0, -inf), query 2 sees key 0, ...
    q, k, v, seqlens = _inputs(4, 1, 5, 1, 1, 16, [3])
    out, lse = lean_attention_cpu(q, k, v, seqlens, None, None, 2)
    assert torch.isneginf(lse[0, 0, :2]).all() and torch.equal(out[0, :2], torch.zeros_like(out[0, :2]))
    _check("T_q > length", _oracle(q, k, v, seqlens), out, lse, torch.float32)


def _bad_inputs():
    q, k, v, seqlens = _inputs(0, 2, 2, 2, 2, 8, [5, 9])
    k_pages, v_pages, table = _paged(k, v, seqlens, 4, seed=0)
    bad_table = table.clone()
    bad_table[1, 0] = k_pages.shape[0]
    return [
        ("q", (q[..., :4], k, v, seqlens, None)),  # head dims differ
        ("H_q", (q[:, :, :3], k, v, seqlens, None)),  # 3 query heads over 2 KV heads
        ("q", (torch.zeros(2, 17, 4, 8), k, v, seqlens, None)),  # T_q > 16
        ("q", (q[0], k, v, seqlens, None)),  # 3-D
        ("k_cache", (q, k.half(), v.half(), seqlens, None)),
        ("v_cache", (q, k, v.bfloat16(), seqlens, None)),
        ("v_cache", (q, k, v[:, :-1], seqlens, None)),
        ("cache_seqlens", (q, k, v, torch.tensor([5, 99], dtype=torch.int32), None)),
        ("cache_seqlens", (q, k, v, torch.tensor([5, -1], dtype=torch.int32), None)),
        ("cache_seqlens", (q, k, v, torch.tensor([5], dtype=torch.int32), None)),
        ("cache_seqlens", (q, k, v, seqlens.float(), None)),
        ("block_table", (q, k_pages, v_pages, seqlens, bad_table)),
        ("block_table", (q, k_pages, v_pages, seqlens, table.long())),
        ("block_table", (q, k_pages, v_pages, seqlens, table[:1])),
        ("k_cache", (q, k[:1], v[:1], seqlens, None)),  # contiguous cache with B != 2
    ]


@pytest.mark.parametrize("case", range(len(_bad_inputs())))
def test_bad_input_names_the_argument(case):
    name, args = _bad_inputs()[case]
    with pytest.raises(ValueError, match=name):
        lean_attention_cpu(*args, None, 2)


def test_type_errors():
    q, k, v, seqlens = _inputs(0, 1, 1, 1, 1, 8, [5])
    with pytest.raises(TypeError, match="q"):
        lean_attention_cpu(q.numpy(), k, v, seqlens, None, None, 1)
    with pytest.raises(ValueError, match="num_programs"):
        lean_attention_cpu(q, k, v, seqlens, None, None, 0)
    with pytest.raises(ValueError, match="num_splits"):
        split_kv_attention_cpu(q, k, v, seqlens, None, None, 0)


def _binding_args(lengths, programs=3, block_n=4):
    q, k, v, seqlens = _inputs(0, len(lengths), 1, 2, 1, 8, lengths)
    sched = lean_schedule(seqlens.numpy(), 2, block_n, programs)
    arrays = {
        name: getattr(sched, name).copy()
        for name in ("tile_offsets", "program_starts", "first_program", "num_pieces", "piece_offsets")
    }
    out = np.empty(q.shape, dtype=np.float32)
    lse = np.empty((q.shape[0], q.shape[2], q.shape[1]), dtype=np.float32)
    args = dict(
        q=q.numpy(),
        k_cache=k.numpy(),
        v_cache=v.numpy(),
        cache_seqlens=seqlens.long().numpy(),
        block_table=None,
        scale=0.3,
        block_n=block_n,
        out=out,
        lse=lse,
        **arrays,
    )
    return args


def test_binding_refuses_inconsistent_schedules():
    """The binding checks the schedule it is handed, so no array can send the kernel out of bounds."""
    good = _binding_args([9, 13])
    native().decode_attention(**good)
    tampered = [
        ("tile_offsets", lambda a: a["tile_offsets"].__setitem__(-1, 99)),
        ("program_starts", lambda a: a["program_starts"].__setitem__(1, 0)),
        ("program_starts", lambda a: a["program_starts"].__setitem__(-1, 5)),
        ("first_program", lambda a: a["first_program"].__setitem__(1, 2)),
        ("num_pieces", lambda a: a["num_pieces"].__setitem__(0, 5)),
        ("num_pieces", lambda a: a.update(num_pieces=np.zeros_like(a["num_pieces"]))),
        ("piece_offsets", lambda a: a["piece_offsets"].__setitem__(-1, 1000)),
        ("block_n", lambda a: a.update(block_n=0)),
        ("tile_offsets", lambda a: a.update(block_n=2**63 - 1)),
        ("num_pieces", lambda a: a["num_pieces"].__setitem__(0, 2**62)),
        ("out", lambda a: a.update(out=a["q"])),
        ("lse", lambda a: a.update(lse=np.empty((2, 2, 2), dtype=np.float32))),
        ("scale", lambda a: a.update(scale=float("nan"))),
        ("isa", lambda a: a.update(isa="sse9")),
        ("threads", lambda a: a.update(threads=-1)),
        ("tile_offsets", lambda a: a.update(tile_offsets=a["tile_offsets"].astype(np.int32))),
    ]
    for name, tamper in tampered:
        args = _binding_args([9, 13])
        tamper(args)
        with pytest.raises(ValueError, match=name):
            native().decode_attention(**args)
