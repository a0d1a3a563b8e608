"""The compat engine's shortcuts agree with its word-level replay; descriptions validate; folds partition the GEMM."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accelkit.sim.engine import fold_schedule, simulate_layer
from accelkit.sim.hardware import EnergyTable, Hardware
from accelkit.sim.scalesim.engine import distinct_ifmap_words, simulate_compat
from accelkit.sim.scalesim.streams import (
    CompatLayer,
    RowCounts,
    _diagonal_rollout,
    fold_outputs,
    geometry,
    ifmap_addr,
    unique_im2col,
)
from accelkit.sim.scalesim.traces import _write_float_rows, _write_rows
from accelkit.sim.workloads import Conv, Gemm

dims = st.integers(1, 40)
arrays = st.integers(2, 9)


@given(
    m=dims,
    n=dims,
    k=dims,
    rows=arrays,
    cols=arrays,
    dataflow=st.sampled_from(["os", "ws", "is"]),
    kib=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2)),
)
def test_fold_level_calc_read_equals_word_level(m, n, k, rows, cols, dataflow, kib):
    """The per-fold CALC read replay (used for GEMM-like layers) must equal the word-by-word replay."""
    hw = Hardware(rows, cols, dataflow, *(x * 1024 for x in kib))
    layer = Gemm("g", m, n, k)
    assert simulate_compat(layer, hw) == simulate_compat(layer, hw, word_level=True)


@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    c=st.integers(1, 3),
    f=st.integers(1, 6),
    s=st.integers(1, 3),
    rows=arrays,
    dataflow=st.sampled_from(["os", "ws", "is"]),
)
def test_fold_level_replay_on_unique_convs(h, w, c, f, s, rows, dataflow):
    """1x1 and stride >= filter convolutions also take the per-fold path; it must agree with the word level."""
    layer = CompatLayer("c", h, w, min(s, h), min(s, w), c, f, s, s)
    hw = Hardware(rows, rows + 1, dataflow, 1024, 1024, 1024)
    if unique_im2col(layer):
        assert simulate_compat(layer, hw) == simulate_compat(layer, hw, word_level=True)


@given(
    h=st.integers(2, 14),
    w=st.integers(2, 14),
    c=st.integers(1, 4),
    r=st.integers(1, 5),
    f=st.integers(1, 6),
    s=st.integers(1, 3),
    rows=arrays,
    dataflow=st.sampled_from(["os", "ws", "is"]),
    kib=st.integers(1, 2),
)
def test_calc_fast_paths_on_any_conv_equal_word_level(h, w, c, r, f, s, rows, dataflow, kib):
    """Overlapping windows and strides that leave -1 im2col entries: the filter per fold and the IFMAP in closed
    form (all its words within one read-buffer segment) or word by word must equal the word-level replay."""
    layer = CompatLayer("c", h, w, min(r, h), min(r + 1, w), c, f, s, s)
    hw = Hardware(rows, rows + 2, dataflow, kib * 1024, 1024, 1024)
    assert simulate_compat(layer, hw) == simulate_compat(layer, hw, word_level=True)


@given(h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 3), r=st.integers(1, 5), s=st.integers(1, 4))
def test_distinct_ifmap_words_counts_the_im2col_addresses(h, w, c, r, s):
    layer = CompatLayer("c", h, w, min(r, h), min(r, w), c, 1, s, s)
    p, j = np.meshgrid(np.arange(layer.m), np.arange(layer.k), indexing="ij")
    addr = ifmap_addr(layer, p.ravel(), j.ravel(), 0)
    assert distinct_ifmap_words(layer) == np.unique(addr[addr >= 0]).size


def test_fold_level_path_is_exercised_with_flushes():
    """A layer big enough to flush the 1 KiB read buffers many times goes through the per-fold path."""
    hw = Hardware(8, 8, "ws", 1024, 1024, 1024)
    layer = Gemm("g", 300, 40, 70)
    fast, slow = simulate_compat(layer, hw), simulate_compat(layer, hw, word_level=True)
    assert fast == slow
    assert fast.ifmap_dram_reads > 300 * 70


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("mode", ["native", "compat"])
def test_fold_schedule_partitions_the_gemm(dataflow, mode):
    m, n, k = 23, 17, 30
    hw = Hardware(8, 5, dataflow)
    covered = np.zeros((m, n, k), dtype=np.int64)
    folds = list(fold_schedule(m, n, k, hw, mode=mode))
    for f in folds:
        covered[f.m0 : f.m1, f.n0 : f.n1, f.k0 : f.k1] += 1
    assert (covered == 1).all()
    stats = simulate_layer(Gemm("g", m, n, k), hw, mode=mode)
    assert sum(f.cycles for f in folds) == stats.compute_cycles + (1 if mode == "compat" else 0)
    assert [f.index for f in folds] == list(range(len(folds)))


def test_os_fold_cycles_compat_vs_native():
    hw = Hardware(8, 4, "os")
    native = next(fold_schedule(10, 10, 7, hw)).cycles
    compat = next(fold_schedule(10, 10, 7, hw, mode="compat")).cycles
    assert (native, compat) == (2 * 8 + 4 + 7 - 2, 8 + 4 + 7 - 2)


@pytest.mark.parametrize(
    ("kwargs", "field", "error"),
    [
        (dict(rows=0), "rows", ValueError),
        (dict(cols=2.5), "cols", TypeError),
        (dict(cols=True), "cols", TypeError),
        (dict(rows=2**63), "rows", ValueError),
        (dict(rows=10**5000), "rows", ValueError),
        (dict(dataflow="rs"), "dataflow", ValueError),
        (dict(dataflow=None), "dataflow", ValueError),
        (dict(ifmap_sram_bytes=-1), "ifmap_sram_bytes", ValueError),
        (dict(dram_bw_words_per_cycle=0.0), "dram_bw_words_per_cycle", ValueError),
        (dict(dram_bw_words_per_cycle=1e-9), "dram_bw_words_per_cycle", ValueError),
        (dict(dram_bw_words_per_cycle="8"), "dram_bw_words_per_cycle", TypeError),
        (dict(ifmap_dram_bw_words_per_cycle=4.0), "dram_bw_words_per_cycle", ValueError),
        (dict(clock_mhz=float("nan")), "clock_mhz", ValueError),
        (dict(clock_mhz=1e-9), "clock_mhz", ValueError),
        (dict(filter_offset=-5), "filter_offset", ValueError),
        (dict(filter_offset=5.0), "filter_offset", TypeError),
        (dict(run_name=" "), "run_name", ValueError),
        (dict(energy=None), "energy", TypeError),
    ],
)
def test_hardware_validation_names_the_field(kwargs, field, error):
    base = dict(rows=4, cols=4)
    with pytest.raises(error, match=field):
        Hardware(**{**base, **kwargs})


def test_numpy_numbers_are_accepted_as_plain_python_numbers():
    hw = Hardware(np.int64(4), np.int32(8), dram_bw_words_per_cycle=np.float32(2.5))
    assert type(hw.rows) is int and type(hw.cols) is int and type(hw.dram_bw_words_per_cycle) is float
    gemm = Gemm("g", np.int64(2**40), np.uint32(7), np.int8(3))
    assert type(gemm.m) is int and gemm.macs == 2**40 * 21


@pytest.mark.parametrize(
    ("make", "field", "error"),
    [
        (lambda: Gemm(1e7, 5, 5, 5), "Gemm.name", TypeError),
        (lambda: Gemm("g", 1e7, 5, 5), "Gemm.m", TypeError),
        (lambda: Gemm("g", 5, 5, 2**63), "Gemm.k", ValueError),
        (lambda: Conv("c", 8, 8, 3, 3, 1, 1, stride_w=1.0), "Conv.stride_w", TypeError),
        (lambda: Conv("c", 8, 8, 3, 3, 1, 1, pad_h=-1), "Conv.pad_h", ValueError),
        (lambda: EnergyTable(mac_pj=1e300), "EnergyTable.mac_pj", ValueError),
    ],
)
def test_workload_validation_names_the_field(make, field, error):
    with pytest.raises(error, match=field):
        make()


def test_energy_and_workload_validation():
    with pytest.raises(ValueError, match="dram_pj_per_word"):
        EnergyTable(dram_pj_per_word=0)
    with pytest.raises(ValueError, match="groups"):
        Conv("c", 8, 8, 3, 3, 6, 4, groups=4)
    with pytest.raises(ValueError, match="filter_h"):
        Conv("c", 2, 8, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="k"):
        Gemm("g", 1, 1, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Hardware(4, 4).rows = 8


def test_conv_gemm_view():
    conv = Conv("c", 14, 12, 3, 3, 8, 16, stride_h=2, stride_w=1, pad_h=1, pad_w=1, batch=2, groups=4)
    assert (conv.ofmap_h, conv.ofmap_w) == (7, 12)
    assert (conv.gemm_m, conv.gemm_k, conv.gemm_n) == (2 * 7 * 12, 3 * 3 * 2, 4)
    assert conv.macs == 4 * conv.gemm_m * conv.gemm_k * conv.gemm_n
    assert Conv("dw", 8, 8, 3, 3, 5, 5, groups=5).depthwise


def test_compat_rejects_what_scalesim_cannot_express():
    hw = Hardware(4, 4, "ws")
    for layer in (
        Conv("c", 8, 8, 3, 3, 2, 2, batch=2),
        Conv("c", 8, 8, 3, 3, 2, 2, pad_h=1),
        Conv("c", 8, 8, 3, 3, 2, 2, groups=2),
    ):
        with pytest.raises(ValueError, match="compat mode"):
            simulate_layer(layer, hw, mode="compat")
    with pytest.raises(ValueError, match="whole-number"):
        simulate_layer(Gemm("g", 8, 8, 8), Hardware(4, 4, "ws", dram_bw_words_per_cycle=2.5), mode="compat")
    with pytest.raises(ValueError, match="accumulate_on_chip"):
        simulate_layer(Gemm("g", 8, 8, 8), hw, mode="compat", accumulate_on_chip=True)


@given(m=dims, n=dims, k=dims, rows=arrays, cols=arrays, dataflow=st.sampled_from(["os", "ws", "is"]))
def test_row_counts_match_the_dense_ofmap_demand(m, n, k, rows, cols, dataflow):
    """RowCounts (per fold shape) answers like the dense per-row OFMAP write counts built from every write."""
    geo = geometry(CompatLayer("g", m, k, 1, k, 1, n, 1, 1), dataflow, rows, cols)
    per = geo.rows_per_fold
    written = np.concatenate([fold_outputs(geo, f, 0)[1] + f * per for f in range(geo.grid.count)])
    dense = np.bincount(written, minlength=geo.total_rows)
    cum = np.cumsum(dense)
    counts = RowCounts(geo)
    assert [counts.count(i) for i in range(geo.total_rows)] == dense.tolist()
    assert [counts.cum(i) for i in range(-1, geo.total_rows)] == [0, *cum.tolist()]
    for value in range(0, int(cum[-1]) + 2, max(1, int(cum[-1]) // 13)):
        for side in ("left", "right"):
            assert counts.search(value, side) == int(np.searchsorted(cum, value, side=side))
    nonzero = np.flatnonzero(dense)
    for i in range(0, geo.total_rows + 1, max(1, geo.total_rows // 17)):
        after = nonzero[nonzero >= i]
        assert counts.next_write(i) == (int(after[0]) if after.size else geo.total_rows)
    assert counts.last_write() == int(nonzero[-1])


@pytest.mark.parametrize(
    ("layer", "hw", "what"),
    [
        (Gemm("big", 10**7, 10**3, 10**3), Hardware(128, 128), "cycles per fold"),
        (Gemm("big", 2**40, 2**20, 2**20), Hardware(128, 128), "folds"),
        (Gemm("big", 10**4, 10**4, 10**4), Hardware(128, 128, dram_bw_words_per_cycle=10), "SRAM reads"),
        (Gemm("big", 8, 8, 8), Hardware(4, 4, ofmap_offset=2**62), "ofmap_offset"),
    ],
)
def test_compat_refuses_layers_it_cannot_hold_in_memory(layer, hw, what):
    with pytest.raises(ValueError, match=f"compat mode: .*'big'.*{what}"):
        simulate_layer(layer, hw, mode="compat")
    assert simulate_layer(layer, hw).total_cycles > 0


def test_compat_workload_is_held_to_its_demand_row_budget(monkeypatch):
    """Layers that each fit can still add up to a run of minutes: the budget is over the distinct layers."""
    from accelkit.sim import simulate
    from accelkit.sim.scalesim import engine as compat_engine

    hw = Hardware(rows=4, cols=4, dataflow="os")
    layers = [Gemm(f"g{i}", 16 + i, 16, 16) for i in range(4)]
    rows = [compat_engine.demand_rows(layer, hw) for layer in layers]
    monkeypatch.setattr(compat_engine, "COMPAT_MAX_DEMAND_ROWS", sum(rows) - 1)
    with pytest.raises(ValueError, match="demand rows.*mode='native'"):
        simulate(layers, hw, mode="compat")
    # Repeats of one shape are simulated once, so they count once.
    monkeypatch.setattr(compat_engine, "COMPAT_MAX_DEMAND_ROWS", rows[0])
    report = simulate([layers[0], Gemm("again", 16, 16, 16)], hw, mode="compat")
    assert [r.name for r in report.layers] == ["g0", "again"]


@given(m=st.integers(1, 12), n=st.integers(1, 12))
def test_diagonal_rollout_is_anti_diagonals_bottom_up(m, n):
    """SCALE-Sim's order: anti-diagonal by anti-diagonal, each from its bottom row upwards (a sort by (r + c, -r))."""
    mat = np.arange(m * n).reshape(m, n) * 7 + 3
    rr, cc = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    expected = mat.ravel()[np.lexsort((-rr.ravel(), (rr + cc).ravel()))]
    assert (_diagonal_rollout(mat) == expected).all()


@pytest.mark.parametrize("big", [False, True])
def test_trace_rows_are_savetxt_bytes(big, tmp_path):
    """Traces format rows in blocks; the text must be np.savetxt's, integers and floats (10^16 and up in exponent
    form, as str() writes them) alike."""
    rng = np.random.default_rng(0)
    body = rng.integers(-1, 10**7, size=(70_000, 3)) * (10**11 if big else 1)
    cycles = np.arange(body.shape[0]) - 5
    with open(tmp_path / "ours.csv", "wb") as fh:
        _write_float_rows(fh, cycles, body, 5)
    with open(tmp_path / "ints.csv", "wb") as fh:
        _write_rows(fh, body, "%i")
    pad = np.ones((body.shape[0], 2))
    expected = np.column_stack((cycles.astype(float), body.astype(float), pad))
    np.savetxt(tmp_path / "peer.csv", expected, fmt="%s", delimiter=",")
    np.savetxt(tmp_path / "peer_ints.csv", body, fmt="%i", delimiter=",")
    assert (tmp_path / "ours.csv").read_text() == (tmp_path / "peer.csv").read_text()
    assert (tmp_path / "ints.csv").read_text() == (tmp_path / "peer_ints.csv").read_text()
