"""Properties of the stream-K partition and the fixed split (kernels/lean_attention/schedule.py): every LeanTile is
covered exactly once, stream-K ranges differ by at most one tile, and the per-tile piece arrays agree with a direct
count of which programs meet which tile."""

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from accelkit.kernels.lean_attention.schedule import LeanSchedule, lean_schedule, split_kv_schedule

lengths = st.lists(st.one_of(st.sampled_from([0, 1, 2, 15, 16, 17, 64]), st.integers(0, 300)), min_size=0, max_size=6)
small = st.integers(1, 5)
programs = st.one_of(st.sampled_from([1, 2, 7]), st.integers(1, 200))


def pieces_by_count(schedule: LeanSchedule) -> list[list[int]]:
    """For each output tile, the programs whose range meets it, found by intersecting every pair of ranges."""
    starts, offsets = schedule.program_starts, schedule.tile_offsets
    result = []
    for o in range(schedule.num_tiles):
        lo, hi = offsets[o], offsets[o + 1]
        result.append([p for p in range(schedule.num_programs) if max(lo, starts[p]) < min(hi, starts[p + 1])])
    return result


def check_pieces(schedule: LeanSchedule) -> None:
    expected = pieces_by_count(schedule)
    for o, progs in enumerate(expected):
        assert schedule.num_pieces[o] == len(progs), (o, progs)
        if progs:
            assert progs == list(range(progs[0], progs[0] + len(progs))), f"tile {o}: programs not consecutive"
            assert schedule.first_program[o] == progs[0]
    np.testing.assert_array_equal(schedule.piece_offsets, np.concatenate([[0], np.cumsum(schedule.num_pieces)]))
    for p in range(schedule.num_programs):
        start, end = schedule.program_starts[p], schedule.program_starts[p + 1]
        first = schedule.program_first_tile[p]
        if start == end:
            assert first == schedule.num_tiles
        else:
            assert schedule.tile_offsets[first] <= start < schedule.tile_offsets[first + 1]


def check_coverage(schedule: LeanSchedule, seqlens: list[int], heads: int, block_n: int) -> None:
    counts = np.repeat([-(-n // block_n) for n in seqlens], heads)
    np.testing.assert_array_equal(np.diff(schedule.tile_offsets), counts)
    starts = schedule.program_starts
    assert starts[0] == 0 and starts[-1] == counts.sum()
    assert (np.diff(starts) >= 0).all()
    covered = np.zeros(int(counts.sum()), dtype=int)
    for p in range(schedule.num_programs):
        covered[starts[p] : starts[p + 1]] += 1
    assert (covered == 1).all()


@given(lengths, small, st.integers(1, 64), programs)
def test_lean_schedule_covers_once_and_balances(seqlens, heads, block_n, num_programs):
    schedule = lean_schedule(np.array(seqlens, dtype=np.int32), heads, block_n, num_programs)
    assert schedule.num_programs == num_programs and schedule.block_n == block_n
    check_coverage(schedule, seqlens, heads, block_n)
    sizes = np.diff(schedule.program_starts)
    assert sizes.max() - sizes.min() <= 1
    assert (np.diff(sizes) <= 0).all(), "empty ranges must come last"
    check_pieces(schedule)
    # Every program range of size s meets at most s tiles, so the piece count is bounded by O + P.
    assert schedule.total_pieces <= schedule.num_tiles + num_programs


@given(lengths, small, st.integers(1, 64), st.integers(1, 9))
def test_split_kv_schedule_splits_each_tile(seqlens, heads, block_n, num_splits):
    schedule = split_kv_schedule(np.array(seqlens, dtype=np.int64), heads, block_n, num_splits)
    assert schedule.num_programs == len(seqlens) * heads * num_splits
    check_coverage(schedule, seqlens, heads, block_n)
    check_pieces(schedule)
    sizes = np.diff(schedule.program_starts).reshape(-1, num_splits) if schedule.num_programs else np.zeros((0, 1))
    for o, row in enumerate(sizes):
        n = schedule.tile_offsets[o + 1] - schedule.tile_offsets[o]
        assert row.sum() == n and row.max() - row.min() <= 1
        assert schedule.num_pieces[o] == min(n, num_splits)
        if n:
            assert schedule.first_program[o] == o * num_splits


def test_lean_schedule_crosses_tile_boundaries():
    # 2 sequences x 1 head, 3 and 5 LeanTiles of 16 keys, 3 programs of 3, 3 and 2 tiles: program 1 spans both.
    schedule = lean_schedule([48, 80], 1, 16, 3)
    np.testing.assert_array_equal(schedule.tile_offsets, [0, 3, 8])
    np.testing.assert_array_equal(schedule.program_starts, [0, 3, 6, 8])
    np.testing.assert_array_equal(schedule.num_pieces, [1, 2])
    np.testing.assert_array_equal(schedule.first_program, [0, 1])
    assert not schedule.tile_offsets.flags.writeable


@pytest.mark.parametrize(
    ("args", "name", "error"),
    [
        (([[1, 2]], 1, 16, 1), "cache_seqlens", ValueError),
        (([1.5], 1, 16, 1), "cache_seqlens", ValueError),
        (([-1], 1, 16, 1), "cache_seqlens", ValueError),
        (([1], 0, 16, 1), "num_kv_heads", ValueError),
        (([1], 1, 0, 1), "block_n", ValueError),
        (([1], 1, 16, 0), "num_programs", ValueError),
        (([1], 1, 16, 2.0), "num_programs", TypeError),
        (([1], True, 16, 1), "num_kv_heads", TypeError),
    ],
)
def test_lean_schedule_rejects_bad_arguments(args, name, error):
    with pytest.raises(error, match=name):
        lean_schedule(*args)


def test_split_kv_schedule_rejects_zero_splits():
    with pytest.raises(ValueError, match="num_splits"):
        split_kv_schedule([4], 1, 16, 0)
