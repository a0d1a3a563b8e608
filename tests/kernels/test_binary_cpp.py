"""The C++ binary kernels (csrc/binary.cpp) against the NumPy oracle in kernels/binary/reference.py.

Every GEMM property runs on each vector path the CPU has (AVX-512 VPOPCNTDQ, AVX2, scalar) and on "auto". The GEMM
operands are packed by the oracle, so a packing bug cannot hide a GEMM bug or the other way round.
"""

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given
from strategies import FLOAT_DTYPES, float_dtypes, layouts, make_tensor, seeds, sizes
from tolerance import assert_close

from accelkit._native import native
from accelkit.kernels.binary import reference as ref
from accelkit.kernels.binary.cpu import binary_gemm_cpu, binary_isa, binary_pack_cpu, isa_supported, spike_gemm_cpu

ISAS = ("auto", "avx512", "avx2", "scalar")
WORD_BITS = (32, 64)
_SIGNED = {32: np.int32, 64: np.int64}


def _isa_params():
    return [
        pytest.param(isa, marks=pytest.mark.skipif(not isa_supported(isa), reason=f"this CPU has no {isa} path"))
        for isa in ISAS
    ]


isa_param = pytest.mark.parametrize("isa", _isa_params())
word_param = pytest.mark.parametrize("word_bits", WORD_BITS)


def _signed(words: np.ndarray, word_bits: int) -> torch.Tensor:
    """Oracle uint words as the int32/int64 bit patterns the launchers use."""
    return torch.from_numpy(np.ascontiguousarray(words).view(_SIGNED[word_bits]))


def _pm1(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _int32(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x).astype(np.int32))


# Packing


@given(
    lead=st.lists(sizes(4, min_value=0), max_size=2),
    k=sizes(200),
    dtype=float_dtypes,
    layout=layouts,
    seed=seeds,
    word_bits=st.sampled_from(WORD_BITS),
)
@isa_param
def test_pack_matches_oracle(isa, lead, k, dtype, layout, seed, word_bits):
    x = make_tensor((*lead, k), dtype, seed=seed, layout=layout)
    out = binary_pack_cpu(x, word_bits, isa=isa)
    expected = ref.pack_bits(x.double().numpy(), word_bits)
    assert out.dtype == (torch.int32 if word_bits == 32 else torch.int64)
    assert_close(f"pack {dtype} {layout} K={k}", _signed(expected, word_bits), out)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@word_param
@isa_param
def test_pack_special_values(isa, dtype, word_bits):
    # -0.0 is +1 (sign(0) = +1 even with the sign bit set), NaN of either sign is -1, infinities keep their sign.
    specials = [0.0, -0.0, float("nan"), -float("nan"), float("inf"), -float("inf"), 1e-30, -1e-30, 1.0, -1.0]
    # 100 elements: whole vector groups plus a tail, with the specials at the start, the middle and the end.
    values = (specials * 10)[:100]
    x = torch.tensor([values, values[::-1]], dtype=torch.float64).to(dtype)
    expected = ref.pack_bits(x.double().numpy(), word_bits)
    assert_close("pack specials", _signed(expected, word_bits), binary_pack_cpu(x, word_bits, isa=isa))
    bits = ref.unpack_bits(expected[0], 100, word_bits)
    assert bits[0] == 1 and bits[1] == 1 and bits[2] == -1 and bits[3] == -1


@word_param
def test_pack_edge_shapes(word_bits):
    assert binary_pack_cpu(torch.zeros(3, 0), word_bits).shape == (3, 0)
    assert binary_pack_cpu(torch.zeros(0, 7), word_bits).shape == (0, 1)
    assert binary_pack_cpu(torch.zeros(2, 0, 65), word_bits).shape == (2, 0, ref.num_words(65, word_bits))
    ones = binary_pack_cpu(-torch.ones(1), word_bits)
    assert ones.shape == (1,) and int(ones) == 1
    # All-negative rows of K = 1..word_bits: exactly the low K bits are set, padding stays 0.
    for k in (1, 31, 32, 33, 63, 64, 65):
        words = binary_pack_cpu(-torch.ones(k), word_bits).numpy().view(np.uint32 if word_bits == 32 else np.uint64)
        unpacked = ref.unpack_bits(words, words.size * word_bits, word_bits)
        assert (unpacked[:k] == -1).all() and (unpacked[k:] == 1).all(), k


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@word_param
@isa_param
def test_pack_large_threaded(isa, layout, word_bits):
    # 300 x 1001 elements: above the 65536-element threshold where packing splits rows across threads.
    x = make_tensor((300, 1001), torch.float32, seed=5, layout=layout)
    expected = ref.pack_bits(x.double().numpy(), word_bits)
    assert_close(f"pack large {layout}", _signed(expected, word_bits), binary_pack_cpu(x, word_bits, isa=isa))


