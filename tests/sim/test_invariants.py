"""Invariants every simulation must satisfy, over random layers (padding, batch, groups) and random hardware."""

import dataclasses

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import SIM_DATAFLOWS, sim_convs, sim_gemms, sim_hardware

from accelkit.sim.api import simulate
from accelkit.sim.engine import fold_schedule, simulate_layer
from accelkit.sim.hardware import Hardware
from accelkit.sim.report import dram_words
from accelkit.sim.workloads import Conv, Gemm

gemms = sim_gemms()
layers = st.one_of(gemms, sim_convs())


def footprints(layer) -> tuple[int, int, int]:
    """Distinct IFMAP, filter and OFMAP words a layer must touch: the input pixels some window reads (padding is
    not data), every filter weight and every output."""
    if isinstance(layer, Gemm):
        return layer.m * layer.k, layer.k * layer.n, layer.m * layer.n

    def touched(size, kernel, stride, pad, out):
        return len({o * stride - pad + r for o in range(out) for r in range(kernel)} & set(range(size)))

    rows = touched(layer.ifmap_h, layer.filter_h, layer.stride_h, layer.pad_h, layer.ofmap_h)
    cols = touched(layer.ifmap_w, layer.filter_w, layer.stride_w, layer.pad_w, layer.ofmap_w)
    weights = layer.filter_h * layer.filter_w * layer.channels // layer.groups * layer.num_filters
    return (
        layer.batch * rows * cols * layer.channels,
        weights,
        layer.batch * layer.ofmap_h * layer.ofmap_w * layer.num_filters,
    )


def check_stats(stats, layer, hw, *, read_floors=None):
    """Invariants of one layer's stats. DRAM reads must reach `read_floors` (IFMAP, filter words), by default the
    footprint: every word the layer reads crosses DRAM at least once."""
    assert stats.macs == layer.macs
    assert stats.total_cycles * hw.pes >= layer.macs
    assert stats.stall_cycles >= 0
    assert stats.total_cycles >= stats.compute_cycles > 0
    assert 0 < stats.overall_util_pct <= 100
    assert 0 < stats.mapping_efficiency_pct <= 100
    ifmap, weights, outputs = footprints(layer)
    assert stats.ifmap_sram_reads >= ifmap
    assert stats.filter_sram_reads >= weights
    assert stats.ofmap_sram_writes >= outputs
    ifmap_floor, filter_floor = read_floors or (ifmap, weights)
    assert stats.ifmap_dram_reads >= ifmap_floor
    assert stats.filter_dram_reads >= filter_floor
    assert stats.ofmap_dram_writes >= outputs
    assert stats.total_energy_pj >= layer.macs * hw.energy.mac_pj


@given(layer=layers, hw=sim_hardware(), on_chip=st.booleans())
def test_native_invariants(layer, hw, on_chip):
    check_stats(simulate_layer(layer, hw, accumulate_on_chip=on_chip), layer, hw)


