"""The trace text of `accelkit scalesim -s Y`: the C++ formatter (accelkit._C.format_rows, csrc/text_rows.cpp)
against np.savetxt and Python's %-format, and the traces' writer with and without it."""

from __future__ import annotations

import io
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from accelkit._native import available
from accelkit.sim.scalesim import traces
from accelkit.sim.scalesim.cli import main
from accelkit.sim.scalesim.memory import first_occurrence_prev

pytestmark = pytest.mark.skipif(not available(), reason="accelkit._C is not built")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Values that break digit loops and sign handling: int64's ends and their neighbours, powers of ten and their
# neighbours (digit-count changes), and the 2^53 / 10^16 edges of the float text.
EDGES = sorted(
    {INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, -1, 0, 1, 9, 10, 99, 100, 2**53, -(2**53), 2**53 + 1}
    | {s * (10**k + d) for k in range(1, 19) for d in (-1, 0, 1) for s in (1, -1)}
)
values = st.one_of(st.sampled_from(EDGES), st.integers(-1, 10**6), st.integers(INT64_MIN, INT64_MAX))


def python_text(lead, body, width, suffix):
    """The text from the definition: each value's %d, then `suffix`, joined by "," with "\\n" after each row."""
    rows = []
    for i in range(body.shape[0]):
        row = ([] if lead is None else [int(lead[i])]) + [int(v) for v in body[i]] + [1] * (width - body.shape[1])
        rows.append(",".join(f"{v}{suffix}" for v in row) + "\n")
    return "".join(rows).encode("ascii")


@st.composite
def matrices(draw):
    rows, cols = draw(st.integers(0, 9)), draw(st.sampled_from([0, 1, 1, 2, 3, 7]))
    flat = draw(st.lists(values, min_size=2 * rows * (cols + 1), max_size=2 * rows * (cols + 1)))
    base = np.asarray(flat, dtype=np.int64).reshape(2 * rows, cols + 1) if rows else np.zeros((0, cols + 1), np.int64)
    layout = draw(st.sampled_from(["contiguous", "strided", "transposed", "reversed"]))
    if layout == "contiguous":
        body = np.ascontiguousarray(base[:rows, :cols])
    elif layout == "strided":
        body = base[::2, :cols]
    elif layout == "transposed":
        body = np.asfortranarray(base[:rows, :cols])
    else:
        body = base[:rows, :cols][::-1, ::-1]
    lead = draw(st.sampled_from([None, "column", "strided"]))
    if lead == "column":
        lead = base[:rows, cols]
    elif lead == "strided":
        lead = base[::2, cols]
    width = cols + draw(st.integers(0, 3))
    return lead, body, width


@settings(max_examples=200)
@given(case=matrices(), suffix=st.booleans())
def test_format_rows_is_the_percent_d_text(case, suffix):
    lead, body, width = case
    native = traces.native().format_rows(lead, body, width=width, float_suffix=suffix)
    assert native == python_text(lead, body, width, ".0" if suffix else "")


@settings(max_examples=50)
@given(case=matrices())
def test_format_rows_is_savetxt(case):
    """Without lead or padding the text is np.savetxt(fmt='%d', delimiter=',')'s, byte for byte."""
    _, body, _ = case
    peer = io.BytesIO()
    np.savetxt(peer, body, fmt="%d", delimiter=",")
    assert traces.native().format_rows(None, body) == peer.getvalue()


@settings(max_examples=50)
@given(case=matrices(), floats=st.booleans())
def test_native_and_python_writers_agree(case, floats):
    """The traces' writer gives the same bytes with the C++ formatter and without it; with floats, values from
    2^53 up take the float text (exponent form from 10^16), as np.savetxt of the float matrix writes it."""
    lead, body, width = case
    lead = np.arange(body.shape[0], dtype=np.int64) - 3 if lead is None else lead
    native, python = io.BytesIO(), io.BytesIO()
    traces._write_text(native, lead, body, width=width, floats=floats)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(traces, "available", lambda: False)
        traces._write_text(python, lead, body, width=width, floats=floats)
    assert native.getvalue() == python.getvalue()
    if floats:
        peer = io.BytesIO()
        pad = np.ones((body.shape[0], width - body.shape[1]))
        np.savetxt(peer, np.column_stack((lead.astype(float), body.astype(float), pad)), fmt="%s", delimiter=",")
        assert native.getvalue() == peer.getvalue()