def test_pack_strided_2d_view_reads_strides():
    base = torch.randn(9, 300, dtype=torch.float64)
    view = base[::3, 5::2]
    expected = ref.pack_bits(view.numpy(), 64)
    assert_close("pack strided", _signed(expected, 64), binary_pack_cpu(view, 64))


# Packed GEMMs


def _gemm_case(m: int, n: int, k: int, seed: int, word_bits: int):
    a, w = _pm1((m, k), seed), _pm1((n, k), seed + 1)
    a_bits = _signed(ref.pack_bits(a, word_bits), word_bits)
    w_bits = _signed(ref.pack_bits(w, word_bits), word_bits)
    return a, w, a_bits, w_bits


@given(m=sizes(129), n=sizes(129), k=sizes(300), seed=seeds, word_bits=st.sampled_from(WORD_BITS))
@isa_param
def test_binary_gemm_matches_oracle(isa, m, n, k, seed, word_bits):
    a, w, a_bits, w_bits = _gemm_case(m, n, k, seed, word_bits)
    out = binary_gemm_cpu(a_bits, w_bits, k, isa=isa)
    assert_close(f"binary_gemm {m}x{n}x{k}", _int32(ref.binary_matmul(a, w)), out)
    packed = ref.xnor_popcount_matmul(
        a_bits.numpy().view(np.uint32 if word_bits == 32 else np.uint64),
        w_bits.numpy().view(np.uint32 if word_bits == 32 else np.uint64),
        k,
    )
    assert_close("binary_gemm vs packed oracle", _int32(packed), out)


# Larger shapes: K spanning several 16-unit vectors and, at 20000 > 16384 bits, two K chunks (the accumulate path);
# M and N crossing the 64-row tile and the 4-row register tile.
LARGE = [(70, 133, 1000), (5, 130, 20000), (257, 67, 4096), (1, 300, 4096), (3, 9, 16385)]


@pytest.mark.parametrize(("m", "n", "k"), LARGE)
@word_param
@isa_param
def test_binary_gemm_large(isa, m, n, k, word_bits):
    a, w, a_bits, w_bits = _gemm_case(m, n, k, 7, word_bits)
    assert_close(
        f"binary_gemm {m}x{n}x{k}", _int32(ref.binary_matmul(a, w)), binary_gemm_cpu(a_bits, w_bits, k, isa=isa)
    )


@given(m=sizes(129), n=sizes(129), k=sizes(300), seed=seeds, word_bits=st.sampled_from(WORD_BITS))
@isa_param
def test_spike_gemm_matches_oracle(isa, m, n, k, seed, word_bits):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((m, k)) < rng.uniform(0.0, 1.0)).astype(np.float64)
    w = _pm1((n, k), seed + 1)
    s_bits = _signed(ref.pack_bits(-spikes, word_bits), word_bits)
    w_bits = _signed(ref.pack_bits(w, word_bits), word_bits)
    out = spike_gemm_cpu(s_bits, w_bits, isa=isa)
    assert_close(f"spike_gemm {m}x{n}x{k}", _int32(ref.spike_matmul(spikes, w)), out)


@pytest.mark.parametrize(("m", "n", "k"), LARGE)
@isa_param
def test_spike_gemm_large(isa, m, n, k):
    rng = np.random.default_rng(k)
    spikes = (rng.random((m, k)) < 0.2).astype(np.float64)
    w = _pm1((n, k), 3)
    s_bits, w_bits = _signed(ref.pack_bits(-spikes, 64), 64), _signed(ref.pack_bits(w, 64), 64)
    assert_close("spike_gemm large", _int32(ref.spike_matmul(spikes, w)), spike_gemm_cpu(s_bits, w_bits, isa=isa))


