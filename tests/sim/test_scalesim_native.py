"""The C++ read buffers of accelkit._C (csrc/scalesim.cpp) against their NumPy versions, request for request, and
the NumPy fallback of the whole `accelkit scalesim` run against scalesim's reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelkit._native import available, native
from accelkit.sim.hardware import Hardware
from accelkit.sim.scalesim import engine, memory
from accelkit.sim.scalesim.engine import _calc_read_folds, simulate_compat
from accelkit.sim.scalesim.memory import all_resident, user_read, user_read_tiles
from accelkit.sim.scalesim.streams import (
    CompatLayer,
    Offsets,
    demand_stream,
    demand_tiles,
    dense_windows,
    geometry,
    prefetch_counts,
    prefetch_sequence,
    unique_im2col,
)

pytestmark = pytest.mark.skipif(not available(), reason="accelkit._C is not built")

layers = st.builds(
    CompatLayer,
    st.just("l"),
    st.integers(1, 16),
    st.integers(1, 16),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 9),
    st.integers(1, 3),
    st.integers(1, 3),
).filter(lambda lay: lay.filter_h <= lay.ifmap_h and lay.filter_w <= lay.ifmap_w)
OFFS = Offsets(0, 10_000_000, 20_000_000)


@settings(max_examples=60, deadline=None)
@given(
    layer=layers,
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
    dataflow=st.sampled_from(["os", "ws", "is"]),
    words=st.integers(100, 260),
    bw=st.integers(1, 12),
    operand=st.sampled_from(["ifmap", "filter"]),
)
def test_user_read_native_equals_numpy(layer, rows, cols, dataflow, words, bw, operand):
    """Every prefetch row, in order, from the whole stream and from its tiles; or the same ValueError."""
    geo = geometry(layer, dataflow, rows, cols)
    addr, row = demand_stream(geo, operand, OFFS)
    seq, seq_len = prefetch_sequence(geo, operand, OFFS)
    try:
        want = user_read(addr, row, seq, seq_len, words, bw, use_native=False)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)):
            user_read(addr, row, seq, seq_len, words, bw, use_native=True)
        return
    for got in (
        user_read(addr, row, seq, seq_len, words, bw, use_native=True),
        user_read_tiles(demand_tiles(geo, operand, OFFS), seq, seq_len, words, bw),
    ):
        np.testing.assert_array_equal(got.event_rows, want.event_rows)
        assert (got.first_lines, got.lines_per_fetch, got.bw) == (want.first_lines, want.lines_per_fetch, want.bw)


@settings(max_examples=60, deadline=None)
@given(layer=layers, rows=st.integers(1, 6), dataflow=st.sampled_from(["os", "ws", "is"]), words=st.integers(100, 300))
def test_calc_read_folds_native_equals_numpy(layer, rows, dataflow, words):
    """The CALC IFMAP buffer of overlapping convs: same flush rows, DRAM words and tail."""
    geo = geometry(layer, dataflow, rows, rows + 1)
    if not demand_stream(geo, "ifmap", OFFS)[0].size:
        return
    want = _calc_read_folds(geo, OFFS, words, use_native=False)
    got = _calc_read_folds(geo, OFFS, words, use_native=True)
    np.testing.assert_array_equal(got.flush_rows, want.flush_rows)
    assert (got.dram_reads, got.tail_uniques, got.set_words) == (want.dram_reads, want.tail_uniques, want.set_words)


def test_calc_read_folds_flushes_many_times():
    """A test that can fail: the layer's IFMAP (3 x 40 x 40 words, 3x3 windows) flushes a 100-word buffer often."""
    geo = geometry(CompatLayer("c", 40, 40, 3, 3, 3, 8, 1, 1), "ws", 8, 8)
    got = _calc_read_folds(geo, OFFS, 100, use_native=True)
    want = _calc_read_folds(geo, OFFS, 100, use_native=False)
    assert got.flush_rows.size > 50
    np.testing.assert_array_equal(got.flush_rows, want.flush_rows)


@settings(max_examples=40, deadline=None)
@given(
    layer=layers,
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
    dataflow=st.sampled_from(["os", "ws", "is"]),
    operand=st.sampled_from(["ifmap", "filter"]),
)
def test_prefetch_counts_match_the_sequence(layer, rows, cols, dataflow, operand):
    geo = geometry(layer, dataflow, rows, cols)
    seq, seq_len = prefetch_sequence(geo, operand, OFFS)
    counts = prefetch_counts(geo, operand)
    if operand == "ifmap" and not dense_windows(layer):
        assert counts is None
    else:
        assert counts == (seq.size, seq_len)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize(
    ("calc", "layer", "sram_bytes"),
    [
        (True, CompatLayer("c", 23, 19, 5, 3, 4, 9, 2, 1), (300, 400, 200)),
        (False, CompatLayer("c", 23, 19, 5, 3, 4, 9, 2, 1), (300, 400, 200)),
        # Dense windows and SRAMs that hold every operand: the USER buffers never miss.
        (False, CompatLayer("c", 21, 19, 5, 3, 4, 9, 2, 2), (60_000, 60_000, 300)),
    ],
)
def test_reports_equal_without_the_extension(monkeypatch, dataflow, calc, layer, sram_bytes):
    """simulate_compat with the NumPy fallbacks (as without a build) gives the same report row."""
    assert not unique_im2col(layer)
    bw = None if calc else 4
    hw = Hardware(7, 5, dataflow, *sram_bytes, dram_bw_words_per_cycle=bw)
    hw = (
        Hardware(
            7,
            5,
            dataflow,
            *sram_bytes,
            dram_bw_words_per_cycle=bw,
            ifmap_dram_bw_words_per_cycle=bw,
            filter_dram_bw_words_per_cycle=bw,
        )
        if bw
        else hw
    )
    geo = geometry(layer, dataflow, 7, 5)
    fits = [all_resident(prefetch_counts(geo, op)[0], hw.sram_words(op)) for op in ("ifmap", "filter")]
    assert fits == [sram_bytes[0] > 10_000] * 2
    ours = simulate_compat(layer, hw)
    monkeypatch.setattr(engine, "available", lambda: False)
    monkeypatch.setattr(memory, "available", lambda: False)
    assert simulate_compat(layer, hw) == ours