def test_format_rows_in_blocks_of_rows(monkeypatch):
    """Many rows are formatted in several calls; the text is the same as one call's."""
    monkeypatch.setattr(traces, "_VALUES_PER_WRITE", 64)
    rng = np.random.default_rng(0)
    body = rng.integers(-1, 10**9, size=(1000, 5))
    lead = np.arange(1000, dtype=np.int64)
    out = io.BytesIO()
    traces._write_text(out, lead, body, width=7, floats=True)
    assert out.getvalue() == traces.native().format_rows(lead, body, width=7, float_suffix=True)
    assert out.getvalue().count(b"\n") == 1000


@pytest.mark.parametrize(
    ("lead", "body", "width", "match"),
    [
        (None, np.zeros((2, 3), dtype=np.int32), -1, "body must have dtype int64"),
        (None, np.zeros(3, dtype=np.int64), -1, "body must be 2-D"),
        (None, np.zeros((2, 3)), -1, "body must have dtype int64"),
        (None, [[1, 2]], -1, "body must be a numpy array"),
        (None, np.zeros((2, 3), dtype=np.int64), 2, "width must be at least body's 3 columns"),
        (np.zeros(3, dtype=np.int64), np.zeros((2, 3), dtype=np.int64), -1, "lead must have one entry per row"),
        (np.zeros(2, dtype=np.int32), np.zeros((2, 3), dtype=np.int64), -1, "lead must have dtype int64"),
        (np.zeros((2, 1), dtype=np.int64), np.zeros((2, 3), dtype=np.int64), -1, "lead must be 1-D"),
        (None, np.zeros((2, 3), dtype=">i8"), -1, "body must be in native byte order"),
        (None, np.zeros((1, 2), dtype=np.int64), 2**62, "too large"),
    ],
)
def test_format_rows_rejects_bad_input(lead, body, width, match):
    with pytest.raises(ValueError, match=match):
        traces.native().format_rows(lead, body, width=width)


def test_format_rows_rejects_unaligned_and_odd_strides():
    raw = np.zeros(8 * 7 + 1, dtype=np.uint8)
    unaligned = raw[1:].view(np.int64).reshape(7, 1)
    with pytest.raises(ValueError, match="body must be aligned"):
        traces.native().format_rows(None, unaligned)
    odd = np.lib.stride_tricks.as_strided(np.zeros(16, dtype=np.int64), shape=(3, 2), strides=(12, 8))
    with pytest.raises(ValueError, match="strides must be multiples"):
        traces.native().format_rows(None, odd)


@settings(max_examples=100)
@given(
    data=st.data(),
    size=st.sampled_from([1, 2, 5, 8, 13, 100, 655]),
    span=st.sampled_from(["dense", "sparse", "huge", "negative"]),
)
def test_set_orders_are_python_set_orders(data, size, span):
    """CALC prefetch groups come out in list(set(group)) order, from C++ and from NumPy: by slot when no two words
    share a table slot, through a Python set otherwise (dense ranges, sparse ones that collide, hashes past
    2^61 - 1, negatives)."""
    count = data.draw(st.integers(0, 3 * size))
    top = {"dense": count + 2, "sparse": 50 * count + 10, "huge": 2**63 - 1, "negative": count + 2}[span]
    bottom = -5 if span == "negative" else 0
    words = data.draw(st.lists(st.integers(bottom, top), min_size=count, max_size=count, unique=True))
    expected = [w for i in range(0, len(words), size) for w in list(set(words[i : i + size]))]
    assert traces._set_orders(np.asarray(words, dtype=np.int64), size).tolist() == expected
    with pytest.MonkeyPatch.context() as m:
        m.setattr(traces, "available", lambda: False)
        assert traces._set_orders(np.asarray(words, dtype=np.int64), size).tolist() == expected


