"""Properties of the attention oracle (kernels/attention/reference.py) and of the softmax state and merge
(kernels/attention/softmax_state.py), in float64 NumPy on small odd sizes, against an independent per-row loop, the
softmax algebra and finite differences. Every test runs with NumPy's invalid and divide flags raising, so an
intermediate NaN (-inf - -inf, 0 / 0, log 0) fails the test even when it is masked out later."""

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given
from strategies import seeds, sizes
from tolerance import assert_close

from accelkit.kernels.attention import reference as ref
from accelkit.kernels.attention import softmax_state as ss


def strict(test: Callable) -> Callable:
    """Run `test` with NumPy raising on invalid operations and division by zero."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(invalid="raise", divide="raise"):
            return test(*args, **kwargs)

    return wrapper


def assert_same(name: str, expected: np.ndarray, got: np.ndarray) -> None:
    """float64 closeness that also accepts -inf where -inf is expected (an empty row's LSE), and never NaN."""
    expected, got = np.asarray(expected), np.asarray(got)
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != {expected.shape}"
    assert not np.isnan(got).any(), f"{name}: NaN at {np.argwhere(np.isnan(got))[:3].tolist()}"
    empty = np.isneginf(expected)
    np.testing.assert_array_equal(np.isneginf(got), empty, err_msg=f"{name}: -inf in different places")
    assert_close(name, np.where(empty, 0.0, expected), np.where(empty, 0.0, got))


# --- An independent oracle: one query row at a time, written from the definitions ---------------------------------


def visible(i: int, j: int, t_q: int, t_k: int, causal: bool, window: tuple[int, int]) -> bool:
    """Key j against query i, by its offset from the key aligned with i (the last query aligns with the last key)."""
    offset = j - (i + t_k - t_q)
    left, right = window
    return (not causal or offset <= 0) and (left < 0 or offset >= -left) and (right < 0 or offset <= right)


def row_attention(q_i: np.ndarray, keys: np.ndarray, values: np.ndarray, scale: float, softcap: float):
    """(output [Dv], lse) of one query q_i [D] over the keys [N, D] it sees; (0, -inf) when N = 0."""
    if len(keys) == 0:
        return np.zeros(values.shape[-1]), -np.inf
    s = np.array([scale * float(np.dot(q_i, key)) for key in keys])
    if softcap:
        s = softcap * np.tanh(s / softcap)
    weights = np.exp(s - s.max())
    return weights @ values / weights.sum(), s.max() + np.log(weights.sum())


def loop_attention(q, k, v, *, causal=False, scale=None, window=(-1, -1), softcap=0.0):
    """One sequence: q [T_q, H_q, D], k [T_k, H_kv, D], v [T_k, H_kv, Dv] -> (o [T_q, H_q, Dv], lse [H_q, T_q])."""
    (t_q, h_q, d), (t_k, h_kv, _) = q.shape, k.shape
    scale = d**-0.5 if scale is None else scale
    out, lse = np.zeros((t_q, h_q, v.shape[-1])), np.full((h_q, t_q), -np.inf)
    for h in range(h_q):
        g = h * h_kv // h_q  # the kv head whose group holds query head h
        for i in range(t_q):
            seen = [j for j in range(t_k) if visible(i, j, t_q, t_k, causal, window)]
            out[i, h], lse[h, i] = row_attention(q[i, h], k[seen, g], v[seen, g], scale, softcap)
    return out, lse


# --- Problems -----------------------------------------------------------------------------------------------------


@dataclass
class Problem:
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    knobs: dict = field(default_factory=dict)
    cu_q: np.ndarray | None = None
    cu_k: np.ndarray | None = None

    @property
    def varlen(self) -> dict:
        return {} if self.cu_q is None else {"cu_seqlens_q": self.cu_q, "cu_seqlens_k": self.cu_k}

    def sequences(self):
        """(q, k, v) of each sequence, [T, H, D] each."""
        if self.cu_q is None:
            return list(zip(self.q, self.k, self.v, strict=True))
        bounds = zip(self.cu_q[:-1], self.cu_q[1:], self.cu_k[:-1], self.cu_k[1:], strict=True)
        return [(self.q[a:b], self.k[c:d], self.v[c:d]) for a, b, c, d in bounds]


def small(max_value: int) -> st.SearchStrategy[int]:
    """Sizes from 0 (an empty sequence) to max_value, favouring 1 and odd sizes."""
    return sizes(max_value, min_value=0)


window_sides = st.one_of(st.just(-1), st.integers(0, 6))


@st.composite
def knobs(draw, *, causal=None) -> dict:
    return {
        "causal": draw(st.booleans()) if causal is None else causal,
        "window": (draw(window_sides), draw(window_sides)),
        "softcap": draw(st.one_of(st.just(0.0), st.floats(0.5, 5.0))),
        "scale": draw(st.one_of(st.none(), st.floats(0.1, 2.0))),
    }


@st.composite
def problems(draw, *, varlen=False, max_t=7, max_d=6, causal=None, t_q=None, t_k=None) -> Problem:
    """q, k, v with random B, T_q, T_k (0 included), H_kv, the group size H_q // H_kv, D and Dv, and knobs."""
    batch, h_kv, group = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    d, dv = draw(sizes(max_d)), draw(sizes(max_d))
    rng = np.random.default_rng(draw(seeds))
    lens_q = [draw(small(max_t)) if t_q is None else t_q for _ in range(batch if varlen else 1)]
    lens_k = [draw(small(max_t + 2)) if t_k is None else t_k for _ in lens_q]
    if varlen:
        rows_q, rows_k = (sum(lens_q),), (sum(lens_k),)
    else:
        rows_q, rows_k = (batch, lens_q[0]), (batch, lens_k[0])
    p = Problem(
        q=1.5 * rng.standard_normal((*rows_q, h_kv * group, d)),
        k=1.5 * rng.standard_normal((*rows_k, h_kv, d)),
        v=rng.standard_normal((*rows_k, h_kv, dv)),
        knobs=draw(knobs(causal=causal)),
    )
    if varlen:
        p.cu_q = np.cumsum([0, *lens_q]).astype(np.int32)
        p.cu_k = np.cumsum([0, *lens_k]).astype(np.int32)
    return p


# --- The oracle against the per-row loop ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t_q", "t_k", "expected"),
    [  # flash-attn's README (changelog 2.1) shows these two causal masks for the bottom-right alignment.
        (2, 5, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]),
        (5, 2, [[0, 0], [0, 0], [0, 0], [1, 0], [1, 1]]),
    ],
)
def test_causal_mask_is_aligned_bottom_right(t_q, t_k, expected):
    np.testing.assert_array_equal(ref.attention_mask(t_q, t_k, causal=True), np.array(expected, dtype=bool))


