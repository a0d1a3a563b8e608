"""accelkit.nn.RPEKernelAttention: the layer equals its projections around ops.rpe_kernel_attention with the central
2T - 1 offsets of its bias, learns the bias, redraws its features every feature_redraw_interval training calls and
never in eval mode, and refuses bad arguments naming them."""

import pytest
import torch

from accelkit import ops
from accelkit.nn import RPEKernelAttention


def _layer(**kw):
    torch.manual_seed(0)
    args = {"num_features": 16, "max_len": 40, "causal": True, "feature_redraw_interval": 3, **kw}
    layer = RPEKernelAttention(24, 3, **args)
    with torch.no_grad():
        layer.rpe_bias.copy_(torch.randn(layer.rpe_bias.shape))
    return layer


def test_forward_equals_the_op_with_central_offsets():
    layer = _layer().double().eval()
    x = torch.randn(2, 11, 24, dtype=torch.float64)
    q, k, v = layer.qkv(x).view(2, 11, 3, 3, 8).unbind(2)
    bias = layer.rpe_bias[:, 40 - 11 : 40 + 10]
    z = ops.rpe_kernel_attention(q, k, v, bias, causal=True, features=layer.features)
    torch.testing.assert_close(layer(x), layer.out(z.reshape(2, 11, 24)), rtol=0, atol=0)


def test_bias_gets_gradient_on_used_offsets_only():
    layer = _layer()
    layer(torch.randn(2, 7, 24)).square().sum().backward()
    grad = layer.rpe_bias.grad
    used = torch.zeros_like(grad, dtype=torch.bool)
    used[:, 40 - 7 : 40 + 6] = True
    assert grad[used].abs().sum() > 0 and not grad[~used].any()
    # Causal: offsets j - i > 0 (keys after the query) carry no weight, so no gradient either.
    assert not grad[:, 40:].any()


def test_features_redrawn_in_training_only():
    layer = _layer()
    x = torch.randn(1, 5, 24)
    seen = []
    for _ in range(7):
        layer(x)
        seen.append(layer.features.clone())
    changes = [not torch.equal(a, b) for a, b in zip(seen, seen[1:], strict=False)]
    # Calls 1-3 use the first draw, 4-6 the second, 7 the third.
    assert changes == [False, False, True, False, False, True]
    layer.eval()
    for _ in range(5):
        layer(x)
    assert torch.equal(layer.features, seen[-1])
    never = _layer(feature_redraw_interval=None)
    first = never.features.clone()
    for _ in range(5):
        never(x)
    assert torch.equal(never.features, first)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"dim": 25}, ValueError, "heads"),
        ({"heads": 0}, ValueError, "heads"),
        ({"max_len": 0}, ValueError, "max_len"),
        ({"num_features": 0}, ValueError, "num_features"),
        ({"feature_redraw_interval": -1}, ValueError, "feature_redraw_interval"),
        ({"feature_redraw_interval": 1.5}, TypeError, "feature_redraw_interval"),
        ({"causal": 1}, TypeError, "causal"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, name):
    args = {"dim": 24, "heads": 3, "max_len": 8, **kwargs}
    with pytest.raises(error, match=name):
        RPEKernelAttention(args.pop("dim"), args.pop("heads"), **args)


def test_bad_input_names_x():
    layer = _layer(max_len=4)
    for x in (torch.randn(1, 5, 24), torch.randn(1, 3, 25), torch.randn(3, 24)):
        with pytest.raises(ValueError, match="x"):
            layer(x)
