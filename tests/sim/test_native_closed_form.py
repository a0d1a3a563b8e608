"""Native mode in closed form: the fold classes equal a fold-by-fold evaluation, huge layers give exact positive
results at once, and the one shared DRAM channel never carries more than its bandwidth."""

from __future__ import annotations

import dataclasses
import math
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import sim_convs, sim_gemms, sim_hardware

from accelkit.sim.compute import compute_stats, fold_grid
from accelkit.sim.engine import fold_schedule, simulate_layer
from accelkit.sim.hardware import Hardware, tpu_v1_like
from accelkit.sim.memory import footprints, plan_for, touched
from accelkit.sim.report import dram_words
from accelkit.sim.workloads import MAX_SIZE, Conv, Gemm

layers = st.one_of(sim_gemms(), sim_convs())
bandwidths = st.sampled_from([None, 0.25, 1, 3, 4, 10, 48.57, 64])


def _fold_tiles(plan, fr: int, fc: int):
    """(ifmap words, ifmap tile id), (filter words, id), output words, first K-fold, last K-fold of one fold."""
    ur = min(plan.rows, plan.sr - fr * plan.rows)
    uc = min(plan.cols, plan.sc - fc * plan.cols)
    t, row_folds = plan.t, -(-plan.sr // plan.rows)
    if plan.dataflow == "os":
        return (t * ur, fr), (t * uc, fc), ur * uc, True, True
    streamed, stationary = (t * ur, fr), (ur * uc, (fr, fc))
    pair = (streamed, stationary) if plan.dataflow == "ws" else (stationary, streamed)
    return (*pair, t * uc, fr == 0, fr == row_folds - 1)


def per_fold_reference(layer, hw: Hardware, on_chip: bool) -> dict:
    """Every fold of every group in execution order, tile reuse decided by comparing with the previous fold and
    with the tiles seen so far: the form the closed one must equal."""
    plan = plan_for(layer, hw, on_chip)
    folds = [(f.index % -(-plan.sr // plan.rows), f.index // -(-plan.sr // plan.rows)) for f in _schedule(layer, hw)]
    tiles = [_fold_tiles(plan, fr, fc) for fr, fc in folds]
    fetched = {"ifmap": [], "filter": []}
    for op, slot, resident, half in (
        ("ifmap", 0, plan.resident_ifmap, plan.half_ifmap),
        ("filter", 1, plan.resident_filter, plan.half_filter),
    ):
        seen, prev = set(), None
        for tile in tiles:
            words, key = tile[slot]
            new = key not in seen if resident else (key != prev or words > half)
            fetched[op].append(words if new else 0)
            seen.add(key)
            prev = key
    if_foot = footprints(layer)[0]
    scale = Fraction(if_foot, sum(fetched["ifmap"])) if plan.resident_ifmap else 1
    drains = [out if not plan.keep_psums or last else 0 for _, _, out, _, last in tiles]
    psums = [0 if plan.keep_psums or first else out for _, _, out, first, _ in tiles]
    per_fold = next(iter(_schedule(layer, hw))).cycles
    bw = None if hw.calc_mode else Fraction(hw.dram_bw_words_per_cycle)

    def cycles(words):
        return 0 if bw is None else math.ceil(words / bw)

    incoming = [fetched["ifmap"][i] * scale + fetched["filter"][i] + psums[i] for i in range(len(tiles))]
    groups = layer.gemms().count
    sequence = incoming * groups  # groups run back to back: group g + 1's fold 0 follows group g's last fold
    drained = drains * groups
    stalls = [max(0, cycles(sequence[i] + drained[i - 1]) - per_fold) for i in range(1, len(sequence))]
    total = len(sequence) * per_fold + sum(stalls)
    grid = fold_grid(plan.sr, plan.sc, plan.t, hw.rows, hw.cols)
    comp = compute_stats(grid, hw.dataflow, compat=False)
    return {
        "total_cycles": total,
        "stall_cycles": sum(stalls),
        "total_cycles_incl_prefetch": cycles(sequence[0]) + total + cycles(drained[-1]),
        "ifmap_dram_reads": groups * (if_foot if plan.resident_ifmap else sum(fetched["ifmap"])),
        "filter_dram_reads": groups * sum(fetched["filter"]),
        "ofmap_dram_writes": groups * sum(drains),
        "ofmap_dram_reads": groups * sum(psums),
        "ifmap_sram_reads": groups * comp.ifmap_sram_reads,
        "filter_sram_reads": groups * comp.filter_sram_reads,
        "ofmap_sram_writes": groups * comp.ofmap_sram_writes,
        "folds": groups * comp.folds,
        "mapping_efficiency_pct": comp.mapping_efficiency_pct,
        "compute_util_pct": comp.compute_util_pct,
    }


def _schedule(layer, hw):
    dims = layer.gemms()
    return fold_schedule(dims.m, dims.n, dims.k, hw)


@given(layer=layers, hw=sim_hardware(), bw=bandwidths, on_chip=st.booleans())
@example(layer=Gemm("g", 70, 45, 90), hw=Hardware(8, 8, "ws", 1024, 1024, 1024), bw=0.25, on_chip=False)
@example(layer=Conv("c", 10, 10, 3, 3, 8, 8, groups=4), hw=Hardware(2, 3, "is", 64, 64, 64), bw=1, on_chip=True)
def test_fold_classes_equal_the_fold_by_fold_form(layer, hw, bw, on_chip):
    hw = dataclasses.replace(hw, dram_bw_words_per_cycle=bw)
    stats = simulate_layer(layer, hw, accumulate_on_chip=on_chip)
    want = per_fold_reference(layer, hw, on_chip)
    got = {name: getattr(stats, name) for name in want}
    for name in ("mapping_efficiency_pct", "compute_util_pct"):
        # The per-fold form averages fold by fold in floating point; the closed form divides exact integers.
        assert got.pop(name) == pytest.approx(want.pop(name), rel=1e-12), name
    assert got == want


def touched_by_enumeration(size, kernel, stride, pad, out) -> int:
    rows = np.arange(out)[:, None] * stride - pad + np.arange(kernel)[None, :]
    return int(np.unique(rows[(rows >= 0) & (rows < size)]).size)


@given(
    kernel=st.integers(1, 9), stride=st.integers(1, 9), pad=st.integers(0, 12), size=st.integers(1, 60), data=st.data()
)
def test_touched_rows_closed_form(kernel, stride, pad, size, data):
    size = max(size, kernel - 2 * pad)
    out = (size + 2 * pad - kernel) // stride + 1
    assert touched(size, kernel, stride, pad, out) == touched_by_enumeration(size, kernel, stride, pad, out)


huge = st.integers(1, MAX_SIZE)


@st.composite
def huge_layers(draw):
    if draw(st.booleans()):
        return Gemm("g", draw(huge), draw(huge), draw(huge))
    kernel, stride = draw(st.integers(1, 7)), draw(st.integers(1, 4))
    groups = draw(st.sampled_from([1, 2, 2**20]))
    side, per_group = st.integers(kernel, 2**40), st.integers(1, 2**20)
    return Conv(
        "c", draw(side), draw(side), kernel, kernel, groups * draw(per_group), groups * draw(per_group),
        stride, stride, pad_h=kernel // 2, pad_w=kernel // 2, batch=draw(per_group), groups=groups,
    )  # fmt: skip


@given(
    layer=huge_layers(),
    hw=sim_hardware(max_side=256),
    bw=st.sampled_from([None, 1e-6, 0.5, 48.57, 1e9]),
    on_chip=st.booleans(),
)
@example(layer=Gemm("g", 2**40, 2**20, 2**20), hw=tpu_v1_like(), bw=48.57, on_chip=False)
@example(layer=Gemm("g", MAX_SIZE, MAX_SIZE, MAX_SIZE), hw=Hardware(1, 1, "os"), bw=1e-6, on_chip=True)
def test_huge_layers_give_exact_positive_results_quickly(layer, hw, bw, on_chip):
    hw = dataclasses.replace(hw, dram_bw_words_per_cycle=bw)
    start = time.perf_counter()
    stats = simulate_layer(layer, hw, accumulate_on_chip=on_chip)
    assert time.perf_counter() - start < 0.5
    dims = layer.gemms()
    sr, sc, t = {"os": (dims.m, dims.n, dims.k), "ws": (dims.k, dims.n, dims.m), "is": (dims.k, dims.m, dims.n)}[
        hw.dataflow
    ]
    folds = dims.count * -(-sr // hw.rows) * -(-sc // hw.cols)
    assert stats.compute_cycles == folds * (2 * hw.rows + hw.cols + t - 2)
    assert stats.total_cycles == stats.compute_cycles + stats.stall_cycles
    assert stats.stall_cycles >= 0 and stats.total_cycles_incl_prefetch >= stats.total_cycles
    assert 0 < stats.overall_util_pct <= 100 and 0 < stats.compute_util_pct <= 100
    assert stats.macs == layer.macs and stats.total_cycles * hw.pes >= layer.macs
    assert all(math.isfinite(getattr(stats, f)) for f in ("total_energy_pj", "avg_ifmap_dram_bw", "avg_ofmap_sram_bw"))


def test_the_reported_overflow_case():
    """The issue's example: int64 made it negative; the exact count is folds x per_fold + stalls."""
    stats = simulate_layer(Gemm("g", 2**40, 2**20, 2**20), "tpu_v1")
    assert stats.compute_cycles == (2**20 // 256) ** 2 * (2 * 256 + 256 + 2**40 - 2)
    assert stats.total_cycles > 2**63 and 0 < stats.overall_util_pct <= 100


@given(layer=layers, hw=sim_hardware(), bw=bandwidths.filter(bool), on_chip=st.booleans())
def test_the_shared_channel_never_exceeds_its_bandwidth(layer, hw, bw, on_chip):
    stats = simulate_layer(layer, dataclasses.replace(hw, dram_bw_words_per_cycle=bw), accumulate_on_chip=on_chip)
    assert dram_words(stats) <= bw * stats.total_cycles_incl_prefetch


@given(layer=layers, hw=sim_hardware(), bw=bandwidths.filter(bool), on_chip=st.booleans())
def test_halving_bandwidth_never_reduces_cycles(layer, hw, bw, on_chip):
    full, half = (
        simulate_layer(layer, dataclasses.replace(hw, dram_bw_words_per_cycle=b), accumulate_on_chip=on_chip)
        for b in (bw, bw / 2)
    )
    for field in ("total_cycles", "stall_cycles", "total_cycles_incl_prefetch"):
        assert getattr(half, field) >= getattr(full, field), field


def test_operands_contend_for_the_channel():
    """WS, 4x4 array, GEMM M=8, N=8, K=8: 2 x 2 folds of 2*4 + 4 + 8 - 2 = 18 cycles. Fold 1 (row fold 1, column
    fold 0) fetches a 32-word IFMAP tile, a 16-word filter tile and reads back 32 partial sums, and fold 0 drains
    32: 112 words. At 4 words/cycle each operand alone fits in 18 cycles (on its own channel, as SCALE-Sim models
    it, nothing stalls), but shared they take 28 cycles: a 10-cycle stall. Fold 2 (row fold 0, column fold 1)
    moves 32 + 16 + 32 (fold 1's drain) = 80 words, 20 cycles, stall 2; fold 3 is like fold 1. 22 in all."""
    hw = Hardware(4, 4, "ws", 64, 64, 64, dram_bw_words_per_cycle=4)
    plan = plan_for(Gemm("g", 8, 8, 8), hw, False)
    assert not plan.resident_ifmap and not plan.resident_filter
    stats = simulate_layer(Gemm("g", 8, 8, 8), hw)
    assert stats.compute_cycles == 4 * 18
    assert stats.stall_cycles == 10 + 2 + 10
    assert dram_words(stats) <= 4 * stats.total_cycles_incl_prefetch


def test_tpu_v1_preset_is_the_datasheet_total():
    hw = tpu_v1_like()
    assert hw.dram_bw_bytes_per_s == pytest.approx(34e9)
    assert hw.dram_bw_words_per_cycle == pytest.approx(34e9 / 700e6)