def test_window_mask_on_a_square():
    # Query 3 of 6 with window (1, 2) sees keys 2..5; causal then cuts the keys after 3.
    assert ref.attention_mask(6, 6, window=(1, 2))[3].nonzero()[0].tolist() == [2, 3, 4, 5]
    assert ref.attention_mask(6, 6, causal=True, window=(1, 2))[3].nonzero()[0].tolist() == [2, 3]


@given(small(9), small(9), window_sides)
def test_causal_is_the_window_cut_at_the_diagonal(t_q, t_k, left):
    causal = ref.attention_mask(t_q, t_k, causal=True, window=(left, -1))
    np.testing.assert_array_equal(causal, ref.attention_mask(t_q, t_k, window=(left, 0)))


@given(problems())
@strict
def test_dense_matches_row_loop(p: Problem):
    out, lse = ref.attention(p.q, p.k, p.v, **p.knobs)
    for b, (q, k, v) in enumerate(p.sequences()):
        want_out, want_lse = loop_attention(q, k, v, **p.knobs)
        assert_same("output", want_out, out[b])
        assert_same("lse", want_lse, lse[b])


@given(problems(varlen=True))
@strict
def test_varlen_matches_row_loop_and_each_sequence_alone(p: Problem):
    out, lse = ref.attention(p.q, p.k, p.v, **p.knobs, **p.varlen)
    assert out.shape == (*p.q.shape[:2], p.v.shape[-1]) and lse.shape == (p.q.shape[1], p.q.shape[0])
    for b, (q, k, v) in enumerate(p.sequences()):
        rows = slice(p.cu_q[b], p.cu_q[b + 1])
        alone_out, alone_lse = ref.attention(q[None], k[None], v[None], **p.knobs)
        assert_same("output vs alone", alone_out[0], out[rows])
        assert_same("lse vs alone", alone_lse[0], lse[:, rows])
        want_out, want_lse = loop_attention(q, k, v, **p.knobs)
        assert_same("output vs loop", want_out, out[rows])
        assert_same("lse vs loop", want_lse, lse[:, rows])