@pytest.mark.parametrize("k", [8000, 20000])
@word_param
@isa_param
def test_gemm_extreme_counts(isa, k, word_bits):
    # Every bit differs (or every spike meets -1): the largest per-byte and per-lane counts, where a counter that
    # is flushed too late (AVX2 adds 8 per byte per vector) would wrap. Random data averages half that.
    neg = binary_pack_cpu(-torch.ones(3, k), word_bits)
    pos = binary_pack_cpu(torch.ones(5, k), word_bits)
    assert_close("all differ", torch.full((3, 5), -k, dtype=torch.int32), binary_gemm_cpu(neg, pos, k, isa=isa))
    assert_close("all agree", torch.full((3, 3), k, dtype=torch.int32), binary_gemm_cpu(neg, neg, k, isa=isa))
    assert_close("spikes on -1", torch.full((3, 3), -k, dtype=torch.int32), spike_gemm_cpu(neg, neg, isa=isa))


@isa_param
def test_gemm_leading_dims_and_empty(isa):
    a, w, a_bits, w_bits = _gemm_case(6, 5, 77, 11, 32)
    out = binary_gemm_cpu(a_bits.reshape(2, 3, -1), w_bits, 77, isa=isa)
    assert_close("binary_gemm 3-D", _int32(ref.binary_matmul(a, w).reshape(2, 3, 5)), out)
    assert binary_gemm_cpu(a_bits[:0], w_bits, 77, isa=isa).shape == (0, 5)
    assert binary_gemm_cpu(a_bits, w_bits[:0], 77, isa=isa).shape == (6, 0)
    assert spike_gemm_cpu(a_bits.reshape(3, 2, -1)[:, :0], w_bits, isa=isa).shape == (3, 0, 5)
    # K = 0: no words, every dot product is 0.
    empty = torch.zeros(4, 0, dtype=torch.int64)
    assert_close("k=0", torch.zeros(4, 3, dtype=torch.int32), binary_gemm_cpu(empty, empty[:3], 0, isa=isa))
    assert_close("spike k=0", torch.zeros(4, 3, dtype=torch.int32), spike_gemm_cpu(empty, empty[:3], isa=isa))


def test_word_sizes_agree_and_pack_feeds_gemm():
    x, w = (
        make_tensor((37, 250), torch.float32, seed=1),
        make_tensor((19, 250), torch.float32, seed=2, layout="transposed"),
    )
    expected = _int32(ref.binary_matmul(x.numpy(), w.numpy()))
    for word_bits in WORD_BITS:
        out = binary_gemm_cpu(binary_pack_cpu(x, word_bits), binary_pack_cpu(w, word_bits), 250)
        assert_close(f"pack + gemm {word_bits}", expected, out)


def test_auto_isa_is_the_best_available():
    features = native().cpu_features()
    best = "avx512" if features["avx512_vpopcntdq"] else "avx2" if features["avx2"] else "scalar"
    assert binary_isa() == best
    assert isa_supported("scalar")


def test_unsupported_isa_raises():
    missing = [isa for isa in ("avx512", "avx2") if not isa_supported(isa)]
    if not missing:
        pytest.skip("this CPU has every path, so none can be refused")
    a_bits = torch.zeros(1, 1, dtype=torch.int32)
    with pytest.raises(ValueError, match="not supported"):
        binary_gemm_cpu(a_bits, a_bits, 32, isa=missing[0])


# Bad input: ValueError naming the argument, from the launchers and from the bindings directly.

_A = torch.zeros(3, 2, dtype=torch.int32)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: binary_gemm_cpu(_A.float(), _A, 64), "a_bits"),
        (lambda: binary_gemm_cpu(_A, _A[0], 64), "w_bits"),
        (lambda: binary_gemm_cpu(_A, torch.zeros(3, 3, dtype=torch.int32), 64), "w_bits"),
        (lambda: binary_gemm_cpu(_A, _A.long(), 64), "w_bits"),
        (lambda: binary_gemm_cpu(_A, _A, 65), "k=65"),
        (lambda: binary_gemm_cpu(_A, _A, 32), "k=32"),
        (lambda: binary_gemm_cpu(_A, _A, -1), "k=-1"),
        (lambda: binary_gemm_cpu(_A, _A, 64, isa="neon"), "isa"),
        (lambda: spike_gemm_cpu(_A.double(), _A), "s_bits"),
        (lambda: spike_gemm_cpu(_A, _A[:, :1]), "w_bits"),
        (lambda: binary_pack_cpu(_A, 32), "x"),
        (lambda: binary_pack_cpu(torch.zeros(3), 16), "word_bits"),
        (lambda: binary_pack_cpu(torch.zeros(3), 32, isa="sse9"), "isa"),
    ],
)
def test_launchers_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: binary_gemm_cpu(_A, _A, 64.0), "k must be an int"),
        (lambda: binary_gemm_cpu(_A, _A, True), "k must be an int"),
        (lambda: binary_gemm_cpu([[0]], _A, 64), "a_bits must be a torch.Tensor"),
        (lambda: binary_pack_cpu(torch.zeros(3), 64.0), "word_bits must be an int"),
        (lambda: binary_pack_cpu(torch.zeros(3), False), "word_bits must be an int"),
    ],
)
def test_launchers_reject_wrong_types(call, match):
    with pytest.raises(TypeError, match=match):
        call()