def _tiles(addr, row=None, fold_tile=(0,), start=None):
    addr = np.asarray(addr, dtype=np.int64)
    row = np.arange(addr.size, dtype=np.int64) if row is None else row
    start = np.asarray([0, addr.size] if start is None else start, dtype=np.int64)
    return np.asarray(fold_tile, dtype=np.int64), start, addr, row


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fold_tile": (1,)}, "invalid arguments"),
        ({"fold_tile": (-1,)}, "invalid arguments"),
        ({"start": [0, 2]}, "invalid arguments"),
        ({"start": [1, 4]}, "invalid arguments"),
        ({"start": [0, 3, 1, 4]}, "invalid arguments"),
        ({"row": np.zeros(3, dtype=np.int64)}, "row must have 4 entries"),
        ({"row": np.zeros(4, dtype=np.int32)}, "row must have dtype int64"),
        ({"row": np.zeros((2, 2), dtype=np.int64)}, "row must be 1-D"),
    ],
)
def test_bindings_refuse_bad_streams(kwargs, error):
    args = _tiles([0, 1, 2, 3], **kwargs)
    seq = np.arange(200, dtype=np.int64)
    with pytest.raises(ValueError, match=error):
        native().scalesim_user_read(*args, 0, seq, 2, 50, 50)
    with pytest.raises(ValueError, match=error):
        native().scalesim_calc_read_folds(*args, 0, 10, 5)


def test_bindings_refuse_bad_buffers_and_addresses():
    args = _tiles([0, 1, 2, 300])
    seq = np.arange(200, dtype=np.int64)
    with pytest.raises(ValueError, match="never prefetched"):
        native().scalesim_user_read(*args, 0, seq, 2, 50, 50)
    with pytest.raises(ValueError, match="invalid arguments"):
        native().scalesim_calc_read_folds(*args, 0, 300, 5)
    good = _tiles([0, 1, 2, 3])
    for bad in ((0, 50, 50), (2, 120, 0), (2, 50, 60), (2, -1, 50)):
        with pytest.raises(ValueError, match="invalid arguments"):
            native().scalesim_user_read(*good, 0, seq, *bad)
    with pytest.raises(ValueError, match="invalid arguments"):
        native().scalesim_user_read(*good, 0, seq[:0], 2, 1, 0)
    with pytest.raises(ValueError, match="invalid arguments"):
        native().scalesim_calc_read_folds(*good, 0, 10, 0)
    with pytest.raises(ValueError, match="addr must be a numpy array"):
        native().scalesim_calc_read_folds(good[0], good[1], [0, 1, 2, 3], good[3], 0, 10, 5)


def test_never_prefetched_word_inside_the_range():
    """Word 5 lies between prefetched words but is never fetched: both paths refuse it, neither loops."""
    seq = np.asarray([w for w in range(300) if w != 5], dtype=np.int64)
    addr = np.asarray([0, 5], dtype=np.int64)
    row = np.arange(2, dtype=np.int64)
    for use_native in (False, True):
        with pytest.raises(ValueError, match="never prefetched"):
            user_read(addr, row, seq, seq.size, 200, 4, use_native=use_native)


def test_scalesim_command_loads_the_extension_but_never_torch(tmp_path):
    """A USER-mode suite case in a fresh process: the C++ read buffer is used, torch and triton are not imported,
    and the reports are scalesim's."""
    golden = Path(__file__).resolve().parent / "golden_suite" / "mnk_scale_ws_user"
    script = (
        "import sys\n"
        "from accelkit.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'triton'})\n"
        "print('LOADED', heavy, 'accelkit._C' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    files = ["-c", golden / "scale.cfg", "-t", golden / "topology.csv", "-l", golden / "layout.csv", "-p", tmp_path]
    argv = ["scalesim", *map(str, files), "-i", "gemm"]
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("LOADED [] True")
    for report in ("COMPUTE_REPORT", "BANDWIDTH_REPORT", "DETAILED_ACCESS_REPORT"):
        ours = (tmp_path / "mnk_scale_ws_user" / f"{report}.csv").read_bytes()
        assert ours == (golden / f"{report}.csv").read_bytes()