@given(problems())
@strict
def test_zero_query_averages_visible_values_with_natural_log_lse(p: Problem):
    # q = 0 makes every score 0 (softcap too), so lse = ln(visible keys) and the output is their plain mean.
    out, lse = ref.attention(np.zeros_like(p.q), p.k, p.v, **p.knobs)
    mask = ref.attention_mask(p.q.shape[1], p.k.shape[1], causal=p.knobs["causal"], window=p.knobs["window"])
    count = mask.sum(axis=1)
    group = p.q.shape[2] // p.k.shape[2]
    v = np.repeat(p.v, group, axis=2)  # [B, T_k, H_q, Dv]
    mean = np.einsum("ij,bjhd->bihd", mask, v) / np.maximum(count, 1)[None, :, None, None]
    assert_same("output", mean, out)
    log_count = np.where(count > 0, np.log(np.maximum(count, 1)), -np.inf)
    assert_same("lse", np.broadcast_to(log_count, lse.shape), lse)


def test_equal_scores_of_huge_magnitude_weigh_keys_equally():
    # A fuzz find: with scores near -1.7e19 (scale 2^63), exp(s - lse) lost log(2) and weighted two equal keys by 1
    # each; the forward must still average them.
    q = np.array([[[[-0.5869]]]])
    k = np.array([[[[3.082]], [[3.082]]]])
    v = np.array([[[[-2.0]], [[-3.0]]]])
    out, lse = ref.attention(q, k, v, scale=float(2**63))
    np.testing.assert_allclose(out, [[[[-2.5]]]], rtol=1e-12)
    assert np.isfinite(lse).all()


@given(problems(causal=True), st.data())
@strict
def test_fully_masked_rows_give_zero_and_minus_inf(p: Problem, data):
    # Causal with T_k < T_q leaves the first T_q - T_k queries without keys; T_k = 0 leaves every query without.
    t_q = p.q.shape[1]
    cut = data.draw(st.integers(0, max(t_q - 1, 0)), label="t_k")
    k, v = p.k[:, :cut], p.v[:, :cut]
    t_k = k.shape[1]
    out, lse = ref.attention(p.q, k, v, **p.knobs)
    empty = ~ref.attention_mask(t_q, t_k, causal=True, window=p.knobs["window"]).any(axis=1)
    assert empty[: t_q - t_k].all()
    assert not np.isnan(out).any() and not np.isnan(lse).any()
    assert (out[:, empty] == 0).all() and np.isneginf(lse[:, :, empty]).all()
    assert np.isfinite(out).all() and np.isfinite(lse[:, :, ~empty]).all()
    dq, dk, dv = ref.attention_bwd(p.q, k, v, out, lse, np.ones_like(out), **p.knobs)
    assert (dq[:, empty] == 0).all() and np.isfinite(dk).all() and np.isfinite(dv).all()


# --- Softmax state and merge ---------------------------------------------------------------------------------------


