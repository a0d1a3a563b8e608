"""Pareto fronts: the designs no other design beats on every objective at once."""

from __future__ import annotations

import numpy as np

from accelkit.sim.dse.space import OBJECTIVES


def non_dominated(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of `values` [N, objectives] (all minimised) that no other row dominates.

    Row q dominates p when q <= p in every column and q != p. Identical rows do not dominate each other, so
    duplicates on the front are all kept. Rows are visited in lexicographic order: anything that dominates p
    sorts before p, and a dominated dominator has a front row that dominates p too, so p needs comparing only
    with the front found so far.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be [N, objectives], got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("values hold NaN, which no design dominates or is dominated by")
    mask = np.zeros(len(values), dtype=bool)
    front = np.empty((0, values.shape[1]))
    for index in np.lexsort(values.T[::-1]):
        row = values[index]
        dominated = np.any(np.all(front <= row, axis=1) & np.any(front < row, axis=1))
        if not dominated:
            mask[index] = True
            front = np.vstack([front, row])
    return mask


def pareto_mask(table, objectives: tuple[str, ...]) -> np.ndarray:
    """The front of a results DataFrame over `objectives` (names from OBJECTIVES; each has its direction)."""
    columns = [OBJECTIVES[name][0] for name in objectives]
    signs = np.array([OBJECTIVES[name][1] for name in objectives], dtype=np.float64)
    return non_dominated(table[columns].to_numpy(dtype=np.float64) * signs)