@pytest.mark.parametrize("k", [1, 31, 33, 63, 65, 97, 130])
@word_param
@isa_param
def test_gemm_ignores_padding_bits(isa, k, word_bits):
    # Words with every bit set, padding included: the result must count only the k real bits. Before the padding
    # was masked, k = 33 in 64-bit words gave -95 instead of -33.
    words = ref.num_words(k, word_bits)
    dtype = torch.int32 if word_bits == 32 else torch.int64
    ones, zeros = torch.full((5, words), -1, dtype=dtype), torch.zeros((3, words), dtype=dtype)
    for out_dtype in (torch.int32, torch.float32):
        out = binary_gemm_cpu(ones, zeros, k, isa=isa, out_dtype=out_dtype)
        assert_close("ones x zeros", np.full((5, 3), -k), out)
        assert_close("ones x ones", np.full((5, 5), k), binary_gemm_cpu(ones, ones, k, isa=isa, out_dtype=out_dtype))
    # Random signs with random padding in one operand: the same result as the clean words.
    a, w, a_bits, w_bits = _gemm_case(70, 9, k, k, word_bits)
    pad = torch.from_numpy(np.random.default_rng(k).integers(0, 2**31, a_bits.shape, dtype=np.int64)).to(dtype)
    valid = _signed(ref.pack_bits(-np.ones((1, k)), word_bits), word_bits)
    dirty = a_bits | (pad & ~valid)
    assert_close("dirty a", _int32(ref.binary_matmul(a, w)), binary_gemm_cpu(dirty, w_bits, k, isa=isa))


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32])
@pytest.mark.parametrize("k", [300, 20000])
@isa_param
def test_gemm_out_dtype(isa, k, out_dtype):
    # float32 is written by the GEMM tile by tile (k = 20000 > 16384 bits takes two K chunks, so the conversion must
    # wait for the last); the others are cast from int32. All must equal the oracle within their dtype.
    a, w, a_bits, w_bits = _gemm_case(67, 70, k, 3, 64)
    out = binary_gemm_cpu(a_bits.reshape(67, 1, -1), w_bits, k, isa=isa, out_dtype=out_dtype)
    assert out.dtype == out_dtype and out.shape == (67, 1, 70)
    assert_close(f"out_dtype {out_dtype}", ref.binary_matmul(a, w).reshape(67, 1, 70), out)
    empty = binary_gemm_cpu(a_bits[:, :0], w_bits[:, :0], 0, isa=isa, out_dtype=out_dtype)
    assert_close("k = 0", np.zeros((67, 70)), empty)


def test_gemm_new_result_owns_its_memory():
    # binary_gemm_new hands back a buffer allocated in C++; it must stay valid after every other reference goes.
    a, w, a_bits, w_bits = _gemm_case(300, 1100, 100, 5, 64)
    out = native().binary_gemm_new(a_bits.numpy(), w_bits.numpy(), 100, "float32")
    t = torch.from_numpy(out)
    del out, a_bits, w_bits
    assert_close("owned result", ref.binary_matmul(a, w), t)
    with pytest.raises(ValueError, match="dtype must be"):
        native().binary_gemm_new(np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64), 64, "float64")


