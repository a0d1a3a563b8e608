"""Fuzz targets for the public PyTorch ops (accelkit.ops) and accelkit.nn.BinaryLinear once it exists.

A successful call must return a tensor of the right shape, dtype and device; on the CPU, for inputs small enough
to check in a few milliseconds (at most 2^14 elements), its values must also equal the NumPy oracle
(kernels/binary/reference.py). An invalid call may raise only ValueError or TypeError naming the argument.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import hypothesis.strategies as st
import numpy as np
import torch

from accelkit import ops
from accelkit.kernels.binary import reference as ref
from fuzz.core import Case, Target
from fuzz.values import CPU_HUGE_LAST, FLOATS, WORDS, TensorSpec, numpy_int, padding_masks, tensors, wrong_values

# Inputs up to this many elements get their values checked against the oracle, not just their shape.
CHECK_ELEMENTS = 2**14
_BACKENDS = st.sampled_from(("auto", "cpu", "triton", "cuda", "gpu", "", 0))


def _optional_backend(draw) -> dict:
    """Usually no backend argument; sometimes a valid or invalid one (an op without the keyword must say so)."""
    return {"backend": draw(_BACKENDS)} if draw(st.integers(0, 3)) == 0 else {}


def _kwargs_text(kwargs: dict) -> str:
    return "".join(f", {k}={v!r}" for k, v in kwargs.items())


def _is_small_cpu(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.numel() <= CHECK_ELEMENTS for t in tensors)


def _expect(result, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
    assert isinstance(result, torch.Tensor), f"result is a {type(result).__name__}, not a tensor"
    assert tuple(result.shape) == tuple(shape), f"result shape {tuple(result.shape)}, expected {tuple(shape)}"
    assert result.dtype == dtype, f"result dtype {result.dtype}, expected {dtype}"
    assert result.device == device, f"result on {result.device}, expected {device}"


def _unsigned(words: torch.Tensor) -> np.ndarray:
    arr = words.detach().contiguous().numpy()
    return arr.view(np.uint32 if arr.dtype == np.int32 else np.uint64)


# --- binarize ---


@st.composite
def _binarize_cases(draw) -> Case:
    spec = draw(tensors(grad=True))
    scale = draw(st.one_of(st.sampled_from((None, "tensor", "channel")), wrong_values(valid=("Tensor", "none"))))
    kwargs = {"scale": scale} if draw(st.booleans()) or scale is not None else {}

    def call(_):
        x = spec.build()
        return x, ops.binarize(x, **kwargs)

    def check(out) -> None:
        x, y = out
        _expect(y, x.shape, x.dtype, x.device)
        if kwargs.get("scale") is None and _is_small_cpu(x):
            # sign(0) = sign(-0.0) = +1; NaN is not >= 0, so -1, as pack_bits packs it.
            expected = torch.where(x.detach() >= 0, 1.0, -1.0).to(x.dtype)
            assert torch.equal(y.detach(), expected), "binarize(x) differs from where(x >= 0, 1, -1)"

    return Case(f"binarize({spec!r}{_kwargs_text(kwargs)})", call, check, names=("x", "scale"))


# --- pack_bits ---


@st.composite
def _pack_cases(draw) -> Case:
    spec = draw(tensors(min_dims=0))
    word_bits = draw(
        st.one_of(st.sampled_from((32, 64, numpy_int(32), numpy_int(64), 64.0)), wrong_values(valid=(16,)))
    )
    kwargs = {"word_bits": word_bits, **_optional_backend(draw)}

    def call(_):
        x = spec.build()
        return x, ops.pack_bits(x, **kwargs)

    def check(out) -> None:
        x, y = out
        bits = int(word_bits)
        assert bits in (32, 64), f"pack_bits accepted word_bits={word_bits!r}"
        words = math.ceil(x.shape[-1] / bits)
        _expect(y, (*x.shape[:-1], words), torch.int32 if bits == 32 else torch.int64, x.device)
        if _is_small_cpu(x):
            expected = ref.pack_bits(x.detach().double().numpy(), bits)
            assert np.array_equal(_unsigned(y), expected), "pack_bits differs from the oracle"

    return Case(f"pack_bits({spec!r}{_kwargs_text(kwargs)})", call, check, names=("x", "word_bits", "backend"))


# --- packed_binary_matmul ---


@st.composite
def _packed_matmul_cases(draw) -> Case:
    """Word tensors with matching or mismatched sizes; padding bits clear (as pack_bits writes them) or set."""
    dtype = draw(st.sampled_from(WORDS + FLOATS[:1]))
    bits = 32 if dtype == torch.int32 else 64
    words = draw(st.sampled_from((0, 1, 2, 3, 5)))
    k_valid = draw(st.integers(max(0, (words - 1) * bits + 1), words * bits)) if words else 0
    clean = draw(st.booleans())
    a = draw(tensors((dtype,), min_dims=1, max_dims=3, dims={-1: words}))
    w = draw(tensors((dtype,), min_dims=2, max_dims=2, dims={-1: words}))
    a, w = (dataclasses.replace(s, valid_bits=k_valid if clean else None) for s in (a, w))
    if draw(st.integers(0, 4)) == 0:
        # A wrong operand: another dtype, rank, word count or device than its partner.
        w = draw(tensors(min_dims=0, max_dims=3))
    k = draw(
        st.one_of(
            st.just(k_valid),
            st.sampled_from((k_valid + 1, k_valid - 1, words * bits + bits, 0, -1, 2**40)),
            st.just(numpy_int(k_valid)),
            st.just(float(k_valid)),
            wrong_values(),
        )
    )
    kwargs = _optional_backend(draw)

    def call(_):
        a_bits, w_bits = a.build(), w.build()
        return a_bits, w_bits, ops.packed_binary_matmul(a_bits, w_bits, k, **kwargs)

    def check(out) -> None:
        a_bits, w_bits, y = out
        _expect(y, (*a_bits.shape[:-1], w_bits.shape[0]), torch.int32, a_bits.device)
        kk = int(k)
        if not _is_small_cpu(a_bits, w_bits):
            return
        # Padding past k bits is not part of the operands: a result must ignore it (or the call refuse it).
        masks = padding_masks(a_bits.shape[-1], a_bits.element_size() * 8, kk, a_bits.dtype)
        expected = ref.xnor_popcount_matmul(_unsigned(a_bits & masks), _unsigned(w_bits & masks), kk)
        got = y.numpy()
        assert np.all(np.abs(got) <= kk), f"results outside [-k, k] = [{-kk}, {kk}]: {got.min()}..{got.max()}"
        assert np.array_equal(got, expected), "packed_binary_matmul differs from the oracle on the first k bits"

    return Case(
        f"packed_binary_matmul({a!r}, {w!r}, k={k!r}{_kwargs_text(kwargs)})",
        call,
        check,
        names=("a_bits", "w_bits", "k", "backend"),
    )


# --- binary_matmul (forward, and backward through the STE) ---


@st.composite
def _matmul_operands(draw, grad: bool) -> tuple[TensorSpec, TensorSpec]:
    k = draw(st.sampled_from((0, 1, 2, 31, 32, 33, 63, 64, 65, 100)))
    a = draw(tensors(FLOATS, min_dims=1, max_dims=3, dims={-1: k}, grad=grad))
    w = draw(tensors(FLOATS, min_dims=2, max_dims=2, dims={-1: k}, grad=grad))
    w = dataclasses.replace(w, dtype=a.dtype)
    if draw(st.integers(0, 5)) and (a.device == "meta" or math.prod(w.shape) <= CPU_HUGE_LAST):
        # Usually on a's device; a meta w of a huge declared size stays on meta rather than allocate its storage.
        w = dataclasses.replace(w, device=a.device)
    if draw(st.integers(0, 4)) == 0:
        w = draw(tensors(min_dims=0, max_dims=3, grad=grad))
    if draw(st.integers(0, 9)) == 0:
        a = draw(tensors(min_dims=0, max_dims=3, grad=grad))
    return a, w


def _exact_limit(dtype: torch.dtype) -> int:
    """Largest K whose +-K dot products the dtype holds exactly: 2^11 in float16, 2^8 in bfloat16, 2^24 in
    float32 (their significand bits + 1); past it the op's and the oracle's casts could round apart."""
    return {torch.float16: 2**11, torch.bfloat16: 2**8}.get(dtype, 2**24)


@st.composite
def _binary_matmul_cases(draw) -> Case:
    a, w = draw(_matmul_operands(grad=False))
    kwargs = _optional_backend(draw)

    def call(_):
        x, y = a.build(), w.build()
        return x, y, ops.binary_matmul(x, y, **kwargs)

    def check(out) -> None:
        x, y, z = out
        _expect(z, (*x.shape[:-1], y.shape[0]), x.dtype, x.device)
        if _is_small_cpu(x, y) and x.shape[-1] <= _exact_limit(x.dtype):
            expected = torch.from_numpy(ref.binary_matmul(x.double().numpy(), y.double().numpy())).to(x.dtype)
            assert torch.equal(z, expected), "binary_matmul differs from sign(a) @ sign(w).T"

    return Case(f"binary_matmul({a!r}, {w!r}{_kwargs_text(kwargs)})", call, check, names=("a", "w", "backend"))


@st.composite
def _binary_matmul_backward_cases(draw) -> Case:
    a, w = draw(_matmul_operands(grad=True))
    a = dataclasses.replace(a, requires_grad=a.dtype.is_floating_point)

    def call(_):
        x, y = a.build(), w.build()
        z = ops.binary_matmul(x, y)
        z.sum().backward()
        return x, y, z

    def check(out) -> None:
        x, y, _ = out
        for name, t in (("a", x), ("w", y)):
            if t.requires_grad:
                assert t.grad is not None, f"{name} requires grad but got none"
                assert t.grad.shape == t.shape and t.grad.dtype == t.dtype, f"{name}.grad is {t.grad.shape}"
        if _is_small_cpu(x, y) and x.requires_grad:
            grad = np.ones((*x.shape[:-1], y.shape[0]))
            ga, _ = ref.binary_matmul_bwd(x.detach().double().numpy(), y.detach().double().numpy(), grad)
            expected = torch.from_numpy(ga).to(x.dtype)
            assert torch.allclose(x.grad, expected, rtol=1e-2, atol=1e-2, equal_nan=True), "a.grad differs"

    return Case(f"binary_matmul({a!r}, {w!r}).sum().backward()", call, check, names=("a", "w"))


# --- accelkit.nn.BinaryLinear ---


@st.composite
def _binary_linear_cases(draw) -> Case:
    """As nn.Linear(in_features, out_features, bias): the constructor's arguments, then a forward on drawn input
    in training mode and again in eval mode under no_grad, where the packed weight is cached."""
    from accelkit.nn import BinaryLinear

    sizes = st.sampled_from((0, 1, 3, 32, 33, 64, 65))
    args = (draw(st.one_of(sizes, wrong_values())), draw(st.one_of(sizes, wrong_values())))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["bias"] = draw(st.one_of(st.booleans(), wrong_values()))
    if draw(st.booleans()):
        kwargs["scale"] = draw(st.one_of(st.sampled_from((None, "channel", "tensor")), wrong_values()))
    k = args[0] if isinstance(args[0], int) and not isinstance(args[0], bool) else 4
    x = draw(tensors(FLOATS[:2], min_dims=1, max_dims=3, dims={-1: k}, huge=False))
    if draw(st.integers(0, 4)) == 0:
        x = draw(tensors())

    def call(_):
        layer = BinaryLinear(*args, **kwargs)
        inp = x.build()
        y = layer(inp)
        layer.eval()
        with torch.no_grad():
            cached = [layer(inp), layer(inp)]
        return inp, y, cached

    def check(out) -> None:
        inp, y, cached = out
        assert isinstance(y, torch.Tensor), f"BinaryLinear returned a {type(y).__name__}"
        assert tuple(y.shape) == (*inp.shape[:-1], args[1]), f"output shape {tuple(y.shape)}"
        assert y.device == inp.device, f"output on {y.device}, input on {inp.device}"
        if _is_small_cpu(inp):
            # Same weights, same input: the eval-mode result (first call packs W, the second reuses it) is the
            # training-mode one.
            for z in cached:
                assert torch.equal(z, y.detach()), "eval-mode output (packed weight cached) differs from training"

    return Case(
        f"BinaryLinear({args[0]!r}, {args[1]!r}{_kwargs_text(kwargs)})({x!r})",
        call,
        check,
        names=("in_features", "out_features", "bias", "scale", "input", "x", "a"),
    )


TARGETS = [
    Target("ops.binarize", _binarize_cases()),
    Target("ops.pack_bits", _pack_cases()),
    Target("ops.packed_binary_matmul", _packed_matmul_cases()),
    Target("ops.binary_matmul", _binary_matmul_cases()),
    Target("ops.binary_matmul.backward", _binary_matmul_backward_cases()),
]
# accelkit.nn lands with the BinaryLinear work; it joins the fuzz suite the moment the module exists.
if importlib.util.find_spec("accelkit.nn") is not None:
    TARGETS.append(Target("nn.BinaryLinear", _binary_linear_cases()))
