"""The Pareto front against a brute-force non-dominated filter, ties and duplicate rows included."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelkit.sim.dse.pareto import non_dominated, pareto_mask


def brute_force(values: np.ndarray) -> np.ndarray:
    keep = np.ones(len(values), dtype=bool)
    for i, j in itertools.permutations(range(len(values)), 2):
        if all(values[j] <= values[i]) and any(values[j] < values[i]):
            keep[i] = False
    return keep


@st.composite
def tables(draw):
    objectives = draw(st.integers(2, 4))
    rows = draw(st.integers(0, 30))
    # Values from a handful of integers: ties in single columns and whole duplicate rows are common.
    cells = st.integers(0, 4) | st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
    return np.array(draw(st.lists(st.lists(cells, min_size=objectives, max_size=objectives), min_size=rows,
                                  max_size=rows)), dtype=np.float64).reshape(rows, objectives)  # fmt: skip


@settings(max_examples=100)
@given(tables())
def test_front_equals_brute_force(values):
    np.testing.assert_array_equal(non_dominated(values), brute_force(values))


def test_duplicates_all_kept_and_dominated_dropped():
    values = np.array([[1, 2], [1, 2], [2, 1], [2, 2], [1, 3]], dtype=float)
    assert non_dominated(values).tolist() == [True, True, True, False, False]


def test_maximised_objective_flips_direction():
    table = pd.DataFrame({"latency_ms": [1.0, 2.0, 3.0], "throughput_per_mm2": [1.0, 5.0, 4.0]})
    # Minimise latency, maximise throughput per area: design 2 is beaten by design 1 on both.
    assert pareto_mask(table, ("latency", "throughput_per_area")).tolist() == [True, True, False]


def test_nan_refused():
    with pytest.raises(ValueError, match="NaN"):
        non_dominated(np.array([[1.0, np.nan]]))
