"""Triton binary pack and packed GEMM against the NumPy oracle, under the interpreter when there is no GPU."""

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given
from strategies import FLOAT_DTYPES, float_dtypes, layouts, make_tensor, seeds, sizes
from tolerance import assert_close

from accelkit.kernels.binary import reference
from accelkit.kernels.binary.triton_kernels import binary_gemm_fwd, binary_pack_fwd

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WORD_TORCH = {32: torch.int32, 64: torch.int64}
WORD_SIGNED = {32: np.int32, 64: np.int64}
word_bits = st.sampled_from((32, 64))
# Leading dims: none, one (rows) or a small batch of rows; the batch stays at 3 to bound interpreter time.
leading = st.one_of(st.just(()), st.tuples(sizes(130)), st.tuples(st.integers(0, 3), sizes(130)))


def _pack_ref(x: torch.Tensor, bits: int) -> np.ndarray:
    """Oracle words as the signed dtype the kernels return, so bit patterns compare exactly."""
    return reference.pack_bits(x.double().cpu().numpy(), bits).view(WORD_SIGNED[bits])


def _int_layout(words: np.ndarray, layout: str) -> torch.Tensor:
    """`words` as a tensor on DEVICE stored with the given layout. The unused elements of the strided holder are
    all ones (-1), so a kernel that reads them gets wrong popcounts instead of harmless zeros."""
    t = torch.from_numpy(np.ascontiguousarray(words)).to(DEVICE)
    if layout == "strided":
        holder = torch.full((*t.shape[:-1], 2 * t.shape[-1]), -1, dtype=t.dtype, device=DEVICE)
        view = holder[..., ::2]
    elif layout == "transposed" and t.dim() >= 2:
        view = torch.empty((*t.shape[:-2], t.shape[-1], t.shape[-2]), dtype=t.dtype, device=DEVICE).transpose(-1, -2)
    else:
        return t
    return view.copy_(t)


@given(lead=leading, k=sizes(130), dtype=float_dtypes, bits=word_bits, layout=layouts, seed=seeds)
def test_pack_matches_reference(lead, k, dtype, bits, layout, seed):
    x = make_tensor((*lead, k), dtype, seed=seed, layout=layout).to(DEVICE)
    out = binary_pack_fwd(x, bits)
    assert out.dtype == WORD_TORCH[bits]
    assert_close("binary_pack_fwd", _pack_ref(x, bits), out)


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_pack_special_values(dtype, bits):
    # +0 and -0 are sign +1 (bit 0); NaN and -inf are -1 (bit 1); +inf is +1; K = 70 leaves padding in the last word.
    values = torch.tensor([0.0, -0.0, float("nan"), float("-inf"), float("inf"), -1e-3, 1e-3], dtype=torch.float64)
    x = values.repeat(10).to(dtype).reshape(1, 70).to(DEVICE)
    out = binary_pack_fwd(x, bits)
    assert_close("special values", _pack_ref(x, bits), out)
    zeros = binary_pack_fwd(torch.zeros(3, 33, dtype=dtype, device=DEVICE), bits)
    assert_close("zeros", np.zeros((3, reference.num_words(33, bits)), dtype=np.int64), zeros)


@pytest.mark.parametrize("shape", [(0, 5), (2, 0, 40), (4, 0), (1,), (65,)])
@pytest.mark.parametrize("bits", [32, 64])
def test_pack_empty_and_1d(shape, bits):
    x = make_tensor(shape, torch.float32, seed=7).to(DEVICE)
    out = binary_pack_fwd(x, bits)
    assert out.shape == (*shape[:-1], reference.num_words(shape[-1], bits))
    assert_close("binary_pack_fwd", _pack_ref(x, bits), out)


def test_pack_leading_dims_that_do_not_merge():
    # Permuted leading dims cannot collapse into one stride, so the launcher takes its copy path.
    x = make_tensor((3, 2, 5, 45), torch.float32, seed=3).permute(1, 0, 2, 3).to(DEVICE)
    assert_close("permuted", _pack_ref(x, 32), binary_pack_fwd(x, 32))


def test_pack_rejects_bad_arguments():
    with pytest.raises(ValueError, match="word_bits"):
        binary_pack_fwd(torch.ones(4, 8, device=DEVICE), 16)
    with pytest.raises(TypeError, match="word_bits must be an int"):
        binary_pack_fwd(torch.ones(4, 8, device=DEVICE), 64.0)
    with pytest.raises(ValueError, match="x must have dtype"):
        binary_pack_fwd(torch.ones(4, 8, dtype=torch.int32, device=DEVICE))


