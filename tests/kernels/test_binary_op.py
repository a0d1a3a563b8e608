"""The public binary ops (accelkit.ops) against the NumPy oracle: forward, STE gradients, opcheck, compile."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import FLOAT_DTYPES, layouts, make_tensor, seeds, sizes
from tolerance import assert_close

from accelkit import ops
from accelkit.kernels.binary import reference as ref


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


batch_shapes = st.one_of(st.just(()), st.tuples(sizes(5, min_value=0)), st.tuples(sizes(3), sizes(3)))


@given(batch=batch_shapes, n=sizes(70), k=sizes(140), dtype=st.sampled_from(FLOAT_DTYPES), layout=layouts, seed=seeds)
def test_binary_matmul_forward_and_grads(batch, n, k, dtype, layout, seed):
    a = make_tensor((*batch, k), dtype, seed=seed, layout=layout).requires_grad_()
    w = make_tensor((n, k), dtype, seed=seed + 1, layout=layout).requires_grad_()
    out = ops.binary_matmul(a, w)
    assert out.dtype == dtype and out.shape == (*batch, n)
    assert_close("out", ref.binary_matmul(_np(a), _np(w)), out)

    grad = make_tensor(tuple(out.shape), dtype, seed=seed + 2)
    out.backward(grad)
    grad_a, grad_w = ref.binary_matmul_bwd(_np(a), _np(w), _np(grad))
    assert_close("grad_a", grad_a, a.grad)
    assert_close("grad_w", grad_w, w.grad)


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
    assert_close("out", ref.xnor_popcount_matmul(expected, ref.pack_bits(_np(w), word_bits), shape[-1]), out)


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([0.0, -0.0, 1e-30, -1e-30])
    assert ops.binarize(x).tolist() == [1.0, 1.0, 1.0, -1.0]
    assert ops.binary_matmul(torch.zeros(1, 33), torch.zeros(2, 33)).tolist() == [[33.0, 33.0]]


I32 = torch.int32


def _words(*shape: int) -> torch.Tensor:
    return torch.zeros(shape, dtype=I32)


def _examples():
    a = torch.randn(3, 5, 37, requires_grad=True)
    w = torch.randn(6, 37, requires_grad=True)
    bits = ops.pack_bits(a.detach(), word_bits=64)
    w_bits = ops.pack_bits(w.detach(), word_bits=64)
    return [
        (torch.ops.accelkit.binary_matmul.default, (a, w)),
        (torch.ops.accelkit.binarize.default, (torch.randn(4, 9, requires_grad=True), "channel")),
        (torch.ops.accelkit.binarize.default, (torch.randn(4, 9, dtype=torch.float64, requires_grad=True), None)),
        (torch.ops.accelkit.pack_bits.default, (torch.randn(2, 70), 32)),
        (torch.ops.accelkit.packed_binary_matmul.default, (bits, w_bits, 37)),
    ]


@pytest.mark.parametrize("case", range(5), ids=["binary_matmul", "binarize_ch", "binarize", "pack", "packed_mm"])
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


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 4)), "K="),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 5, 1)), "w must be"),
        (lambda: ops.binary_matmul(torch.randn(2, 5), torch.randn(3, 5, dtype=torch.float64)), "w must have dtype"),
        (lambda: ops.binary_matmul(torch.ones(2, 5, dtype=torch.int32), torch.randn(3, 5)), "a must have dtype"),
        (lambda: ops.binary_matmul([1.0], torch.randn(3, 5)), "a must be a torch.Tensor"),
        (lambda: ops.binarize(torch.randn(3), scale="channel"), "x must have at least 2 dims"),
        (lambda: ops.binarize(torch.randn(3), scale="row"), "scale"),
        (lambda: ops.pack_bits(torch.randn(3, 4), word_bits=16), "word_bits"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), torch.zeros(3, 2), 64), "w_bits"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 3), 64), "words"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), 65), "k=65"),
        (lambda: ops.packed_binary_matmul(_words(2, 2), _words(3, 2), 32), "k=32"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
