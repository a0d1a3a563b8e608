"""The spiking oracle checks itself: with the Heaviside replaced by the surrogate's primitive (smooth=True) the
forward is differentiable, and central finite differences must match the BPTT recursion for x, v_init and the decay,
for every charge equation, reset and surrogate; the surrogates' derivatives match their primitives too."""

import numpy as np
import pytest

from accelkit.kernels.spiking import reference as ref


@pytest.mark.parametrize("kind, decay_input", [("if", True), ("lif", True), ("lif", False)])
@pytest.mark.parametrize("v_reset", [0.0, -0.3, None])
@pytest.mark.parametrize("surrogate", ref.SURROGATES)
def test_backward_matches_finite_differences(kind, decay_input, v_reset, surrogate):
    rng = np.random.default_rng(0)
    t, n, eps = 4, 5, 1e-6
    x, v0 = rng.normal(0.6, 0.8, (t, n)), rng.normal(0, 0.5, n)
    gs, gv = rng.normal(size=(t, n)), rng.normal(size=(t, n))
    opts = dict(kind=kind, decay_input=decay_input, v_reset=v_reset, surrogate=surrogate, smooth=True)

    def loss(x, v0, decay=0.4):
        s, v, _ = ref.neuron_forward(x, v0, decay=decay, **opts)
        return float((s * gs).sum() + (v * gv).sum())

    gx, gv0, gd = ref.neuron_backward(x, v0, gs, gv, decay=0.4, **opts)
    for idx in np.ndindex(t, n):
        step = np.zeros_like(x)
        step[idx] = eps
        assert abs((loss(x + step, v0) - loss(x - step, v0)) / (2 * eps) - gx[idx]) < 1e-7
    for i in range(n):
        step = np.zeros(n)
        step[i] = eps
        assert abs((loss(x, v0 + step) - loss(x, v0 - step)) / (2 * eps) - gv0[i]) < 1e-7
    if kind == "lif":
        assert abs((loss(x, v0, 0.4 + eps) - loss(x, v0, 0.4 - eps)) / (2 * eps) - gd) < 1e-7


@pytest.mark.parametrize("surrogate", ref.SURROGATES)
def test_surrogate_is_derivative_of_primitive(surrogate):
    x = np.linspace(-3, 3, 601) + 1e-3
    alpha = ref.DEFAULT_ALPHA[surrogate]
    fd = (
        ref.surrogate_primitive(x + 1e-6, surrogate, alpha) - ref.surrogate_primitive(x - 1e-6, surrogate, alpha)
    ) / 2e-6
    np.testing.assert_allclose(ref.surrogate_grad(x, surrogate, alpha), fd, atol=1e-6)


def test_hard_spike_forward_values():
    """By hand, x = 1.5, tau = 2: H = 0.75, then 0.75 + (1.5 - 0.75) / 2 = 1.125 >= 1 fires and resets to 0."""
    s, v, h = ref.neuron_forward(np.array([[1.5], [1.5], [1.5]]), decay=0.5)
    np.testing.assert_array_equal(s[:, 0], [0, 1, 0])
    np.testing.assert_array_equal(h[:, 0], [0.75, 1.125, 0.75])
    np.testing.assert_array_equal(v[:, 0], [0.75, 0.0, 0.75])