@st.composite
def partials(draw, count: int, *, garbage_when_empty=False):
    """`count` partials (o [M, Dv], lse [M]) over the same rows; some rows of some pieces are empty (lse -inf)."""
    rows, dv = draw(sizes(5)), draw(sizes(4))
    rng = np.random.default_rng(draw(seeds))
    out = []
    for _ in range(count):
        lse = rng.uniform(-30, 30, rows)
        lse[rng.random(rows) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = -np.inf
        o = rng.standard_normal((rows, dv))
        o[np.isneginf(lse)] = np.nan if garbage_when_empty else 0.0
        out.append((o, lse))
    return out


@given(partials(3))
@strict
def test_partial_merge_is_associative_and_commutative(pieces):
    a, b, c = pieces
    left = ss.merge_partials(*ss.merge_partials(*a, *b), *c)
    right = ss.merge_partials(*a, *ss.merge_partials(*b, *c))
    for name, x, y in (("o", left[0], right[0]), ("lse", left[1], right[1])):
        assert_same(f"associative {name}", x, y)
    for x, y in zip(ss.merge_partials(*a, *b), ss.merge_partials(*b, *a), strict=True):
        assert_same("commutative", x, y)


@given(partials(3))
@strict
def test_state_merge_is_associative_and_commutative(pieces):
    a, b, c = (ss.to_state(o, lse) for o, lse in pieces)
    left = ss.finalize(ss.merge_states(ss.merge_states(a, b), c))
    right = ss.finalize(ss.merge_states(a, ss.merge_states(b, c)))
    swapped = ss.finalize(ss.merge_states(ss.merge_states(c, b), a))
    for x, y, z in zip(left, right, swapped, strict=True):
        assert_same("associative", x, y)
        assert_same("commutative", x, z)


@given(partials(2, garbage_when_empty=True))
@strict
def test_empty_piece_is_the_identity_even_with_garbage_output(pieces):
    (o, lse), (garbage, _) = pieces
    o = np.where(np.isneginf(lse)[:, None], 0.0, o)
    nothing = np.full(lse.shape, -np.inf)
    merged = ss.merge_partials(o, lse, garbage, nothing)
    assert_same("o", o, merged[0])
    assert_same("lse", lse, merged[1])
    round_trip = ss.finalize(ss.to_state(o, lse))
    assert_same("to_state/finalize o", o, round_trip[0])
    assert_same("to_state/finalize lse", lse, round_trip[1])


@given(st.integers(0, 5).flatmap(partials))
@strict
def test_combine_equals_pairwise_fold(pieces):
    if not pieces:
        o, lse = ss.combine_partials(np.zeros((0, 2, 3)), np.zeros((0, 2)))
        assert (o == 0).all() and np.isneginf(lse).all()
        return
    folded = functools.reduce(lambda acc, piece: ss.merge_partials(*acc, *piece), pieces[1:], pieces[0])
    combined = ss.combine_partials(np.stack([o for o, _ in pieces]), np.stack([lse for _, lse in pieces]))
    assert_same("o", folded[0], combined[0])
    assert_same("lse", folded[1], combined[1])


def random_tree_merge(pieces: list, rnd: random.Random) -> tuple:
    """Merge partials two at a time, picking any two (so any order and any bracketing), down to one."""
    pieces = list(pieces)
    while len(pieces) > 1:
        a = pieces.pop(rnd.randrange(len(pieces)))
        b = pieces.pop(rnd.randrange(len(pieces)))
        pieces.append(ss.merge_partials(*a, *b))
    return pieces[0]


@given(problems(max_t=9), st.lists(st.integers(0, 11), max_size=5), st.randoms(use_true_random=False))
@strict
def test_any_split_of_the_keys_merges_to_the_unsplit_answer(p: Problem, cuts, rnd):
    want_out, want_lse = ref.attention(p.q, p.k, p.v, **p.knobs)
    want_out = np.swapaxes(want_out, 1, 2)  # [B, H_q, T_q, Dv], the rows-last layout of the state
    s = ref.masked_scores(p.q, p.k, **p.knobs)  # [B, H_q, T_q, T_k]
    v = np.swapaxes(ref.expand_kv_heads(p.v, p.q.shape[2]), 1, 2)  # [B, H_q, T_k, Dv]
    t_k = s.shape[-1]
    bounds = [0, *sorted(min(c, t_k) for c in cuts), t_k]  # repeated cuts make empty pieces
    blocks = [(s[..., a:b], v[..., a:b, :]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    state = ss.empty_state(s.shape[:-1], v.shape[-1])
    for block in blocks:  # online softmax, block after block
        state = ss.update(state, *block)
    partial = [ss.finalize(ss.block_state(*block)) for block in blocks]
    stacked = (np.stack([o for o, _ in partial]), np.stack([lse for _, lse in partial]))
    for how, (out, lse) in {
        "online": ss.finalize(state),
        "merge tree": random_tree_merge(partial, rnd),
        "combine": ss.combine_partials(*stacked),
    }.items():
        assert_same(f"{how} output", want_out, out)
        assert_same(f"{how} lse", want_lse, lse)


# --- Decode over contiguous and paged caches -----------------------------------------------------------------------


@st.composite
def decode_problems(draw):
    """q [B, H_q, D] or [B, T_q, H_q, D], a contiguous cache with NaN past each length, and the same keys paged."""
    batch, h_kv, group = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    d, dv, page = draw(sizes(5)), draw(sizes(5)), draw(st.sampled_from([1, 3, 16]))
    t_q = draw(st.one_of(st.none(), st.integers(1, 4)))
    lengths = np.array([draw(st.one_of(st.sampled_from([0, 1]), st.integers(0, 20))) for _ in range(batch)])
    rng = np.random.default_rng(draw(seeds))
    capacity = max(int(lengths.max()), 1) + draw(st.integers(0, 5))
    q = rng.standard_normal((batch, h_kv * group, d) if t_q is None else (batch, t_q, h_kv * group, d))
    caches = [rng.standard_normal((batch, capacity, h_kv, x)) for x in (d, dv)]
    for cache in caches:
        for b, length in enumerate(lengths):
            cache[b, length:] = np.nan  # never read: rows past cache_seqlens
    max_blocks = -(-capacity // page)
    num_blocks = batch * max_blocks + draw(st.integers(0, 3))
    order = rng.permutation(num_blocks)  # pages scattered at random; the leftover ones stay NaN
    table = np.where(rng.random((batch, max_blocks)) < 0.5, -1, num_blocks + 7)  # garbage in unused entries
    paged = [np.full((num_blocks, page, h_kv, x), np.nan) for x in (d, dv)]
    for b, length in enumerate(lengths):
        for n in range(-(-int(length) // page)):
            table[b, n] = order[b * max_blocks + n]
            rows = slice(n * page, min((n + 1) * page, length))
            for cache, pages in zip(caches, paged, strict=True):
                pages[table[b, n], : rows.stop - rows.start] = cache[b, rows]
    return q, caches, paged, table.astype(np.int32), lengths.astype(np.int32)


def loop_decode(q, k_cache, v_cache, lengths):
    """Per row from the decode rule: query t of the chunk sees keys j <= cache_seqlens[b] - T_q + t."""
    chunk = q[:, None] if q.ndim == 3 else q
    batch, t_q, h_q, _ = chunk.shape
    out, lse = np.zeros((batch, t_q, h_q, v_cache.shape[-1])), np.zeros((batch, h_q, t_q))
    for b, length in enumerate(lengths):
        for t in range(t_q):
            seen = [j for j in range(length) if j <= length - t_q + t]
            for h in range(h_q):
                g = h * k_cache.shape[2] // h_q
                keys, values = k_cache[b, seen, g], v_cache[b, seen, g]
                out[b, t, h], lse[b, h, t] = row_attention(chunk[b, t, h], keys, values, chunk.shape[-1] ** -0.5, 0)
    return (out[:, 0], lse[..., 0]) if q.ndim == 3 else (out, lse)


@given(decode_problems())
@strict
def test_decode_paged_equals_contiguous_and_the_row_loop(problem):
    q, (k_cache, v_cache), (k_pages, v_pages), table, lengths = problem
    contiguous = ref.decode_attention(q, k_cache, v_cache, lengths)
    paged = ref.decode_attention(q, k_pages, v_pages, lengths, block_table=table)
    want = loop_decode(q, k_cache, v_cache, lengths)
    lse_shape = q.shape[:2] if q.ndim == 3 else (q.shape[0], q.shape[2], q.shape[1])
    assert contiguous[0].shape == (*q.shape[:-1], v_cache.shape[-1]) and contiguous[1].shape == lse_shape
    for name, i in (("output", 0), ("lse", 1)):
        assert_same(f"paged {name}", contiguous[i], paged[i])
        assert_same(f"loop {name}", want[i], contiguous[i])
    empty = lengths == 0
    assert (contiguous[0][empty] == 0).all() and np.isneginf(contiguous[1][empty]).all()


# --- Backward against finite differences ---------------------------------------------------------------------------


def numerical_grads(p: Problem, do: np.ndarray, eps: float = 1e-5) -> list[np.ndarray]:
    """Central differences of sum(attention(q, k, v) * do) with respect to each of q, k and v."""
    grads = []
    for which in range(3):
        args = [p.q.copy(), p.k.copy(), p.v.copy()]
        x, grad = args[which], np.zeros(args[which].shape)
        for idx in np.ndindex(x.shape):
            total = []
            for step in (eps, -eps):
                x[idx] = getattr(p, "qkv"[which])[idx] + step
                total.append(float((ref.attention(*args, **p.knobs, **p.varlen)[0] * do).sum()))
            x[idx] = getattr(p, "qkv"[which])[idx]
            grad[idx] = (total[0] - total[1]) / (2 * eps)
        grads.append(grad)
    return grads


@given(st.booleans().flatmap(lambda varlen: problems(varlen=varlen, max_t=4, max_d=3)), seeds)
@strict
def test_backward_matches_finite_differences(p: Problem, seed):
    out, lse = ref.attention(p.q, p.k, p.v, **p.knobs, **p.varlen)
    do = np.random.default_rng(seed).standard_normal(out.shape)
    analytic = ref.attention_bwd(p.q, p.k, p.v, out, lse, do, **p.knobs, **p.varlen)
    for name, want, got in zip(("dq", "dk", "dv"), numerical_grads(p, do), analytic, strict=True):
        assert got.shape == want.shape, name
        # Central differences with eps = 1e-5 are good to about 1e-9 here (truncation eps^2, rounding 1e-16/eps).
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)


# --- Bad input ------------------------------------------------------------------------------------------------------


def _qkv(t_q=3, t_k=4, h_q=4, h_kv=2, d=5):
    return np.ones((2, t_q, h_q, d)), np.ones((2, t_k, h_kv, d)), np.ones((2, t_k, h_kv, d))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ref.attention(*_qkv(h_q=3, h_kv=2)), "multiple of H_kv"),
        (lambda: ref.attention(*_qkv(), window=(-2, 0)), "window"),
        (lambda: ref.attention(*_qkv(), softcap=-1.0), "softcap"),
        (lambda: ref.attention(*(x[0] for x in _qkv()), cu_seqlens_q=np.array([0, 3], np.int32)), "together"),
        (
            lambda: ref.attention(
                *(x[0] for x in _qkv()), cu_seqlens_q=np.array([0, 2, 1, 3]), cu_seqlens_k=np.array([0, 1, 2, 4])
            ),
            "cu_seqlens_q",
        ),
        (lambda: ref.decode_attention(np.ones((2, 4, 5)), *_qkv()[1:], np.array([1, 5])), "cache_seqlens"),
        (
            lambda: ref.decode_attention(
                np.ones((1, 4, 5)),
                np.ones((3, 2, 2, 5)),
                np.ones((3, 2, 2, 5)),
                np.array([3]),
                block_table=np.array([[0, 3]], np.int32),
            ),
            "block_table",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
