"""Built-in networks as ordered lists of `Gemm` and `Conv` layers.

Shapes come from the papers named on each builder. Only the layers a systolic array executes are listed:
pooling, normalisation, activations, softmax and residual adds are not GEMMs and are left out. Attention is
written as the GEMMs a per-head implementation runs: Q·Kᵀ (`scores`) and softmax(·)·V (`context`) for every
(batch item, head), with the causal mask of GPT-2 computed in full, as a plain systolic array does.
"""

from __future__ import annotations

from collections.abc import Callable

from accelkit.sim.workloads import Conv, Gemm

Layer = Gemm | Conv


def _conv(name: str, size: int, kernel: int, cin: int, cout: int, *, stride: int, batch: int, groups: int = 1) -> Conv:
    """A square convolution with 'same'-style padding kernel // 2, as every conv in these networks uses."""
    return Conv(
        name=name,
        ifmap_h=size,
        ifmap_w=size,
        filter_h=kernel,
        filter_w=kernel,
        channels=cin,
        num_filters=cout,
        stride_h=stride,
        stride_w=stride,
        pad_h=kernel // 2,
        pad_w=kernel // 2,
        batch=batch,
        groups=groups,
    )


def _out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


# He et al. 2015 (arXiv:1512.03385), Table 1, 50-layer column: (blocks, bottleneck width) per stage.
_RESNET50_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))


def resnet50(*, batch: int = 1) -> list[Layer]:
    """ResNet-50 at 224x224, v1.5: the stride of a downsampling bottleneck sits on its 3x3 conv, as in
    torchvision, whose resnet50 page lists 4.09 GFLOPS (multiply-adds) and 25,557,032 parameters; the paper's
    Table 1 puts it on the first 1x1 and reports 3.8e9."""
    layers = [_conv("conv1", 224, 7, 3, 64, stride=2, batch=batch)]
    size = _out(_out(224, 7, 2), 3, 2)  # 7x7/2 conv, then the 3x3/2 max pool: 224 -> 112 -> 56
    cin = 64
    for stage, (blocks, width) in enumerate(_RESNET50_STAGES, start=2):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 2 else 1
            tag = f"conv{stage}_{block + 1}"
            layers.append(_conv(f"{tag}.a", size, 1, cin, width, stride=1, batch=batch))
            layers.append(_conv(f"{tag}.b", size, 3, width, width, stride=stride, batch=batch))
            out_size = _out(size, 3, stride)
            layers.append(_conv(f"{tag}.c", out_size, 1, width, 4 * width, stride=1, batch=batch))
            if block == 0:
                layers.append(_conv(f"{tag}.downsample", size, 1, cin, 4 * width, stride=stride, batch=batch))
            size, cin = out_size, 4 * width
    layers.append(Gemm(name="fc", m=batch, n=1000, k=cin))
    return layers


# Sandler et al. 2018 (arXiv:1801.04381), Table 2: (expansion t, output channels c, repeats n, first stride s).
_MOBILENETV2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenet_v2(*, batch: int = 1) -> list[Layer]:
    """MobileNetV2 (width 1.0, 224x224): about 300M multiply-adds and 3.4M parameters (paper, Table 4)."""
    layers = [_conv("conv1", 224, 3, 3, 32, stride=2, batch=batch)]
    size, cin = 112, 32
    for index, (t, c, n, s) in enumerate(_MOBILENETV2_BLOCKS, start=1):
        for repeat in range(n):
            stride = s if repeat == 0 else 1
            tag = f"block{index}_{repeat + 1}"
            hidden = cin * t
            if t != 1:
                layers.append(_conv(f"{tag}.expand", size, 1, cin, hidden, stride=1, batch=batch))
            layers.append(_conv(f"{tag}.depthwise", size, 3, hidden, hidden, stride=stride, batch=batch, groups=hidden))
            size = _out(size, 3, stride)
            layers.append(_conv(f"{tag}.project", size, 1, hidden, c, stride=1, batch=batch))
            cin = c
    layers.append(_conv("conv_last", size, 1, cin, 1280, stride=1, batch=batch))
    layers.append(Gemm(name="fc", m=batch, n=1000, k=1280))
    return layers


def _encoder(prefix: str, *, tokens: int, batch: int, d_model: int, heads: int, d_ff: int) -> list[Gemm]:
    """One pre- or post-norm transformer block (the GEMMs are the same): the fused QKV projection (N = 3 x
    d_model, the MACs of three), per-head attention, the output projection and the two FFN GEMMs. Projections
    fold the batch into M; attention runs per (item, head)."""
    rows, d_head = batch * tokens, d_model // heads
    layers = [Gemm(name=f"{prefix}.qkv", m=rows, n=3 * d_model, k=d_model)]
    for item in range(batch):
        for head in range(heads):
            tag = f"{prefix}.b{item}h{head}" if batch > 1 else f"{prefix}.h{head}"
            layers.append(Gemm(name=f"{tag}.scores", m=tokens, n=tokens, k=d_head))
            layers.append(Gemm(name=f"{tag}.context", m=tokens, n=d_head, k=tokens))
    layers.append(Gemm(name=f"{prefix}.attn_out", m=rows, n=d_model, k=d_model))
    layers.append(Gemm(name=f"{prefix}.ffn1", m=rows, n=d_ff, k=d_model))
    layers.append(Gemm(name=f"{prefix}.ffn2", m=rows, n=d_model, k=d_ff))
    return layers