def test_gemm_new_reuses_only_dead_results():
    # Results of 2 MiB and more come from a pool of freed buffers: a live result must never be handed out again,
    # and a reused buffer must be fully overwritten (the pool's memory holds the previous result's values).
    a, w, a_bits, w_bits = _gemm_case(1024, 1024, 70, 9, 64)
    neg = torch.from_numpy(~a_bits.numpy())
    expected = ref.binary_matmul(a, w)
    first = torch.from_numpy(native().binary_gemm_new(a_bits.numpy(), w_bits.numpy(), 70))
    second = torch.from_numpy(native().binary_gemm_new(neg.numpy(), w_bits.numpy(), 70))
    assert first.data_ptr() != second.data_ptr()
    del first
    # Likely in first's old buffer, whose int32 bit patterns read as float32 would be tiny denormals, not dots.
    third = torch.from_numpy(native().binary_gemm_new(a_bits.numpy(), w_bits.numpy(), 70, "float32"))
    assert third.data_ptr() != second.data_ptr()
    assert_close("second, after a reuse", -expected, second)
    assert_close("third", expected, third)


def test_peak_probe_reports_the_threads_it_ran():
    probe = native().binary_peak_probe(threads=1)
    assert probe["threads"] == 1
    if native().cpu_features()["avx512_vpopcntdq"]:
        assert probe["vpopcntq_per_second"] > 0 and probe["vpopcntq_per_second_all_threads"] > 0
    with pytest.raises(ValueError, match="threads"):
        native().binary_peak_probe(threads=-1)


def _np_case():
    a = np.zeros((4, 3), np.uint32)
    w = np.zeros((5, 3), np.uint32)
    return a, w, np.zeros((4, 5), np.int32)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda C, a, w, o: C.binary_gemm(a[None], w, 96, o), "a_bits must be 2-D"),
        (lambda C, a, w, o: C.binary_gemm([[0]], w, 96, o), "a_bits must be a numpy array"),
        (lambda C, a, w, o: C.binary_gemm(a[:, ::2], w[:, ::2], 64, o), "a_bits must be C-contiguous"),
        (lambda C, a, w, o: C.binary_gemm(a, np.asfortranarray(w[:, :2]), 64, o), "w_bits"),
        (lambda C, a, w, o: C.binary_gemm(a, w, 96, o[:, :4].copy()), "out must have shape"),
        (lambda C, a, w, o: C.binary_gemm(a, w, 96, o.astype(np.int64)), "out must have dtype int32"),
        (lambda C, a, w, o: C.binary_gemm(a, w, 96, o.T.copy().T), "out must be C-contiguous"),
        (lambda C, a, w, o: C.binary_gemm(a, w, 96, np.broadcast_to(o, o.shape)), "out must be writeable"),
        (lambda C, a, w, o: C.binary_gemm(a, w, 96, np.zeros((0, 0), np.int32)), "out must have shape"),
        (lambda C, a, w, o: C.binary_gemm(a.astype(np.float32), w, 96, o), "a_bits must hold"),
        (lambda C, a, w, o: C.binary_gemm(a.astype(">u4"), w, 96, o), "a_bits must be in native byte order"),
        (lambda C, a, w, o: C.binary_gemm(a, w, 97, o), "k = 97"),
        (lambda C, a, w, o: C.spike_gemm(a, w[:, :2].copy(), o), "w_bits has 2 words"),
        (lambda C, a, w, o: C.binary_pack(np.zeros((4, 96)), a, 16), "word_bits"),
        (lambda C, a, w, o: C.binary_pack(np.zeros((4, 96)), a[:3], 32), "out must have shape"),
        (lambda C, a, w, o: C.binary_pack(np.zeros((4, 96), np.int32), a, 32), "x must have dtype"),
        (lambda C, a, w, o: C.binary_pack(np.zeros((4, 96)), a, 64), "out dtype"),
        (lambda C, a, w, o: C.binary_pack(np.zeros(96), a, 32), "x must be 2-D"),
        (lambda C, a, w, o: C.binary_pack(np.zeros((4, 96), np.float32), a, 32, "x87"), "isa"),
    ],
)
def test_bindings_reject_bad_input(call, match):
    a, w, out = _np_case()
    with pytest.raises(ValueError, match=match):
        call(native(), a, w, out)


def test_bindings_reject_overlap():
    words = np.zeros(64, np.int32)
    a_bits, w_bits = words[:8].reshape(4, 2), np.zeros((4, 2), np.int32)
    with pytest.raises(ValueError, match="out must not overlap a_bits"):
        native().binary_gemm(a_bits, w_bits, 64, words[4:20].reshape(4, 4))
    buf = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match="out must not overlap x"):
        native().binary_pack(buf.reshape(2, 32), buf[:2].view(np.int32).reshape(2, 1), 32)
