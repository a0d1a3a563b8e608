"""accelkit.nn.BinaryLinear against the float64 oracle of kernels/binary/reference.py: forward and every gradient,
the eval-mode cache of packed weights and when it is dropped, torch.compile, from_linear, bad input, CUDA."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import FLOAT_DTYPES, layouts, make_tensor, seeds, sizes
from tolerance import assert_close

from accelkit import nn as aknn
from accelkit import ops
from accelkit.kernels.binary import reference as ref


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def _oracle(x, w, b, grad, *, scale, binarize_input):
    """Forward and (dx, dW, db) of y = Bx @ (alpha sign(W)).T + b in float64, from the reference functions."""
    k = w.shape[1]
    bx = ref.sign(x) if binarize_input else x
    alpha = np.abs(w).sum(axis=1, keepdims=True) / max(k, 1) if scale == "channel" else 1.0
    bw = alpha * ref.sign(w)
    y = bx @ bw.T + (0.0 if b is None else b)
    rows = int(np.prod(x.shape[:-1]))
    g_rows, bx_rows = grad.reshape(rows, w.shape[0]), bx.reshape(rows, k)
    gw_eff = g_rows.T @ bx_rows
    dw = ref.binarize_bwd(w, gw_eff, scale) if k else np.zeros_like(w)
    dx = grad @ bw
    if binarize_input:
        dx = dx * ref.ste_mask(x)
    db = None if b is None else g_rows.sum(axis=0)
    return y, dx, dw, db


# Half dtypes run without the channel scale and without the bias beside it: alpha * q + b is three roundings of
# terms larger than the result, which no per-dtype tolerance of the result can bound. The float dtypes cover both;
# test_channel_scale_and_bias_compose checks that the bias adds exactly in every dtype.
configs = st.one_of(
    st.tuples(st.sampled_from(FLOAT_DTYPES), st.just(None), st.booleans()),
    st.tuples(st.sampled_from((torch.float32, torch.float64)), st.just("channel"), st.just(False)),
)
batch_shapes = st.one_of(st.just(()), st.tuples(sizes(5, min_value=0)), st.tuples(sizes(3), sizes(3)))


@given(
    batch=batch_shapes,
    k=sizes(140, min_value=0),
    n=sizes(40, min_value=0),
    config=configs,
    binarize_input=st.booleans(),
    layout=layouts,
    seed=seeds,
)
def test_forward_and_grads_match_oracle(batch, k, n, config, binarize_input, layout, seed):
    dtype, scale, bias = config
    layer = aknn.BinaryLinear(k, n, bias, scale=scale, binarize_input=binarize_input, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(make_tensor((n, k), dtype, seed=seed + 1))
        if bias:
            layer.bias.copy_(make_tensor((n,), dtype, seed=seed + 3))
    x = make_tensor((*batch, k), dtype, seed=seed, layout=layout).requires_grad_()
    y = layer(x)
    assert y.dtype == dtype and y.shape == (*batch, n)
    grad = make_tensor(tuple(y.shape), dtype, seed=seed + 2)
    b = _np(layer.bias) if bias else None
    y_ref, dx, dw, db = _oracle(_np(x), _np(layer.weight), b, _np(grad), scale=scale, binarize_input=binarize_input)
    assert_close("y", y_ref, y)
    y.backward(grad)
    assert_close("grad x", dx, x.grad)
    assert_close("grad weight", dw, layer.weight.grad)
    if bias:
        assert_close("grad bias", db, layer.bias.grad)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_channel_scale_and_bias_compose(dtype):
    with_bias = aknn.BinaryLinear(70, 9, scale="channel", dtype=dtype)
    without = aknn.BinaryLinear(70, 9, False, scale="channel", dtype=dtype)
    with torch.no_grad():
        without.weight.copy_(with_bias.weight)
    x = make_tensor((4, 70), dtype, seed=1)
    assert torch.equal(with_bias(x), without(x) + with_bias.bias)


@pytest.mark.parametrize("scale", [None, "channel"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_eval_caches_packed_weights(dtype, scale, monkeypatch):
    layer = aknn.BinaryLinear(100, 13, scale=scale, dtype=dtype)
    x = make_tensor((6, 100), dtype, seed=2)
    trained = layer(x).detach()
    layer.eval()
    packed = []
    real_pack = ops.pack_bits
    monkeypatch.setattr(aknn.ops, "pack_bits", lambda t, **kw: packed.append(tuple(t.shape)) or real_pack(t, **kw))
    with torch.no_grad():
        first, second = layer(x), layer(x)
    # The eval path computes the same values in the same order as the training path.
    assert torch.equal(first, trained) and torch.equal(second, trained)
    assert packed == [(13, 100), (6, 100), (6, 100)], "W packed once, then only the activations"

    with torch.no_grad():
        layer.weight[0].neg_()  # in place: the version counter moves, the cache must go
        changed = layer(x)
    b = _np(layer.bias)
    y_ref = _oracle(_np(x), _np(layer.weight), b, np.zeros((6, 13)), scale=scale, binarize_input=True)[0]
    if dtype in (torch.float32, torch.float64) or scale is None:
        assert_close("after an in-place change", y_ref, changed)
    assert packed.count((13, 100)) == 2

    state = {key: value.clone() for key, value in layer.state_dict().items()}
    state["weight"].neg_()
    layer.load_state_dict(state)
    assert layer._packed is None
    with torch.no_grad():
        assert torch.equal(layer(x), aknn.BinaryLinear.train(layer, True)(x).detach())
    assert layer._packed is None, "train() drops the cache"


def test_eval_with_gradients_takes_the_autograd_path():
    layer = aknn.BinaryLinear(33, 5).eval()
    x = torch.randn(3, 33, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None and layer._packed is None


@pytest.mark.parametrize("scale", [None, "channel"])
def test_torch_compile_fullgraph_values(scale):
    layer = aknn.BinaryLinear(45, 8, scale=scale)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 45, requires_grad=True)
    eager_y = layer(x)
    y = compiled(x)
    assert_close("compiled train", eager_y.detach().double().numpy(), y)
    y.sum().backward()
    grad_w = layer.weight.grad.clone()
    layer.weight.grad = None
    eager_y.sum().backward()
    assert_close("compiled grad", layer.weight.grad.double().numpy(), grad_w)
    layer.eval()
    with torch.no_grad():
        y_ref = _oracle(_np(x), _np(layer.weight), _np(layer.bias), np.zeros((4, 8)), scale=scale, binarize_input=True)
        assert_close("compiled eval", y_ref[0], torch.compile(layer, fullgraph=True)(x))


def test_from_linear_and_state_dict_carry_over():
    linear = torch.nn.Linear(50, 7, dtype=torch.float64)
    layer = aknn.BinaryLinear.from_linear(linear, scale="channel")
    assert layer.weight.dtype == torch.float64 and torch.equal(layer.weight, linear.weight)
    assert torch.equal(layer.bias, linear.bias) and layer.weight.data_ptr() != linear.weight.data_ptr()
    x = make_tensor((3, 50), torch.float64, seed=4)
    y_ref = _oracle(
        _np(x), _np(linear.weight), _np(linear.bias), np.zeros((3, 7)), scale="channel", binarize_input=True
    )
    assert_close("from_linear", y_ref[0], layer(x))
    fresh = aknn.BinaryLinear(50, 7, scale="channel", dtype=torch.float64)
    fresh.load_state_dict(linear.state_dict())
    assert torch.equal(fresh(x), layer(x))
    assert "scale='channel'" in repr(layer)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: aknn.BinaryLinear(4.0, 3), TypeError, "in_features"),
        (lambda: aknn.BinaryLinear(4, -1), ValueError, "out_features"),
        (lambda: aknn.BinaryLinear(4, 3, scale="tensor"), ValueError, "scale"),
        (lambda: aknn.BinaryLinear(4, 3, scale=1), TypeError, "scale"),
        (lambda: aknn.BinaryLinear(4, 3, binarize_input=1), TypeError, "binarize_input"),
        (lambda: aknn.BinaryLinear(4, 3, dtype=torch.int32), ValueError, "dtype"),
        (lambda: aknn.BinaryLinear(4, 3)(torch.randn(2, 5)), ValueError, "features"),
        (lambda: aknn.BinaryLinear(4, 3)(torch.ones(2, 4, dtype=torch.int64)), ValueError, "x must have dtype"),
        (lambda: aknn.BinaryLinear(4, 3)(torch.randn(2, 4).double()), ValueError, "dtype"),
        (lambda: aknn.BinaryLinear(4, 3)([1.0] * 4), TypeError, "x must be a torch.Tensor"),
        (lambda: aknn.BinaryLinear.from_linear(torch.nn.Conv1d(1, 1, 1)), TypeError, "linear"),
        (lambda: aknn.BinaryLinear(1, 2**20)(torch.zeros(1, 1).expand(2**40, 1)), ValueError, "x: the tensor"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.cuda
@pytest.mark.parametrize("scale", [None, "channel"])
def test_cuda_matches_cpu(scale):
    layer = aknn.BinaryLinear(130, 17, scale=scale)
    x = make_tensor((5, 130), torch.float32, seed=8)
    expected = layer(x).detach()
    gpu = aknn.BinaryLinear.from_linear(torch.nn.Linear(130, 17), scale=scale).cuda()
    gpu.load_state_dict(layer.state_dict())
    assert_close("cuda train", expected, gpu(x.cuda()).detach().cpu())
    gpu.eval()
    with torch.no_grad():
        assert_close("cuda eval", expected, gpu(x.cuda()).cpu())
        assert gpu._packed is not None and gpu._packed[1].is_cuda