def _operands(lead, n, k, bits, seed, layouts_):
    a = make_tensor((*lead, k), torch.float64, seed=seed)
    w = make_tensor((n, k), torch.float64, seed=seed + 1)
    a_np, w_np = (reference.pack_bits(t.numpy(), bits).view(WORD_SIGNED[bits]) for t in (a, w))
    return a_np, w_np, _int_layout(a_np, layouts_[0]), _int_layout(w_np, layouts_[1])


@given(lead=leading, n=sizes(130), k=sizes(130), bits=word_bits, a_layout=layouts, w_layout=layouts, seed=seeds)
def test_gemm_matches_reference(lead, n, k, bits, a_layout, w_layout, seed):
    a_np, w_np, a_bits, w_bits = _operands(lead, n, k, bits, seed, (a_layout, w_layout))
    out = binary_gemm_fwd(a_bits, w_bits, k)
    assert out.dtype == torch.int32 and out.shape == (*lead, n)
    # The oracle's popcount cannot reshape an empty array, so an empty batch is compared by shape alone.
    ref = reference.xnor_popcount_matmul(a_np, w_np, k) if a_np.size else np.zeros((*lead, n), dtype=np.int64)
    assert_close("binary_gemm_fwd", ref, out)


@pytest.mark.parametrize("bits", [32, 64])
def test_gemm_extremes_and_edges(bits):
    # Identical operands give +K, complementary ones -K: every bit of every word, padding excluded, is counted.
    k = 2 * bits + 5
    x = make_tensor((3, k), torch.float64, seed=11)
    same = torch.from_numpy(_pack_ref(x, bits)).to(DEVICE)
    # Negation flips every sign but zero's (-0.0 still counts as +1), so zeros are set to -1 explicitly.
    flipped = torch.from_numpy(_pack_ref(-x + (x == 0) * -1.0, bits)).to(DEVICE)
    assert_close("same", np.full(3, k), binary_gemm_fwd(same, same, k).diagonal())
    assert_close("flipped", np.full(3, -k), binary_gemm_fwd(same, flipped, k).diagonal())
    empty = binary_gemm_fwd(same[:0], same, k)
    assert empty.shape == (0, 3)
    no_k = binary_gemm_fwd(torch.zeros(2, 0, dtype=WORD_TORCH[bits], device=DEVICE), same[:, :0], 0)
    assert_close("k = 0", np.zeros((2, 3), dtype=np.int64), no_k)


def test_gemm_rejects_mismatched_operands():
    a = torch.zeros(4, 3, dtype=torch.int32, device=DEVICE)
    with pytest.raises(ValueError, match="k=200"):
        binary_gemm_fwd(a, a, 200)
    with pytest.raises(ValueError, match="w_bits must have dtype"):
        binary_gemm_fwd(a, a.long(), 96)
    with pytest.raises(TypeError, match="k must be an int"):
        binary_gemm_fwd(a, a, 96.0)
    assert binary_gemm_fwd(a, a, np.int64(96)).shape == (4, 4)


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("k", [1, 31, 33, 65, 100])
def test_gemm_ignores_padding_bits(k, bits):
    # All-ones words set every padding bit too: only the k real bits may count, so results stay in [-k, k] (k = 33
    # in 64-bit words used to give -95 on the CPU). Random padding on real data must not change the result either.
    words = reference.num_words(k, bits)
    ones = torch.full((5, words), -1, dtype=WORD_TORCH[bits], device=DEVICE)
    assert_close("ones x zeros", np.full((5, 3), -k), binary_gemm_fwd(ones, torch.zeros_like(ones[:3]), k))
    assert_close("ones x ones", np.full((5, 5), k), binary_gemm_fwd(ones, ones, k))
    x = make_tensor((6, k), torch.float64, seed=k)
    clean = _pack_ref(x, bits)
    valid = _pack_ref(-torch.ones(1, k, dtype=torch.float64), bits)
    noise = np.random.default_rng(k).integers(0, 2**31, clean.shape).astype(clean.dtype)
    dirty = torch.from_numpy(clean | (noise & ~valid)).to(DEVICE)
    expected = reference.xnor_popcount_matmul(clean, clean, k)
    assert_close("dirty padding", expected, binary_gemm_fwd(dirty, dirty, k))
