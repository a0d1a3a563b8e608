"""Functional mode: real data through the engine's fold schedule equals the NumPy oracle, and a broken schedule
is caught."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import SIM_DATAFLOWS, sim_convs, sim_gemms
from tolerance import assert_close

from accelkit.sim import functional as F
from accelkit.sim.engine import fold_schedule
from accelkit.sim.hardware import Hardware
from accelkit.sim.systolic import output_stationary_fold, stationary_fold
from accelkit.sim.workloads import Conv, Gemm


def array(rows, cols, dataflow):
    return Hardware(rows=rows, cols=cols, dataflow=dataflow)


# Small layers: functional mode does every MAC in NumPy.
gemms = sim_gemms(max_dim=40)
convs = sim_convs(max_side=9, max_filter=4, max_per_group=4)
arrays = st.builds(array, st.integers(1, 9), st.integers(1, 9), st.sampled_from(SIM_DATAFLOWS))


@given(layer=st.one_of(gemms, convs), hw=arrays, seed=st.integers(0, 2**16))
def test_int8_is_exact_for_any_layer_and_array(layer, hw, seed):
    a, b = F.random_operands(layer, np.int8, seed=seed)
    out = F.run_layer(layer, hw, a, b)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, F.reference(layer, a, b))


@pytest.mark.parametrize("dataflow", SIM_DATAFLOWS)
@pytest.mark.parametrize(
    ("rows", "cols", "m", "n", "k"),
    [(4, 4, 1, 1, 1), (4, 4, 5, 7, 9), (8, 3, 33, 17, 31), (32, 32, 5, 3, 2), (2, 2, 63, 65, 64), (1, 1, 3, 4, 5)],
    ids=lambda v: str(v),
)
def test_gemm_int8_exact_and_float32_close(dataflow, rows, cols, m, n, k):
    layer, hw = Gemm("g", m, n, k), array(rows, cols, dataflow)
    a, b = F.random_operands(layer, np.int8, seed=m * n + k)
    np.testing.assert_array_equal(F.run_layer(layer, hw, a, b), a.astype(np.int64) @ b.astype(np.int64))
    af, bf = F.random_operands(layer, np.float32, seed=k)
    out = F.run_layer(layer, hw, af, bf)
    assert out.dtype == np.float32
    assert_close(f"{dataflow} gemm", F.reference(layer, af, bf), out, dtype=torch.float32)


CONVS = {
    "stride2_pad1_batch2": Conv("c", 9, 7, 3, 3, 4, 6, 2, 2, 1, 1, 2, 1),
    "uneven_stride_pad": Conv("c", 8, 11, 2, 5, 3, 5, 3, 2, 2, 1, 1, 1),
    "grouped": Conv("c", 6, 6, 3, 3, 8, 12, 1, 1, 1, 1, 2, 4),
    "depthwise": Conv("c", 7, 7, 3, 3, 6, 6, 2, 2, 1, 1, 1, 6),
    "pointwise": Conv("c", 5, 5, 1, 1, 16, 8, 1, 1, 0, 0, 3, 1),
    "filter_covers_padded_input": Conv("c", 2, 3, 4, 5, 2, 3, 1, 1, 1, 1, 1, 1),
}


@pytest.mark.parametrize("dataflow", SIM_DATAFLOWS)
@pytest.mark.parametrize("name", CONVS)
def test_conv_matches_direct_convolution(dataflow, name):
    layer = CONVS[name]
    hw = array(4, 3, dataflow)
    a, b = F.random_operands(layer, np.int8, seed=7)
    out = F.run_layer(layer, hw, a, b)
    assert out.shape == (layer.batch, layer.ofmap_h, layer.ofmap_w, layer.num_filters)
    np.testing.assert_array_equal(out, F.reference(layer, a, b))
    af, bf = F.random_operands(layer, np.float32, seed=8)
    assert_close(f"{dataflow} {name}", F.reference(layer, af, bf), F.run_layer(layer, hw, af, bf), dtype=torch.float32)


def test_reference_conv_agrees_with_a_hand_computed_output():
    # 1 x 3 x 3 x 1 input, 2 x 2 all-ones filter, stride 1, no padding: each output sums a 2 x 2 window.
    layer = Conv("c", 3, 3, 2, 2, 1, 1)
    x = np.arange(9, dtype=np.int8).reshape(1, 3, 3, 1)
    w = np.ones((2, 2, 1, 1), dtype=np.int8)
    expected = np.array([[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(F.reference(layer, x, w), expected)
    np.testing.assert_array_equal(F.run_layer(layer, array(2, 2, "ws"), x, w), expected)


def test_int32_accumulator_wraps_like_hardware():
    # 140,000 products of (-128)(-128) = 2,293,760,000 > 2^31 - 1: an int32 adder wraps to a negative number.
    layer = Gemm("g", 1, 1, 140_000)
    a = np.full((1, 140_000), -128, dtype=np.int8)
    b = np.full((140_000, 1), -128, dtype=np.int8)
    out = F.run_layer(layer, array(128, 128, "ws"), a, b)
    assert out[0, 0] == 2_293_760_000 - 2**32
    np.testing.assert_array_equal(out, F.reference(layer, a, b))


def tiles(layer, hw):
    return F.layer_tiles(layer, hw)


def test_dropped_fold_is_detected():
    layer, hw = Gemm("g", 10, 10, 10), array(4, 4, "ws")
    a, b = F.random_operands(layer, np.int8)
    schedule = tiles(layer, hw)
    with pytest.raises(F.ScheduleError, match="mapped never"):
        F.run_gemms(a[None], b[None], schedule[:3] + schedule[4:], "ws")


def test_repeated_fold_is_detected():
    layer, hw = Gemm("g", 10, 10, 10), array(4, 4, "os")
    a, b = F.random_operands(layer, np.int8)
    schedule = tiles(layer, hw)
    with pytest.raises(F.ScheduleError, match="mapped 2 times"):
        F.run_gemms(a[None], b[None], [*schedule, schedule[2]], "os")


def test_overlapping_folds_are_detected_even_when_the_count_is_right():
    # Two tiles shifted by one k: every MAC count sums right overall, but k = 0 is missed and k = 5 repeated.
    full = F.Tile(0, (0, 3), (0, 3), (0, 10))
    split = [F.Tile(0, (0, 3), (0, 3), (1, 6)), F.Tile(0, (0, 3), (0, 3), (5, 10), first=False)]
    assert F.check_coverage([full], 1, 3, 3, 10) == 1
    with pytest.raises(F.ScheduleError, match=r"k 0\) is mapped never"):
        F.check_coverage(split, 1, 3, 3, 10)


def test_fold_outside_the_gemm_is_detected():
    with pytest.raises(F.ScheduleError, match="outside"):
        F.check_coverage([F.Tile(0, (0, 4), (0, 3), (0, 3))], 1, 3, 3, 3)


def test_missing_group_is_detected():
    layer = CONVS["grouped"]
    hw = array(4, 4, "is")
    with pytest.raises(F.ScheduleError, match="group 3"):
        F.check_coverage([t for t in tiles(layer, hw) if t.group != 3], layer.groups, *F.gemm_dims(layer)[1:])


@pytest.mark.parametrize("which", ["first_fold_not_first", "later_fold_restarts"])
def test_wrong_first_flag_corrupts_the_output(which):
    layer, hw = Gemm("g", 6, 5, 11), array(4, 8, "ws")  # K = 11 on 4 rows: 3 K-folds per output tile
    a, b = F.random_operands(layer, np.int8, seed=3)
    schedule = tiles(layer, hw)
    assert [t.first for t in schedule] == [True, False, False]
    index, flag = (0, False) if which == "first_fold_not_first" else (2, True)
    schedule[index] = dataclasses.replace(schedule[index], first=flag)
    out = F.run_gemms(a[None], b[None], schedule, "ws")[0]
    assert not np.array_equal(out, F.reference(layer, a, b))


def test_verify_layer_catches_a_broken_engine_schedule(monkeypatch):
    layer, hw = Conv("c", 8, 8, 3, 3, 4, 8, 1, 1, 1, 1, 2, 2), array(4, 4, "os")
    assert F.verify_layer(layer, hw) == layer.groups * len(list(fold_schedule(*F.gemm_dims(layer)[1:], hw)))

    def drop_last(*args, **kwargs):
        return list(fold_schedule(*args, **kwargs))[:-1]

    monkeypatch.setattr(F, "fold_schedule", drop_last)
    with pytest.raises(F.ScheduleError, match="mapped never"):
        F.verify_layer(layer, hw)


@pytest.mark.parametrize("dataflow", SIM_DATAFLOWS)
def test_operands_of_the_wrong_shape_or_kind_raise(dataflow):
    layer, hw = Gemm("g", 3, 4, 5), array(2, 2, dataflow)
    a, b = F.random_operands(layer, np.int8)
    with pytest.raises(ValueError, match="shapes"):
        F.run_layer(layer, hw, a.T, b)
    with pytest.raises(TypeError, match="both integer or both floating"):
        F.run_layer(layer, hw, a, b.astype(np.float32))


@given(layer=st.one_of(gemms, convs), hw=arrays, mode=st.sampled_from(["native", "compat"]), seed=st.integers(0, 99))
def test_cycle_level_emulation_matches_oracle_and_engine_cycles(layer, hw, mode, seed):
    # The emulator raises ScheduleError if any fold takes other than the cycles the engine charges for it.
    if mode == "compat" and isinstance(layer, Conv):
        layer = Gemm("g", *F.gemm_dims(layer)[1:])
    a, b = F.random_operands(layer, np.int8, seed=seed)
    np.testing.assert_array_equal(F.run_layer(layer, hw, a, b, mode=mode, cycle_level=True), F.reference(layer, a, b))


@pytest.mark.parametrize(
    ("rows", "cols", "r", "c", "t"), [(4, 4, 4, 4, 6), (5, 3, 2, 3, 1), (1, 1, 1, 1, 9), (6, 2, 6, 1, 4)]
)
def test_emulated_fold_takes_the_paper_cycle_count(rows, cols, r, c, t):
    # SCALE-Sim papers (arXiv:1811.02883): 2R + C + T - 2 cycles per fold, R and C of the physical array.
    rng = np.random.default_rng(0)
    stationary, stream = rng.integers(-9, 9, (r, c)), rng.integers(-9, 9, (t, r))
    ws = stationary_fold(stationary, stream, rows, cols)
    np.testing.assert_array_equal(ws.output, stream @ stationary)
    assert (ws.fill, ws.cycles) == (rows, 2 * rows + cols + t - 2)
    a, b = rng.integers(-9, 9, (r, t)), rng.integers(-9, 9, (t, c))
    os_ = output_stationary_fold(a, b, rows, cols)
    np.testing.assert_array_equal(os_.output, a @ b)
    assert (os_.drain, os_.cycles) == (rows, 2 * rows + cols + t - 2)


def test_cycle_count_disagreement_is_detected():
    layer, hw = Gemm("g", 5, 6, 7), array(3, 4, "ws")
    a, b = F.random_operands(layer, np.int8)
    schedule = [dataclasses.replace(t, cycles=t.cycles + 1) if i == 1 else t for i, t in enumerate(tiles(layer, hw))]
    # 2R + C + T - 2 = 6 + 4 + 5 - 2 = 13 cycles per fold (T = M = 5 streams through a 3 x 4 WS array).
    with pytest.raises(F.ScheduleError, match="takes 13 cycles on the emulated array; the engine charges 14"):
        F.run_gemms(a[None], b[None], schedule, "ws", array=F.Array(3, 4))


@pytest.mark.parametrize(
    ("layer", "hw", "cycle_level", "what"),
    [
        (Gemm("big", 10**5, 10**4, 10), Hardware(12, 14), False, "C \\(outputs\\) elements"),
        (Gemm("big", 2**40, 1, 1), Hardware(12, 14), False, "A \\(im2col input\\) elements"),
        (Gemm("big", 4, 2**15, 2**15), Hardware(4, 4), False, "B \\(weights\\) elements"),
        (Gemm("big", 4, 4, 4), Hardware(2**13, 2**13), True, "PE registers"),
        (Gemm("big", 2717, 12135, 3), Hardware(256, 3), True, "cycles to emulate"),
    ],
)
def test_functional_mode_refuses_what_it_cannot_hold(layer, hw, cycle_level, what):
    with pytest.raises(ValueError, match=f"functional mode: layer 'big' has .*{what}"):
        F.verify_layer(layer, hw, cycle_level=cycle_level)
