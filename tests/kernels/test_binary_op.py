"""The public binary ops (accelkit.ops) against the NumPy oracle: forward, STE gradients, opcheck, compile, bad input,
and the CUDA route (cuda-marked: every backend on the device against the CPU and the oracle)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import FLOAT_DTYPES, layouts, make_tensor, seeds, sizes
from tolerance import assert_close

from accelkit import ops
from accelkit.kernels.binary import reference as ref


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


batch_shapes = st.one_of(st.just(()), st.tuples(sizes(5, min_value=0)), st.tuples(sizes(3), sizes(3)))


# N and K draw 0 too: torch.matmul takes [M, 0] x [0, N] and [M, K] x [K, 0], and so must the op and its backward.
@given(
    batch=batch_shapes,
    n=sizes(70, min_value=0),
    k=sizes(140, min_value=0),
    dtype=st.sampled_from(FLOAT_DTYPES),
    layout=layouts,
    seed=seeds,
)
def test_binary_matmul_forward_and_grads(batch, n, k, dtype, layout, seed):
    a = make_tensor((*batch, k), dtype, seed=seed, layout=layout).requires_grad_()
    w = make_tensor((n, k), dtype, seed=seed + 1, layout=layout).requires_grad_()
    out = ops.binary_matmul(a, w)
    assert out.dtype == dtype and out.shape == (*batch, n)
    assert_close("out", ref.binary_matmul(_np(a), _np(w)), out)

    grad = make_tensor(tuple(out.shape), dtype, seed=seed + 2)
    out.backward(grad)
    grad_a, grad_w = ref.binary_matmul_bwd(_np(a), _np(w), _np(grad))
    assert a.grad.shape == a.shape and w.grad.shape == w.shape
    assert_close("grad_a", grad_a, a.grad)
    assert_close("grad_w", grad_w, w.grad)


@settings(max_examples=10)
@given(
    batch=st.one_of(st.just(()), st.tuples(sizes(3, min_value=0))),
    n=sizes(9, min_value=0),
    k=sizes(70, min_value=0),
    dtype=st.sampled_from((torch.float32, torch.float64)),
    seed=seeds,
)
def test_binary_matmul_opcheck_drawn_shapes(batch, n, k, dtype, seed):
    a = make_tensor((*batch, k), dtype, seed=seed).requires_grad_()
    w = make_tensor((n, k), dtype, seed=seed + 1).requires_grad_()
    torch.library.opcheck(torch.ops.accelkit.binary_matmul.default, (a, w, "auto"))


@given(
    shape=st.tuples(sizes(9), sizes(40)),
    scale=st.sampled_from((None, "tensor", "channel")),
    dtype=st.sampled_from((torch.float32, torch.float64)),
    layout=layouts,
    seed=seeds,
)
def test_binarize_forward_and_grad(shape, scale, dtype, layout, seed):
    x = make_tensor(shape, dtype, seed=seed, layout=layout).requires_grad_()
    y = ops.binarize(x, scale=scale)
    assert_close("y", ref.binarize(_np(x), scale), y)
    grad = make_tensor(shape, dtype, seed=seed + 1)
    y.backward(grad)
    assert_close("grad_x", ref.binarize_bwd(_np(x), _np(grad), scale), x.grad)


@given(
    shape=st.tuples(sizes(4, min_value=0), sizes(140)),
    word_bits=st.sampled_from((32, 64)),
    dtype=st.sampled_from(FLOAT_DTYPES),
    layout=layouts,
    seed=seeds,
)
def test_pack_bits_and_packed_matmul(shape, word_bits, dtype, layout, seed):
    a = make_tensor(shape, dtype, seed=seed, layout=layout)
    w = make_tensor((7, shape[-1]), dtype, seed=seed + 1, layout=layout)
    a_bits = ops.pack_bits(a, word_bits=word_bits)
    w_bits = ops.pack_bits(w, word_bits=word_bits)
    expected = ref.pack_bits(_np(a), word_bits)
    assert_close("a_bits", expected.view(np.int32 if word_bits == 32 else np.int64), a_bits)
    out = ops.packed_binary_matmul(a_bits, w_bits, shape[-1])
    assert out.dtype == torch.int32
    expected_out = ref.xnor_popcount_matmul(expected, ref.pack_bits(_np(w), word_bits), shape[-1])
    assert_close("out", expected_out, out)
    as_float = ops.packed_binary_matmul(a_bits, w_bits, shape[-1], out_dtype=dtype)
    assert as_float.dtype == dtype
    assert_close("out as float", expected_out, as_float)


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([0.0, -0.0, 1e-30, -1e-30])
    assert ops.binarize(x).tolist() == [1.0, 1.0, 1.0, -1.0]
    assert ops.binary_matmul(torch.zeros(1, 33), torch.zeros(2, 33)).tolist() == [[33.0, 33.0]]


I32 = torch.int32


def _words(*shape: int, dtype: torch.dtype = I32) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


def _examples():
    a = torch.randn(3, 5, 37, requires_grad=True)
    w = torch.randn(6, 37, requires_grad=True)
    bits = ops.pack_bits(a.detach(), word_bits=64)
    w_bits = ops.pack_bits(w.detach(), word_bits=64)
    return {
        "binary_matmul": (torch.ops.accelkit.binary_matmul.default, (a, w, "auto")),
        # K = 0 and N = 0 with gradients: the backward's row reshape must not need to infer a size from 0 elements.
        "binary_matmul_k0": (
            torch.ops.accelkit.binary_matmul.default,
            (torch.randn(3, 0, requires_grad=True), torch.randn(4, 0, requires_grad=True), "auto"),
        ),
        "binary_matmul_n0": (
            torch.ops.accelkit.binary_matmul.default,
            (torch.randn(2, 3, 5, requires_grad=True), torch.randn(0, 5, requires_grad=True), "auto"),
        ),
        "binary_matmul_m0": (
            torch.ops.accelkit.binary_matmul.default,
            (torch.randn(0, 5, requires_grad=True), torch.randn(4, 5, requires_grad=True), "auto"),
        ),
        "binarize_ch": (torch.ops.accelkit.binarize.default, (torch.randn(4, 9, requires_grad=True), "channel")),
        "binarize": (
            torch.ops.accelkit.binarize.default,
            (torch.randn(4, 9, dtype=torch.float64, requires_grad=True), None),
        ),
        "pack": (torch.ops.accelkit.pack_bits.default, (torch.randn(2, 70), 32, "auto")),
        "pack_k0": (torch.ops.accelkit.pack_bits.default, (torch.randn(2, 0), 64, "auto")),
        "packed_mm": (torch.ops.accelkit.packed_binary_matmul.default, (bits, w_bits, 37, torch.int32, "auto")),
        "packed_mm_f32": (torch.ops.accelkit.packed_binary_matmul.default, (bits, w_bits, 37, torch.float32, "auto")),
        "packed_mm_k0": (
            torch.ops.accelkit.packed_binary_matmul.default,
            (_words(3, 0), _words(2, 0), 0, torch.int32, "auto"),
        ),
    }


@pytest.mark.parametrize("case", list(_examples()))
def test_opcheck(case):
    op, args = _examples()[case]
    torch.library.opcheck(op, args)


def test_torch_compile_fullgraph():
    def layer(x, w):
        h = ops.binary_matmul(ops.binarize(x, scale="tensor"), w)
        packed = ops.packed_binary_matmul(ops.pack_bits(x, word_bits=32), ops.pack_bits(w, word_bits=32), x.shape[-1])
        return h.relu().sum() + packed.sum()

    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 45, requires_grad=True)
    w = torch.randn(8, 45, requires_grad=True)
    eager = layer(x, w)
    out = compiled(x, w)
    assert_close("compiled", eager.detach().double().numpy(), out)
    out.backward()
    assert x.grad is not None and w.grad is not None


def test_torch_compile_inductor():
    compiled = torch.compile(lambda a, w: ops.binary_matmul(a, w) * 2, fullgraph=True)
    a, w = torch.randn(5, 33), torch.randn(3, 33)
    assert_close("inductor", 2 * ref.binary_matmul(_np(a), _np(w)), compiled(a, w))


@pytest.mark.parametrize("word_bits", [32, 64])
@pytest.mark.parametrize("k", [1, 31, 33, 63, 65, 100])
def test_padding_bits_are_ignored(k, word_bits):
    # All-ones words: every real bit set (all -1) and every padding bit set too. Padding must count for nothing,
    # so a row against itself is +k and against all-zero (all +1) words is -k, never outside [-k, k].
    words = ref.num_words(k, word_bits)
    ones = torch.full((3, words), -1, dtype=torch.int32 if word_bits == 32 else torch.int64)
    zeros = torch.zeros_like(ones)
    assert_close("ones . ones", np.full((3, 3), k), ops.packed_binary_matmul(ones, ones, k))
    assert_close("ones . zeros", np.full((3, 3), -k), ops.packed_binary_matmul(ones, zeros, k))
    x = make_tensor((4, k), torch.float32, seed=k)
    clean = ops.pack_bits(x, word_bits=word_bits)
    dirty = clean | ~ops.pack_bits(torch.full((1, k), -1.0), word_bits=word_bits)
    assert not torch.equal(clean, dirty) or k % word_bits == 0
    expected = ref.binary_matmul(_np(x), _np(x))
    assert_close("dirty padding", expected, ops.packed_binary_matmul(dirty, dirty, k))
    assert_close("dirty vs clean", expected, ops.packed_binary_matmul(dirty, clean, k))


def test_k_accepts_numpy_integers():
    a = ops.pack_bits(torch.randn(3, 70), word_bits=64)
    w = ops.pack_bits(torch.randn(5, 70), word_bits=64)
    expected = ops.packed_binary_matmul(a, w, 70)
    for k in (np.int64(70), np.int32(70), np.uint16(70)):
        assert torch.equal(ops.packed_binary_matmul(a, w, k), expected)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 4)), ValueError, "K="),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 5, 1)), ValueError, "w must have at most 2"),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(5)), ValueError, "w must have at least 2"),
        (lambda: ops.binary_matmul(torch.randn(()), torch.randn(3, 5)), ValueError, "a must have at least 1"),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 5).double()), ValueError, "w must have dtype"),
        (lambda: ops.binary_matmul(torch.ones(2, 5, dtype=torch.int32), torch.randn(3, 5)), ValueError, "a must have"),
        (lambda: ops.binary_matmul([1.0], torch.randn(3, 5)), TypeError, "a must be a torch.Tensor"),
        (lambda: ops.binary_matmul(torch.randn(2, 5), None), TypeError, "w must be a torch.Tensor"),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 5), backend="gpu"), ValueError, "backend"),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 5), backend="triton"), ValueError, "backend"),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 5), backend=1), TypeError, "backend"),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 5, device="meta")), ValueError, "w is on meta"),
        (lambda: ops.binarize(torch.randn(3), scale="channel"), ValueError, "x must have at least 2 dims"),
        (lambda: ops.binarize(torch.randn(3), scale="row"), ValueError, "scale"),
        (lambda: ops.binarize(torch.randn(3), scale=1), TypeError, "scale"),
        (lambda: ops.binarize(np.ones(3)), TypeError, "x must be a torch.Tensor"),
        (lambda: ops.binarize(torch.ones(3, dtype=torch.int64)), ValueError, "x must have dtype"),
        (lambda: ops.pack_bits(torch.randn(3, 4), word_bits=16), ValueError, "word_bits must be 32 or 64"),
        (lambda: ops.pack_bits(torch.randn(3, 4), word_bits=64.0), TypeError, "word_bits must be an int"),
        (lambda: ops.pack_bits(torch.randn(3, 4), word_bits=True), TypeError, "word_bits must be an int"),
        (lambda: ops.pack_bits(torch.randn(()), word_bits=32), ValueError, "x must have at least 1"),
        (lambda: ops.pack_bits(torch.ones(3, dtype=torch.bool)), ValueError, "x must have dtype"),
        (lambda: ops.pack_bits(torch.randn(3, 4), backend="cuda"), ValueError, "backend"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), torch.zeros(3, 2), 64), ValueError, "w_bits must have dtype"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2, dtype=torch.int64), 64), ValueError, "w_bits"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 3), 64), ValueError, "words"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2, 1), 64), ValueError, "w_bits must have at most"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), 65), ValueError, "k=65"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), 32), ValueError, "k=32"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), -1), ValueError, "k=-1"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), 64.0), TypeError, "k must be an int"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), True), TypeError, "k must be an int"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), "64"), TypeError, "k must be an int"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), torch.tensor(64)), TypeError, "k must be"),
        (lambda: ops.packed_binary_matmul((1, 2), _words(3, 2), 64), TypeError, "a_bits must be a torch.Tensor"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), 64, out_dtype="f4"), TypeError, "out_dtype"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), 64, out_dtype=torch.int8), ValueError, "out_"),
        (lambda: ops.packed_binary_matmul(_words(2, 2**26 + 1), _words(3, 2**26 + 1), 2**31 + 1), ValueError, "k="),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_sizes_are_checked_before_allocating():
    # Stride-0 views with no memory behind them, asking for results (or copies) no machine can hold: refused with
    # a ValueError naming the argument, before any allocation.
    huge = torch.zeros(1, 1).expand(2**31, 1)
    with pytest.raises(ValueError, match="a, w: the tensor of shape"):
        ops.binary_matmul(huge, torch.zeros(1, 1).expand(2**31, 1))
    with pytest.raises(ValueError, match="x: the tensor"):
        ops.pack_bits(torch.zeros(1, 1, dtype=torch.float16).expand(2**40, 64))
    with pytest.raises(ValueError, match="x: the tensor"):
        ops.binarize(torch.zeros(1, 1).expand(2**40, 2**10))
    words = torch.zeros(1, 1, dtype=torch.int64)
    with pytest.raises(ValueError, match="a_bits, w_bits: the tensor"):
        ops.packed_binary_matmul(words.expand(2**40, 1), words, 64)
    with pytest.raises(ValueError, match="w_bits: the tensor"):
        ops.packed_binary_matmul(words, words.expand(2**40, 1), 64, out_dtype=torch.float32)


# The CUDA route: each backend on the device against the CPU path and the oracle. These skip without a GPU.


def _cuda_backends():
    backends = ["auto", "triton"]
    try:
        import cupy  # noqa: F401

        backends.append("cuda")
    except ImportError:
        pass
    return backends


@pytest.mark.cuda
@pytest.mark.parametrize("word_bits", [32, 64])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cuda_pack_and_packed_matmul_match_cpu(dtype, word_bits):
    x = make_tensor((2, 9, 133), dtype, seed=1, layout="strided")
    w = make_tensor((17, 133), dtype, seed=2)
    cpu_bits = ops.pack_bits(x, word_bits=word_bits)
    cpu_w = ops.pack_bits(w, word_bits=word_bits)
    cpu_out = ops.packed_binary_matmul(cpu_bits, cpu_w, 133)
    for backend in _cuda_backends():
        bits = ops.pack_bits(x.cuda(), word_bits=word_bits, backend=backend)
        w_bits = ops.pack_bits(w.cuda(), word_bits=word_bits, backend=backend)
        assert bits.is_cuda and bits.dtype == cpu_bits.dtype
        assert_close(f"pack {backend}", cpu_bits, bits.cpu())
        out = ops.packed_binary_matmul(bits, w_bits, np.int64(133), backend=backend)
        assert out.is_cuda and out.dtype == torch.int32
        assert_close(f"packed_binary_matmul {backend}", cpu_out, out.cpu())
        assert_close(f"oracle {backend}", ref.binary_matmul(_np(x), _np(w)), out.cpu())


@pytest.mark.cuda
@pytest.mark.parametrize("shape", [(5, 7, 70), (0, 70), (4, 0)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cuda_binary_matmul_forward_and_grads(dtype, shape):
    n = 11 if shape[-1] else 0
    a = make_tensor(shape, dtype, seed=3).cuda().requires_grad_()
    w = make_tensor((n, shape[-1]), dtype, seed=4).cuda().requires_grad_()
    grad = make_tensor((*shape[:-1], n), dtype, seed=5).cuda()
    grad_a, grad_w = ref.binary_matmul_bwd(_np(a), _np(w), _np(grad))
    for backend in _cuda_backends():
        a.grad = w.grad = None
        out = ops.binary_matmul(a, w, backend=backend)
        assert out.is_cuda and out.dtype == dtype
        assert_close(f"out {backend}", ref.binary_matmul(_np(a), _np(w)), out.cpu())
        out.backward(grad)
        assert_close(f"grad_a {backend}", grad_a, a.grad.cpu())
        assert_close(f"grad_w {backend}", grad_w, w.grad.cpu())


@pytest.mark.cuda
@pytest.mark.parametrize("word_bits", [32, 64])
def test_cuda_padding_bits_are_ignored(word_bits):
    k = word_bits + 1
    ones = torch.full((3, 2), -1, dtype=torch.int32 if word_bits == 32 else torch.int64, device="cuda")
    for backend in _cuda_backends():
        out = ops.packed_binary_matmul(ones, torch.zeros_like(ones), k, backend=backend)
        assert_close(f"padding {backend}", np.full((3, 3), -k), out.cpu())


@pytest.mark.cuda
def test_cuda_binarize_and_compile_match_cpu():
    x = make_tensor((6, 40), torch.float32, seed=6)
    assert_close("binarize cuda", ops.binarize(x, scale="channel"), ops.binarize(x.cuda(), scale="channel").cpu())
    compiled = torch.compile(lambda a, w: ops.binary_matmul(a, w) * 2, fullgraph=True)
    a, w = torch.randn(5, 33), torch.randn(3, 33)
    assert_close("inductor cuda", 2 * ref.binary_matmul(_np(a), _np(w)), compiled(a.cuda(), w.cuda()).cpu())


@pytest.mark.cuda
def test_cuda_rejects_mixed_devices():
    with pytest.raises(ValueError, match="w is on cpu but a is on cuda"):
        ops.binary_matmul(torch.randn(2, 5, device="cuda"), torch.randn(3, 5))
    with pytest.raises(ValueError, match="backend='cpu'"):
        ops.pack_bits(torch.randn(2, 5, device="cuda"), backend="cpu")