# Attention runs as one GEMM pair per (item, head), so the layer list grows with the batch: 2^18 GEMMs take about
# a second to build and a minute to simulate, while BERT-base at batch 2^20 would be 3 x 10^8 of them.
MAX_ATTENTION_GEMMS = 2**18


def _stack(count: int, **shape: int) -> list[Gemm]:
    gemms = count * 2 * shape["heads"] * shape["batch"]
    if gemms > MAX_ATTENTION_GEMMS:
        raise ValueError(
            f"{gemms} per-head attention GEMMs, over the {MAX_ATTENTION_GEMMS} that a network lists one by one; "
            "simulate a smaller batch and scale"
        )
    return [layer for index in range(count) for layer in _encoder(f"layer{index}", **shape)]


def bert_base(*, batch: int = 1, seq_len: int | None = None) -> list[Layer]:
    """BERT-base encoder (Devlin et al. 2018, arXiv:1810.04805, §3: L=12, H=768, A=12, FFN 4H = 3072; 110M
    parameters, 512 positions), sequence length 512 unless given. Embedding look-ups are not GEMMs, and the pooler
    and task heads sit outside the encoder; all are left out."""
    return _stack(12, tokens=seq_len or 512, batch=batch, d_model=768, heads=12, d_ff=3072)


# Radford et al. 2019, Table 2 (smallest model: 12 layers, d_model 768) and §2.3 (context 1024, vocabulary 50,257).
_GPT2_VOCAB = 50257


def gpt2(*, batch: int = 1, seq_len: int | None = None) -> list[Layer]:
    """GPT-2 small: 12 decoder blocks of width 768 with 12 heads (64 each, as in GPT, Radford et al. 2018) and
    FFN 3072, then the LM head tied to the token embedding. The paper's Table 2 says 117M parameters; the
    released checkpoint has 124M. Sequence length 1024 unless given."""
    tokens = seq_len or 1024
    layers = _stack(12, tokens=tokens, batch=batch, d_model=768, heads=12, d_ff=3072)
    layers.append(Gemm(name="lm_head", m=batch * tokens, n=_GPT2_VOCAB, k=768))
    return layers


def vit_b16(*, batch: int = 1) -> list[Layer]:
    """ViT-B/16 at 224x224 (Dosovitskiy et al. 2020, arXiv:2010.11929, Table 1: 12 layers, hidden 768, MLP
    3072, 12 heads, 86M parameters): a 16x16 stride-16 patch embedding, 196 patches + 1 class token = 197
    tokens, 12 encoder blocks and the 1000-class head on the class token."""
    patch = Conv(
        name="patch_embed",
        ifmap_h=224,
        ifmap_w=224,
        filter_h=16,
        filter_w=16,
        channels=3,
        num_filters=768,
        stride_h=16,
        stride_w=16,
        pad_h=0,
        pad_w=0,
        batch=batch,
        groups=1,
    )
    encoders = _stack(12, tokens=197, batch=batch, d_model=768, heads=12, d_ff=3072)
    return [patch, *encoders, Gemm(name="head", m=batch, n=1000, k=768)]


_BUILDERS: dict[str, Callable[..., list[Layer]]] = {
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "bert_base": bert_base,
    "gpt2": gpt2,
    "vit_b16": vit_b16,
}
# Learned position embeddings cap the sequence: 512 for BERT (Devlin et al. §A.2), 1024 for GPT-2 (§2.3).
_MAX_POSITIONS = {"bert_base": 512, "gpt2": 1024}
_SEQUENCE_MODELS = tuple(_MAX_POSITIONS)
NETWORKS: tuple[str, ...] = tuple(_BUILDERS)


_BY_PLAIN_NAME = {key.replace("_", ""): key for key in _BUILDERS}


def canonical_name(name: str) -> str:
    """The NETWORKS entry `name` spells, ignoring case and punctuation ("ResNet-50" -> "resnet50"); `name` itself
    when it spells none."""
    plain = "".join(ch for ch in name.lower() if ch.isalnum())
    return _BY_PLAIN_NAME.get(plain, name)


def get_network(name: str, *, batch: int = 1, seq_len: int | None = None) -> list[Layer]:
    """The layers of network `name` (one of NETWORKS; case and punctuation are ignored) for `batch` inputs.
    `seq_len` applies to bert_base and gpt2 only."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = canonical_name(name)
    if key not in _BUILDERS:
        raise ValueError(f"name: unknown network {name!r}; choose one of {', '.join(NETWORKS)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if seq_len is not None:
        if key not in _SEQUENCE_MODELS:
            raise ValueError(f"seq_len applies to {' and '.join(_SEQUENCE_MODELS)} only, not {key}")
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
        if seq_len > _MAX_POSITIONS[key]:
            raise ValueError(f"seq_len {seq_len} exceeds the {_MAX_POSITIONS[key]} learned positions of {key}")
    extra = {} if seq_len is None else {"seq_len": seq_len}
    try:
        return _BUILDERS[key](batch=batch, **extra)
    except ValueError as exc:
        # Too many layers, or a dimension past MAX_SIZE: name the arguments the caller gave.
        raise ValueError(f"{key} at batch={batch}, seq_len={seq_len}: {exc}") from None
