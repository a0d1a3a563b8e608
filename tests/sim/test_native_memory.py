"""Native mode: the documented differences from compat, and the per-fold memory model's limits."""

from __future__ import annotations

import pytest

from accelkit.sim.engine import simulate_layer
from accelkit.sim.hardware import Hardware
from accelkit.sim.workloads import Conv, Gemm

LAYER = Gemm("g", 70, 45, 90)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_native_cycles_follow_the_paper_formula(dataflow):
    hw = Hardware(8, 6, dataflow)
    native = simulate_layer(LAYER, hw)
    compat = simulate_layer(LAYER, hw, mode="compat")
    assert native.folds == compat.folds
    extra_rows = hw.rows if dataflow == "os" else 0
    assert native.compute_cycles == compat.compute_cycles + 1 + native.folds * extra_rows
    assert (native.stall_cycles, native.total_cycles) == (0, native.compute_cycles)


def test_native_has_no_phantom_os_writes():
    hw = Hardware(8, 6, "os")
    native = simulate_layer(LAYER, hw)
    compat = simulate_layer(LAYER, hw, mode="compat")
    assert native.ofmap_sram_writes == LAYER.m * LAYER.n
    assert compat.ofmap_sram_writes == LAYER.m * LAYER.n + compat.folds * (8 + 6)


def test_partial_sums_spill_or_stay_on_chip():
    hw = Hardware(8, 8, "ws", ofmap_sram_bytes=64 * 1024, dram_bw_words_per_cycle=4.0)
    k_folds = -(-LAYER.k // 8)
    spill = simulate_layer(LAYER, hw)
    kept = simulate_layer(LAYER, hw, accumulate_on_chip=True)
    assert spill.ofmap_dram_writes == k_folds * LAYER.m * LAYER.n
    assert spill.ofmap_dram_reads == (k_folds - 1) * LAYER.m * LAYER.n
    assert (kept.ofmap_dram_writes, kept.ofmap_dram_reads) == (LAYER.m * LAYER.n, 0)
    assert kept.stall_cycles <= spill.stall_cycles
    assert kept.ofmap_energy_pj < spill.ofmap_energy_pj


def test_on_chip_accumulation_needs_room():
    hw = Hardware(8, 8, "ws", ofmap_sram_bytes=1024, dram_bw_words_per_cycle=4.0)
    big = Gemm("g", 500, 16, 40)
    assert simulate_layer(big, hw, accumulate_on_chip=True) == simulate_layer(big, hw)


def test_bandwidth_creates_stalls_and_enough_removes_them():
    slow = simulate_layer(LAYER, Hardware(8, 8, "ws", 1024, 1024, 1024, dram_bw_words_per_cycle=0.5))
    fast = simulate_layer(LAYER, Hardware(8, 8, "ws", 1024, 1024, 1024, dram_bw_words_per_cycle=1e6))
    assert slow.stall_cycles > 0 and fast.stall_cycles == 0
    assert slow.total_cycles == slow.compute_cycles + slow.stall_cycles
    assert slow.total_cycles_incl_prefetch > slow.total_cycles


def test_resident_operand_crosses_dram_once():
    """A 64 KiB SRAM holds the whole 8x8 conv input in its active half: each input word is read once, not once
    per im2col copy."""
    conv = Conv("c", 8, 8, 3, 3, 4, 8, pad_h=1, pad_w=1, batch=2)
    stats = simulate_layer(conv, Hardware(4, 4, "os"))
    assert stats.ifmap_dram_reads == 2 * 8 * 8 * 4
    assert stats.filter_dram_reads == 3 * 3 * 4 * 8


def test_groups_run_back_to_back():
    hw = Hardware(4, 4, "ws")
    grouped = simulate_layer(Conv("c", 10, 10, 3, 3, 8, 8, groups=4), hw)
    one = simulate_layer(Conv("c", 10, 10, 3, 3, 2, 2), hw)
    assert grouped.total_cycles == 4 * one.total_cycles
    assert grouped.macs == 4 * one.macs
    assert grouped.ifmap_sram_reads == 4 * one.ifmap_sram_reads


def test_strided_input_fetches_only_what_windows_read():
    """A 1x1 filter at stride 2 reads column 0 of a 2-wide input: 3 images x 2 rows x 1 column x 3 channels = 18
    words. 64-byte SRAMs stream it tile by tile, 128-byte ones hold it resident; both must fetch those 18 words
    (the resident case used to fetch the whole 36-word input)."""
    conv = Conv("c", 2, 2, 1, 1, 3, 1, stride_w=2, batch=3)
    reads = [simulate_layer(conv, Hardware(1, 1, "os", b, b, b)).ifmap_dram_reads for b in (64, 128)]
    assert reads == [18, 18]


def test_rows_between_windows_are_not_fetched():
    conv = Conv("c", 7, 7, 2, 2, 1, 1, stride_h=3, stride_w=3, pad_h=1, pad_w=1)
    # 3 windows a side, at rows -1..0, 2..3 and 5..6: input rows 0, 2, 3, 5 and 6 are read, 1 and 4 never.
    assert simulate_layer(conv, Hardware(2, 2, "ws")).ifmap_dram_reads == 5 * 5