def user_mode_read_floors(layer, hw) -> tuple[int, int]:
    """What scalesim 3.0.0's USER-mode read buffer is sure to fetch: its first prefetch fills the active half of
    the SRAM (ceil(words / 2)) or the whole operand if smaller, in whole lines. Later prefetches are not sure to
    cover the rest: the window is a whole number of 1%-of-SRAM sets, rounded up, so it can hold a few words more
    than half the SRAM. scalesim itself reports 512 IFMAP DRAM reads for GEMM M=19, N=1, K=27 (513 words) on a 2x2
    OS array with 1 KiB SRAMs at 1 word/cycle (checked with scalesim 3.0.0), so the footprint is no floor there."""
    ifmap, weights, _ = footprints(layer)
    return min(ifmap, -(-hw.sram_words("ifmap") // 2)), min(weights, -(-hw.sram_words("filter") // 2))


@given(
    layer=st.one_of(gemms, sim_convs(max_side=8, scalesim_expressible=True)),
    hw=sim_hardware(scalesim_expressible=True),
)
def test_compat_invariants(layer, hw):
    # CALC-mode read buffers count every distinct address since their last flush, so each word is read at least
    # once and the footprint is a floor; USER mode guarantees only its first prefetch (user_mode_read_floors).
    # Native mode keeps the footprint floor (test_native_invariants).
    stats = simulate_layer(layer, hw, mode="compat")
    check_stats(stats, layer, hw, read_floors=None if hw.calc_mode else user_mode_read_floors(layer, hw))


def test_compat_user_mode_can_read_less_than_the_operand():
    """The scalesim 3.0.0 fact user_mode_read_floors rests on, reproduced by compat mode."""
    layer = Gemm("g", 19, 1, 27)
    hw = Hardware(2, 2, "os", 1024, 1024, 1024, dram_bw_words_per_cycle=1)
    stats = simulate_layer(layer, hw, mode="compat")
    assert stats.ifmap_dram_reads == 512 < layer.m * layer.k
    assert stats.ifmap_dram_reads >= user_mode_read_floors(layer, hw)[0]


def doubled(hw: Hardware) -> Hardware:
    return dataclasses.replace(
        hw,
        ifmap_sram_bytes=2 * hw.ifmap_sram_bytes,
        filter_sram_bytes=2 * hw.filter_sram_bytes,
        ofmap_sram_bytes=2 * hw.ofmap_sram_bytes,
    )


@given(layer=layers, hw=sim_hardware(), on_chip=st.booleans())
# A stride-2 1x1 conv whose 36-word input streams through 64-byte SRAMs but is resident in 128-byte ones: only
# 18 of its words are ever read, and the resident case once fetched all 36.
@example(layer=Conv("c", 2, 2, 1, 1, 3, 1, stride_w=2, batch=3), hw=Hardware(1, 1, "os", 64, 64, 64), on_chip=False)
def test_doubling_every_sram_never_adds_dram_traffic_or_cycles(layer, hw, on_chip):
    small, big = (simulate_layer(layer, h, accumulate_on_chip=on_chip) for h in (hw, doubled(hw)))
    for field in ("ifmap_dram_reads", "filter_dram_reads", "ofmap_dram_writes", "ofmap_dram_reads"):
        assert getattr(big, field) <= getattr(small, field), field
    for field in ("total_cycles", "stall_cycles", "total_cycles_incl_prefetch"):
        assert getattr(big, field) <= getattr(small, field), field


@given(layer=layers, hw=sim_hardware())
def test_resident_operands_cross_dram_exactly_once(layer, hw):
    # 1 MiB SRAMs hold every drawn layer's input and weights in their active half, so DRAM delivers each word the
    # layer reads once: not the pixels a stride larger than the filter skips, not padding, not im2col copies.
    roomy = dataclasses.replace(hw, ifmap_sram_bytes=1 << 20, filter_sram_bytes=1 << 20)
    stats = simulate_layer(layer, roomy)
    ifmap, weights, _ = footprints(layer)
    assert (stats.ifmap_dram_reads, stats.filter_dram_reads) == (ifmap, weights)


@given(layer=layers, hw=sim_hardware())
def test_dataflows_agree_on_macs(layer, hw):
    macs = {df: simulate_layer(layer, dataclasses.replace(hw, dataflow=df)).macs for df in SIM_DATAFLOWS}
    assert set(macs.values()) == {layer.macs}


@given(layer=gemms, hw=sim_hardware(scalesim_expressible=True), mode=st.sampled_from(["native", "compat"]))
def test_fold_schedule_is_what_the_engine_charges(layer, hw, mode):
    # The functional mode executes fold_schedule; its cycles must be the ones the timing model reports.
    # SCALE-Sim reports one cycle less than its folds take (`folds x per_fold - 1`, simulators.md §1.6).
    folds = list(fold_schedule(layer.m, layer.n, layer.k, hw, mode=mode))
    stats = simulate_layer(layer, hw, mode=mode)
    assert sum(f.cycles for f in folds) - (mode == "compat") == stats.compute_cycles
    assert len(folds) == stats.folds


@given(network=st.lists(layers, min_size=2, max_size=6), hw=sim_hardware(), seed=st.randoms(use_true_random=False))
def test_results_do_not_depend_on_layer_order(network, hw, seed):
    network = [dataclasses.replace(layer, name=f"layer{i}") for i, layer in enumerate(network)]
    shuffled = list(network)
    seed.shuffle(shuffled)
    forward = {r.name: r.stats for r in simulate(network, hw).layers}
    backward = {r.name: r.stats for r in simulate(shuffled, hw).layers}
    assert forward == backward
    alone = {layer.name: simulate_layer(layer, hw) for layer in network}
    assert forward == alone


@given(network=st.lists(layers, min_size=1, max_size=5), hw=sim_hardware())
def test_report_totals_are_sums_of_layers(network, hw):
    network = [dataclasses.replace(layer, name=f"layer{i}") for i, layer in enumerate(network)]
    report = simulate(network, hw)
    totals = report.totals
    assert totals.macs == sum(layer.macs for layer in network)
    assert totals.total_cycles == sum(r.stats.total_cycles for r in report.layers)
    assert totals.stall_cycles == sum(r.stats.stall_cycles for r in report.layers)
    assert 0 < totals.overall_util_pct <= 100
    assert totals.overall_util_pct == 100 * totals.macs / (totals.total_cycles * hw.pes)


@given(
    layer=layers, hw=sim_hardware(), bandwidths=st.lists(st.sampled_from([0.25, 1, 3, 8, 64]), min_size=2, max_size=2)
)
def test_more_bandwidth_never_costs_cycles(layer, hw, bandwidths):
    slow, fast = sorted(bandwidths)
    cycles = [
        simulate_layer(layer, dataclasses.replace(hw, dram_bw_words_per_cycle=bw)).total_cycles for bw in (slow, fast)
    ]
    calc = simulate_layer(layer, dataclasses.replace(hw, dram_bw_words_per_cycle=None))
    assert cycles[1] <= cycles[0]
    assert calc.stall_cycles == 0 and calc.total_cycles <= cycles[1]


@given(layer=layers, hw=sim_hardware())
def test_accumulating_on_chip_never_adds_traffic_or_cycles(layer, hw):
    spill, keep = (simulate_layer(layer, hw, accumulate_on_chip=flag) for flag in (False, True))
    assert dram_words(keep) <= dram_words(spill)
    assert keep.total_cycles <= spill.total_cycles
    assert keep.macs == spill.macs


# Tiny layers (sizes of 1) on 1x1 to 2x2 arrays: folds of one PE, one MAC, one cycle.
tiny_layers = st.one_of(sim_gemms(max_dim=3), sim_convs(max_side=3, max_filter=2, max_per_group=2))


@given(layer=tiny_layers, hw=sim_hardware(max_side=2), on_chip=st.booleans())
def test_native_handles_tiny_layers_on_tiny_arrays(layer, hw, on_chip):
    check_stats(simulate_layer(layer, hw, accumulate_on_chip=on_chip), layer, hw)


def compat_takes_zero_cycles(layer, hw) -> bool:
    """SCALE-Sim's `folds x (R + C + T - 2) - 1` is 0 only for one fold of one cycle: a single MAC on 1x1 OS."""
    return hw.dataflow == "os" and hw.pes == 1 and layer.macs == 1


@given(
    layer=st.one_of(sim_gemms(max_dim=3), sim_convs(max_side=2, max_filter=2, scalesim_expressible=True)),
    hw=sim_hardware(scalesim_expressible=True, min_side=1, max_side=2),
)
def test_compat_tiny_layers_run_or_raise_the_documented_error(layer, hw):
    if compat_takes_zero_cycles(layer, hw):
        with pytest.raises(ValueError, match="takes 0 cycles in SCALE-Sim 3.0.0"):
            simulate_layer(layer, hw, mode="compat")
        return
    stats = simulate_layer(layer, hw, mode="compat")
    # On a 1x1 array SCALE-Sim's count can fall below one cycle per MAC (quirk 2), so no utilization bound here.
    assert stats.macs == layer.macs
    assert stats.total_cycles >= stats.compute_cycles > 0


@pytest.mark.parametrize("bandwidth", [None, 1])
@pytest.mark.parametrize("layer", [Gemm("one", 1, 1, 1), Conv("one", 1, 1, 1, 1, 1, 1)])
def test_single_mac_on_one_pe(layer, bandwidth):
    hw = Hardware(1, 1, "os", 1024, 1024, 1024, dram_bw_words_per_cycle=bandwidth)
    assert compat_takes_zero_cycles(layer, hw)
    with pytest.raises(ValueError, match="'one' takes 0 cycles"):
        simulate_layer(layer, hw, mode="compat")
    native = simulate_layer(layer, hw)
    # One fold of 2R + C + T - 2 = 2 cycles.
    assert (native.total_cycles, native.overall_util_pct) == (2, 50.0)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((1.5, 2, 3, "eyeriss"), TypeError, "fold_schedule.m must be an int"),
        ((1, 0, 3, "eyeriss"), ValueError, "fold_schedule.n must be an int in"),
        ((1, 2, 3, 5), TypeError, "hw must be a Hardware or a preset name"),
    ],
)
def test_fold_schedule_validates_before_the_first_fold(args, error, match):
    with pytest.raises(error, match=match):
        fold_schedule(*args)  # raises at the call, not at the first next()


@pytest.mark.parametrize(
    ("sram", "field"),
    [({"ifmap_sram_bytes": 64}, "ifmap_sram_bytes=64"), ({"ofmap_sram_bytes": 1}, "ofmap_sram_bytes=1")],
)
def test_compat_names_the_sram_scalesim_cannot_use(sram, field):
    with pytest.raises(ValueError, match=f"compat mode: Hardware.{field} holds"):
        simulate_layer(Gemm("g", 6, 6, 6), Hardware(4, 4, "ws", **sram, dram_bw_words_per_cycle=2), mode="compat")
