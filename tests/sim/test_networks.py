"""Built-in networks against published MAC and parameter counts, and their layer counts.

Sources: torchvision model pages (https://pytorch.org/vision/stable/models/generated/torchvision.models.<name>.html):
resnet50 4.09 GFLOPS (multiply-adds) and 25,557,032 parameters, vit_b_16 17.56 GFLOPS and 86,567,656
parameters; Sandler et al. 2018 (MobileNetV2), Table 4: 300M multiply-adds, 3.4M parameters; Devlin et al.
2018 (BERT-base): 110M parameters; the released GPT-2 small checkpoint: 124M parameters.
"""

import pytest

from accelkit.sim.networks import NETWORKS, get_network
from accelkit.sim.workloads import Conv, Gemm


def total_macs(layers) -> int:
    return sum(layer.macs for layer in layers)


def weight_count(layers) -> int:
    """Weights of the layers that have them: conv filters and linear layers; attention GEMMs multiply two
    activations and hold none."""
    count = 0
    for layer in layers:
        if isinstance(layer, Conv):
            count += layer.filter_h * layer.filter_w * layer.channels // layer.groups * layer.num_filters
        elif not layer.name.endswith((".scores", ".context")):
            count += layer.k * layer.n
    return count


@pytest.mark.parametrize(
    ("name", "gmacs", "tolerance"),
    [("resnet50", 4.09, 0.01), ("mobilenet_v2", 0.300, 0.02), ("vit_b16", 17.56, 0.01)],
)
def test_macs_match_published(name, gmacs, tolerance):
    assert total_macs(get_network(name)) / 1e9 == pytest.approx(gmacs, rel=tolerance)


@pytest.mark.parametrize(
    ("name", "params_m", "extra_m"),
    [
        ("resnet50", 25.557, 0.0),
        ("mobilenet_v2", 3.4, 0.0),
        ("vit_b16", 86.568, 0.0),
        # Parameters outside the GEMMs: BERT's token, position and segment embeddings (30,522 + 512 + 2) x 768;
        # GPT-2's 1024 x 768 position table (its token table is the LM head, which is a GEMM here).
        ("bert_base", 110.0, (30522 + 512 + 2) * 768 / 1e6),
        ("gpt2", 124.0, 1024 * 768 / 1e6),
    ],
)
def test_weights_match_published_parameter_counts(name, params_m, extra_m):
    # Biases and normalisation scales are under 1% of every model here.
    assert weight_count(get_network(name)) / 1e6 + extra_m == pytest.approx(params_m, rel=0.025)


@pytest.mark.parametrize(
    ("name", "convs", "gemms"),
    [
        ("resnet50", 53, 1),  # conv1 + 16 bottlenecks x 3 + 4 downsample projections; the FC
        ("mobilenet_v2", 52, 1),  # conv1 + 17 blocks (the first has no expansion) x 3 - 1 + conv 1x1 1280; the FC
        ("bert_base", 0, 12 * (4 + 2 * 12)),  # QKV, out, FFN1, FFN2 and 12 heads x (scores, context)
        ("gpt2", 0, 12 * (4 + 2 * 12) + 1),  # the same blocks plus the LM head
        ("vit_b16", 1, 12 * (4 + 2 * 12) + 1),  # patch embedding; blocks; classifier
    ],
)
def test_layer_counts(name, convs, gemms):
    layers = get_network(name)
    assert sum(isinstance(layer, Conv) for layer in layers) == convs
    assert sum(isinstance(layer, Gemm) for layer in layers) == gemms
    assert len({layer.name for layer in layers}) == len(layers)


def test_depthwise_layers_have_one_channel_per_group():
    depthwise = [layer for layer in get_network("mobilenet_v2") if layer.name.endswith(".depthwise")]
    assert len(depthwise) == 17
    assert all(layer.groups == layer.channels == layer.num_filters for layer in depthwise)


def test_resnet50_ends_at_7x7_with_2048_channels():
    layers = get_network("resnet50")
    last_conv = [layer for layer in layers if isinstance(layer, Conv)][-1]
    assert (last_conv.ofmap_h, last_conv.ofmap_w) == (7, 7)
    assert layers[-1] == Gemm(name="fc", m=1, n=1000, k=2048)


@pytest.mark.parametrize("name", NETWORKS)
def test_batch_scales_macs_linearly(name):
    assert total_macs(get_network(name, batch=3)) == 3 * total_macs(get_network(name))


@pytest.mark.parametrize(("name", "default"), [("bert_base", 512), ("gpt2", 1024)])
def test_sequence_length(name, default):
    default_layers = get_network(name)
    short = get_network(name, seq_len=128)
    assert default_layers == get_network(name, seq_len=default)
    scores = [layer for layer in short if layer.name.endswith(".scores")]
    assert {(layer.m, layer.n, layer.k) for layer in scores} == {(128, 128, 64)}
    assert total_macs(short) < total_macs(default_layers)


def test_bert_attention_macs_are_quadratic_in_sequence():
    def attention(seq):
        return sum(layer.macs for layer in get_network("bert_base", seq_len=seq) if ".h" in layer.name)

    # Per layer: scores and context are each S x S x 768 MACs summed over heads.
    assert attention(256) == 12 * 2 * 256 * 256 * 768
    assert attention(512) == 4 * attention(256)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "resnet51"}, "unknown network"),
        ({"name": "resnet50", "seq_len": 128}, "seq_len applies"),
        ({"name": "bert_base", "seq_len": 513}, "exceeds"),
        ({"name": "gpt2", "seq_len": 0}, "seq_len must be"),
        ({"name": "vit_b16", "batch": 0}, "batch must be"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_network(**kwargs)


def test_names_are_forgiving():
    assert get_network("ResNet-50") == get_network("resnet50")
    assert get_network("ViT-B/16") == get_network("vit_b16")
    assert get_network("MobileNetV2") == get_network("mobilenet_v2")
