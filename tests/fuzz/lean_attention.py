"""Fuzz targets for the decode-attention ops: accelkit.ops.lean_attention and accelkit.ops.split_kv_attention.

A case draws a mostly consistent decode problem (q [B, H_q, D] or [B, T_q, H_q, D], a contiguous or paged cache,
cache_seqlens, block_table) in any dtype, layout and device (CPU or meta), then breaks one thing at times: a wrong
dtype, rank or size, a length past the cache, a page past num_blocks, a wrongly typed knob. A successful call must
return the output shaped and typed like q (and a float32 LSE); small all-finite CPU cases must match the float64
oracle (kernels/attention/reference.decode_attention) within the one tolerance table. Anything invalid may raise
only ValueError or TypeError naming an argument.
"""

from __future__ import annotations

import hypothesis.strategies as st
import torch

from accelkit import ops
from accelkit.kernels._common.tolerance import outside
from accelkit.kernels.attention import reference as ref
from fuzz.core import Case, Target
from fuzz.values import FLOATS, LAYOUTS, TensorSpec, wrong_values

NAMES = ("q", "k_cache", "v_cache", "cache_seqlens", "block_table", "scale", "num_programs", "num_splits", "T_q")
_CHECK_ELEMENTS = 2**14


def _spec(draw, dtype, shape, device) -> TensorSpec:
    return TensorSpec(
        dtype=dtype,
        shape=tuple(shape),
        layout=draw(st.sampled_from(LAYOUTS)),
        device=device,
        specials=draw(st.integers(0, 7)) == 0,
        seed=draw(st.integers(0, 2**16)),
    )


def _maybe(draw, good, *bad):
    """Usually `good`; one draw in eight one of `bad`."""
    return draw(st.sampled_from(bad)) if bad and draw(st.integers(0, 7)) == 0 else good


@st.composite
def _decode_cases(draw, fn_name: str, knob: str) -> Case:
    dtype = _maybe(draw, draw(st.sampled_from(FLOATS)), torch.int32, torch.complex64)
    device = draw(st.sampled_from(("cpu", "cpu", "cpu", "meta")))
    batch, t_q = draw(st.sampled_from((0, 1, 2, 3))), draw(st.sampled_from((1, 2, 5, 16, 17)))
    h_kv = draw(st.sampled_from((1, 2, 3)))
    h_q = h_kv * draw(st.sampled_from((1, 2, 4))) + _maybe(draw, 0, 1)
    d = draw(st.sampled_from((1, 5, 16, 64, 128, 256, 257, 0)))
    one_token = draw(st.booleans())
    q_shape = (batch, h_q, d) if one_token else (batch, t_q, h_q, d)
    q_shape = _maybe(draw, q_shape, (batch, d), (1, batch, t_q, h_q, d))
    paged = draw(st.booleans())
    page = draw(st.sampled_from((1, 3, 16)))
    t_cache = draw(st.sampled_from((0, 1, 7, 33, 100)))
    num_blocks = draw(st.sampled_from((1, 4, 9)))
    cache_shape = (num_blocks, page, h_kv, d) if paged else (batch, t_cache, h_kv, d)
    v_shape = _maybe(draw, cache_shape, (*cache_shape[:-1], d + 1))
    cache_dtype = _maybe(draw, dtype, torch.float64, torch.float16)
    capacity = (draw(st.sampled_from((1, 2, 4))) * page) if paged else t_cache
    lengths = [draw(st.integers(0, capacity)) for _ in range(batch)]
    lengths = _maybe(draw, lengths, [n + capacity + 1 for n in lengths], [-1] * batch)
    seq_dtype = _maybe(draw, torch.int32, torch.int64, torch.float32)
    table = None
    if paged:
        per_seq = max(1, capacity // page)
        table = draw(st.lists(st.integers(0, num_blocks - 1), min_size=batch * per_seq, max_size=batch * per_seq))
        table = _maybe(draw, table, [num_blocks] * len(table), [-1] * len(table))
        table_shape = (batch, per_seq)
    q_spec = _spec(draw, dtype, q_shape, device)
    k_spec = _spec(draw, cache_dtype, cache_shape, _maybe(draw, device, "meta"))
    v_spec = _spec(draw, cache_dtype, v_shape, device)
    kwargs = {}
    if draw(st.booleans()):
        kwargs[knob] = draw(st.one_of(st.sampled_from((None, 1, 2, 7, 300)), wrong_values()))
    if draw(st.integers(0, 3)) == 0:
        kwargs["scale"] = draw(st.one_of(st.sampled_from((None, 0.5, 1e-3)), wrong_values()))
    return_lse = draw(st.booleans())
    fn = getattr(ops, fn_name)

    def call(_):
        q, k, v = q_spec.build(), k_spec.build(), v_spec.build()
        seqlens = torch.tensor(lengths, dtype=seq_dtype, device=device if device == "cpu" else "cpu")
        if device == "meta":
            seqlens = seqlens.to("meta")
        block_table = None
        if table is not None:
            block_table = torch.tensor(table, dtype=torch.int32).view(table_shape).to(device)
        result = fn(q, k, v, seqlens, block_table=block_table, return_lse=return_lse, **kwargs)
        return q, k, v, seqlens, block_table, result

    def check(out) -> None:
        q, k, v, seqlens, block_table, result = out
        out_t, lse = result if return_lse else (result, None)
        assert isinstance(out_t, torch.Tensor), f"result is a {type(out_t).__name__}"
        assert out_t.shape == q.shape and out_t.dtype == q.dtype and out_t.device == q.device, (
            f"output {out_t.dtype}{list(out_t.shape)} on {out_t.device} for q {q.dtype}{list(q.shape)}"
        )
        lse_shape = (q.shape[0], q.shape[1]) if q.dim() == 3 else (q.shape[0], q.shape[2], q.shape[1])
        if lse is not None:
            assert lse.shape == lse_shape and lse.dtype == torch.float32, f"lse {lse.dtype}{list(lse.shape)}"
        small = q.device.type == "cpu" and k.numel() + q.numel() <= _CHECK_ELEMENTS
        if small and all(bool(torch.isfinite(x.double()).all()) for x in (q, k, v)):
            table_np = None if block_table is None else block_table.numpy()
            want, _ = ref.decode_attention(
                q.double().numpy(), k.double().numpy(), v.double().numpy(), seqlens.numpy(), block_table=table_np,
                scale=kwargs.get("scale"),
            )  # fmt: skip
            bad = outside(want, out_t.double().numpy(), q.dtype)
            assert not bad.any(), f"{int(bad.sum())} of {bad.size} outputs outside the tolerance of {q.dtype}"

    describe = (
        f"{fn_name}(q={q_spec!r}, k_cache={k_spec!r}, v_cache={v_spec!r}, cache_seqlens={lengths!r} "
        f"{seq_dtype}, block_table={table!r}, return_lse={return_lse}, {kwargs!r})"
    )
    return Case(describe, call, check, names=NAMES)


TARGETS = [
    Target("ops.lean_attention", _decode_cases("lean_attention", "num_programs")),
    Target("ops.split_kv_attention", _decode_cases("split_kv_attention", "num_splits")),
]