@settings(max_examples=100)
@given(data=st.data(), span=st.sampled_from([1, 3, 50, 10**4, 2**62]))
def test_calc_new_words_are_first_occurrences_per_segment(data, span):
    """accelkit._C.calc_new_words against the NumPy path: requests whose address is new within their segment, in
    order; None (the caller sorts instead) when the addresses span too many words for its stamp table."""
    n = data.draw(st.integers(0, 60))
    base = data.draw(st.sampled_from([0, -(2**63), 2**63 - span - 1, 12345]))
    addr = np.asarray(data.draw(st.lists(st.integers(0, span - 1), min_size=n, max_size=n)), dtype=np.int64) + base
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=5)))
    bounds = np.asarray([0, *cuts, n], dtype=np.int64)
    found = traces.native().calc_new_words(addr, bounds)
    spread = int(addr.max()) - int(addr.min()) if n else 0
    assert (found is None) == (spread >= max(4 * n, 2**20))
    if found is None:
        return
    words, ends = found
    prev = first_occurrence_prev(addr)
    expected = [addr[lo:hi][prev[lo:hi] < lo] for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
    assert ends.tolist() == np.cumsum([e.size for e in expected]).tolist()
    assert words.tolist() == [int(w) for e in expected for w in e]


@pytest.mark.parametrize(
    ("addr", "bounds", "match"),
    [
        (np.zeros(3, dtype=np.int64), np.array([0, 2], dtype=np.int64), "bounds must run from 0 to addr's 3"),
        (np.zeros(3, dtype=np.int64), np.array([0, 2, 1, 3], dtype=np.int64), "bounds must never decrease"),
        (np.zeros(3, dtype=np.int64), np.zeros(0, dtype=np.int64), "bounds must have at least one entry"),
        (np.zeros(3, dtype=np.int32), np.array([0, 3], dtype=np.int64), "addr must have dtype int64"),
        (np.zeros(6, dtype=np.int64)[::2], np.array([0, 3], dtype=np.int64), "addr must be C-contiguous"),
        (np.zeros((3, 1), dtype=np.int64), np.array([0, 3], dtype=np.int64), "addr must be 1-D"),
        (np.zeros(3, dtype=np.int64), np.array([0.0, 3.0]), "bounds must have dtype int64"),
    ],
)
def test_calc_new_words_rejects_bad_input(addr, bounds, match):
    with pytest.raises(ValueError, match=match):
        traces.native().calc_new_words(addr, bounds)


@pytest.mark.parametrize("name", ["mnk_eyeriss_os_calc", "inception_scale_ws_user", "inception_google_is_calc"])
def test_traces_without_the_extension_are_the_same_bytes(name, tmp_path):
    """Every trace file of a suite case (CALC and USER, GEMM and conv), written with the C++ helpers and with the
    Python fallbacks alone, is the same file."""
    golden = Path(__file__).resolve().parent / "golden_suite" / name
    gemm = (golden / "topology.csv").read_text().startswith("Layer, M, N, K")
    argv = ["-c", str(golden / "scale.cfg"), "-t", str(golden / "topology.csv"), "-l", str(golden / "layout.csv")]
    argv += ["-i", "gemm" if gemm else "conv", "-s", "Y"]
    assert main([*argv, "-p", str(tmp_path / "native")]) == 0
    with pytest.MonkeyPatch.context() as m:
        m.setattr(traces, "available", lambda: False)
        assert main([*argv, "-p", str(tmp_path / "python")]) == 0
    files = sorted(p.relative_to(tmp_path / "native") for p in (tmp_path / "native").rglob("*_TRACE.csv"))
    assert len(files) == 6
    for rel in files:
        assert (tmp_path / "native" / rel).read_bytes() == (tmp_path / "python" / rel).read_bytes(), rel


@pytest.mark.parametrize(
    ("size", "slots_full", "slots_last", "match"),
    [
        (0, 8, 8, "size must be at least 1"),
        (5, 12, 8, "slots_full must be a power of two"),
        (5, 8, 0, "slots_last must be a power of two"),
        (5, 8, 2**33, "slots_last must be a power of two up to 2\\^32"),
    ],
)
def test_calc_set_orders_rejects_bad_input(size, slots_full, slots_last, match):
    with pytest.raises(ValueError, match=match):
        traces.native().calc_set_orders(np.arange(7, dtype=np.int64), size, slots_full, slots_last)
    with pytest.raises(ValueError, match="words must be C-contiguous"):
        traces.native().calc_set_orders(np.arange(14, dtype=np.int64)[::2], 5, 8, 8)
