"""Functional mode: real numbers pushed through the fold schedule the timing engine charges cycles for.

A layer is lowered to operand GEMMs (one per convolution group): A [M, K] (im2col of the NHWC input), B [K, N]
(the HWIO filter) and C [M, N]. Every fold of `engine.fold_schedule` is executed the way its dataflow runs it:

- os: the PE at (row i, col j) owns C[m_i, n_j] and accumulates A[m_i, k]·B[k, n_j] while k streams by;
- ws: the PE at (i, j) holds B[k_i, n_j]; rows of A stream in and each column sums its products into C[m, n_j];
- is: the PE at (i, j) holds A[m_j, k_i]; columns of B stream in and each column sums into C[m_j, n].

Before any arithmetic the schedule is checked to map every MAC (m, n, k) of every group exactly once, so a
dropped or repeated fold raises `ScheduleError` instead of returning a wrong or lucky result. Integer inputs
accumulate in int32 with two's-complement wrap-around, as an int8 MAC array does, so results are exact;
floats accumulate in float32.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from accelkit.sim.compute import cycles_per_fold, fold_counts, spatial_dims
from accelkit.sim.engine import fold_schedule
from accelkit.sim.hardware import Hardware
from accelkit.sim.workloads import Conv, Gemm, show_int

DATAFLOWS = ("os", "ws", "is")


class ScheduleError(ValueError):
    """A fold schedule that misses or repeats a MAC, or reaches outside the operand GEMM."""


@dataclass(frozen=True)
class Tile:
    """One fold in operand-GEMM coordinates: half-open ranges of M, N and K for convolution group `group`.
    `first` marks the fold that starts its output tile from zero instead of adding to earlier partial sums;
    `cycles` is what the timing engine charges for it (None when unknown)."""

    group: int
    m: tuple[int, int]
    n: tuple[int, int]
    k: tuple[int, int]
    first: bool = True
    cycles: int | None = None


@dataclass(frozen=True)
class Array:
    """The physical array for cycle-level runs; `compat` means the engine charges SCALE-Sim's cycles, which
    leave out the OS output drain (reference/simulators.md §1.6)."""

    rows: int
    cols: int
    compat: bool = False


def conv_output_size(layer: Conv) -> tuple[int, int]:
    ho = (layer.ifmap_h + 2 * layer.pad_h - layer.filter_h) // layer.stride_h + 1
    wo = (layer.ifmap_w + 2 * layer.pad_w - layer.filter_w) // layer.stride_w + 1
    return ho, wo


def gemm_dims(layer: Gemm | Conv) -> tuple[int, int, int, int]:
    """(groups, M, N, K) of the operand GEMMs of `layer`; N and K are per group."""
    if isinstance(layer, Gemm):
        return 1, layer.m, layer.n, layer.k
    ho, wo = conv_output_size(layer)
    g = layer.groups
    return g, layer.batch * ho * wo, layer.num_filters // g, layer.filter_h * layer.filter_w * layer.channels // g


def im2col(x: np.ndarray, layer: Conv) -> np.ndarray:
    """[batch, H, W, C] -> [groups, batch·Ho·Wo, R·S·C/groups], window index (r, s, c) with c fastest."""
    ph, pw = layer.pad_h, layer.pad_w
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (layer.filter_h, layer.filter_w), axis=(1, 2))
    windows = windows[:, :: layer.stride_h, :: layer.stride_w]  # [B, Ho, Wo, C, R, S]
    ho, wo = conv_output_size(layer)
    windows = windows[:, :ho, :wo].transpose(0, 1, 2, 4, 5, 3)  # [B, Ho, Wo, R, S, C]
    g, m, _, k = gemm_dims(layer)
    cg = layer.channels // g
    groups = [windows[..., i * cg : (i + 1) * cg].reshape(m, k) for i in range(g)]
    return np.stack(groups)


def filter_matrix(w: np.ndarray, layer: Conv) -> np.ndarray:
    """HWIO filter [R, S, C/groups, F] -> [groups, R·S·C/groups, F/groups]."""
    g, _, n, k = gemm_dims(layer)
    return np.stack([w[..., i * n : (i + 1) * n].reshape(k, n) for i in range(g)])


def check_coverage(tiles: Iterable[Tile], groups: int, m: int, n: int, k: int) -> int:
    """Prove that `tiles` cover every (group, m, n, k) exactly once; return the number of tiles.

    Tiles are boxes, so the check runs on the grid cut by their edges: every point of a cell is covered by
    the same tiles, and a few hundred cells stand for the up to 10^9 MACs of one layer."""
    tiles = list(tiles)
    for tile in tiles:
        for axis, (lo, hi), size in (("m", tile.m, m), ("n", tile.n, n), ("k", tile.k, k)):
            if not 0 <= lo < hi <= size:
                raise ScheduleError(f"tile {tile} has {axis} range [{lo}, {hi}) outside [0, {size})")
        if not 0 <= tile.group < groups:
            raise ScheduleError(f"tile {tile} names group {tile.group} of {groups}")
    sizes = {"m": m, "n": n, "k": k}
    edges = [np.unique([0, size, *(r for t in tiles for r in getattr(t, axis))]) for axis, size in sizes.items()]
    count = np.zeros((groups, *(len(e) - 1 for e in edges)), dtype=np.int64)
    for tile in tiles:
        box = tuple(slice(*np.searchsorted(e, getattr(tile, axis))) for e, axis in zip(edges, "mnk", strict=True))
        count[(tile.group, *box)] += 1
    bad = np.argwhere(count != 1)
    if len(bad):
        g, i, j, l = bad[0]
        times = count[g, i, j, l]
        word = "never" if times == 0 else f"{times} times"
        raise ScheduleError(
            f"MAC (group {g}, m {edges[0][i]}, n {edges[1][j]}, k {edges[2][l]}) is mapped {word}; "
            f"{len(bad)} of {count.size} schedule cells are wrong"
        )
    return len(tiles)


_POISON = {"i": 0x5A5A5A5A, "f": np.nan}


def _accumulator_dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return np.dtype(np.int32)
    if np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating):
        return np.dtype(np.float32)
    raise TypeError(f"operands must be both integer or both floating, got {a.dtype} and {b.dtype}")


def _products(a: np.ndarray, b: np.ndarray, acc: np.dtype) -> np.ndarray:
    """a @ b rounded to the accumulator. Integers go through float64 BLAS, exact while |sum| < 2^53, which an
    int8 fold of up to 2^38 products cannot exceed, then wrap to int32 like the hardware adder."""
    if acc == np.int32:
        exact = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
        return exact.astype(np.int32)
    return a.astype(np.float32) @ b.astype(np.float32)


def _fold_partial(tile: Tile, dataflow: str, a: np.ndarray, b: np.ndarray, acc: np.dtype) -> np.ndarray:
    """One fold's partial sums C[m, n] over its k range, each dataflow holding a different operand in its PEs."""
    ms, ns, ks = slice(*tile.m), slice(*tile.n), slice(*tile.k)
    if dataflow == "os":
        return _products(a[ms, ks], b[ks, ns], acc)  # [rows=m, cols=n] held in the PEs, drained at the end
    if dataflow == "ws":
        weights = b[ks, ns]  # [rows=k, cols=n] pinned in the PEs
        return _products(a[ms, ks], weights, acc)  # row t of A enters on step t; columns reduce over k
    inputs = a[ms, ks].T  # [rows=k, cols=m] pinned in the PEs
    return _products(b[ks, ns].T, inputs, acc).T  # column t of B streams in; columns reduce over k


def _emulated_partial(tile: Tile, dataflow: str, a: np.ndarray, b: np.ndarray, acc: np.dtype, array: Array):
    """The same partial sums from the register-level emulator, whose cycle count must equal the engine's."""
    from accelkit.sim.systolic import output_stationary_fold, stationary_fold

    ms, ns, ks = slice(*tile.m), slice(*tile.n), slice(*tile.k)
    a_tile, b_tile = a[ms, ks].astype(acc), b[ks, ns].astype(acc)
    if dataflow == "os":
        run = output_stationary_fold(a_tile, b_tile, array.rows, array.cols)
        partial, charged = run.output, run.cycles - run.drain if array.compat else run.cycles
    elif dataflow == "ws":
        run = stationary_fold(b_tile, a_tile, array.rows, array.cols)
        partial, charged = run.output, run.cycles
    else:
        run = stationary_fold(a_tile.T, b_tile.T, array.rows, array.cols)
        partial, charged = run.output.T, run.cycles
    if tile.cycles is not None and charged != tile.cycles:
        raise ScheduleError(
            f"fold {tile} takes {charged} cycles on the emulated array; the engine charges {tile.cycles}"
        )
    return partial


def _run_tile(tile: Tile, dataflow: str, a: np.ndarray, b: np.ndarray, out: np.ndarray, array: Array | None) -> None:
    """Add one fold's partial sums into `out`."""
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")
    if array is None:
        partial = _fold_partial(tile, dataflow, a, b, out.dtype)
    else:
        partial = _emulated_partial(tile, dataflow, a, b, out.dtype, array)
    ms, ns = slice(*tile.m), slice(*tile.n)
    # A wrong `first` flag either drops earlier partial sums or adds stale ones, so the output exposes it.
    if tile.first:
        out[ms, ns] = partial
    else:
        out[ms, ns] += partial


def run_gemms(
    a: np.ndarray, b: np.ndarray, tiles: Iterable[Tile], dataflow: str, *, array: Array | None = None
) -> np.ndarray:
    """Execute `tiles` on operands A [groups, M, K] and B [groups, K, N]; returns C [groups, M, N]. With `array`,
    every fold runs cycle by cycle on the register-level emulator and must take the cycles its tile states."""
    groups, m, k = a.shape
    if b.shape[:2] != (groups, k):
        raise ValueError(f"operand shapes {a.shape} and {b.shape} do not chain")
    n = b.shape[2]
    tiles = list(tiles)
    check_coverage(tiles, groups, m, n, k)
    acc = _accumulator_dtype(a, b)
    with np.errstate(over="ignore"):
        # Poisoned, not zeroed: a tile whose first fold is not flagged `first` would otherwise add to clean zeros.
        out = np.full((groups, m, n), _POISON[acc.kind], dtype=acc)
        for tile in tiles:
            _run_tile(tile, dataflow, a[tile.group], b[tile.group], out[tile.group], array)
    return out


def layer_tiles(layer: Gemm | Conv, hw: Hardware, *, mode: str = "native") -> list[Tile]:
    """The engine's fold schedule for `layer` on `hw`, repeated for every convolution group. The GEMM sizes are
    the workload's own (`layer.gemms()`), so a disagreement with this module's im2col geometry fails the
    coverage check instead of going unnoticed."""
    dims = layer.gemms()
    folds = list(fold_schedule(dims.m, dims.n, dims.k, hw, mode=mode))
    return [
        Tile(i, (f.m0, f.m1), (f.n0, f.n1), (f.k0, f.k1), f.first, f.cycles) for i in range(dims.count) for f in folds
    ]


def operand_shapes(layer: Gemm | Conv) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of the two inputs: A [M, K] and B [K, N] for a GEMM; the NHWC input [batch, H, W, C] and the
    HWIO filter [R, S, C/groups, F] for a convolution."""
    if isinstance(layer, Gemm):
        return (layer.m, layer.k), (layer.k, layer.n)
    x = (layer.batch, layer.ifmap_h, layer.ifmap_w, layer.channels)
    return x, (layer.filter_h, layer.filter_w, layer.channels // layer.groups, layer.num_filters)


def random_operands(layer: Gemm | Conv, dtype: np.dtype | type, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs for `layer`: uniform over the full int8 range for integers, standard normal for floats."""
    rng = np.random.default_rng(seed)
    shapes = operand_shapes(layer)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return tuple(rng.integers(info.min, info.max, size=s, endpoint=True, dtype=dtype) for s in shapes)
    return tuple(rng.standard_normal(s).astype(dtype) for s in shapes)


def _check_operands(layer: Gemm | Conv, a: np.ndarray, b: np.ndarray) -> None:
    want = operand_shapes(layer)
    if (a.shape, b.shape) != want:
        raise ValueError(
            f"operands for {layer.name!r} must have shapes {want[0]} and {want[1]}, got {a.shape} and {b.shape}"
        )


def run_layer(
    layer: Gemm | Conv, hw: Hardware, a: np.ndarray, b: np.ndarray, *, mode: str = "native", cycle_level: bool = False
) -> np.ndarray:
    """Compute `layer` on `hw` fold by fold: the GEMM output [M, N], or the convolution output [batch, Ho, Wo, F]
    (NHWC). int8 inputs give int32 outputs, float32 inputs float32 outputs. `cycle_level=True` runs every fold
    on the register-level emulator (sim/systolic.py), about R x C x cycles work per fold, and checks that each
    takes exactly the cycles the engine charges."""
    _check_operands(layer, a, b)
    check_functional_size(layer, hw, cycle_level=cycle_level)
    array = Array(hw.rows, hw.cols, mode == "compat") if cycle_level else None
    return _execute(layer, hw.dataflow, a, b, layer_tiles(layer, hw, mode=mode), array)


def _execute(layer: Gemm | Conv, dataflow: str, a: np.ndarray, b: np.ndarray, tiles: list[Tile], array: Array | None):
    if isinstance(layer, Gemm):
        return run_gemms(a[None], b[None], tiles, dataflow, array=array)[0]
    out = run_gemms(im2col(a, layer), filter_matrix(b, layer), tiles, dataflow, array=array)  # [G, M, F/G]
    ho, wo = conv_output_size(layer)
    return out.transpose(1, 0, 2).reshape(layer.batch, ho, wo, layer.num_filters)


def _oracle_dtype(a: np.ndarray, b: np.ndarray, terms: int) -> type:
    """float64 for floats, and for integers whose every sum is exact in its 53-bit mantissa (int8 operands:
    products below 2^14, so up to 2^39 terms), which lets BLAS do the work; int64 otherwise."""
    if not np.issubdtype(a.dtype, np.integer):
        return np.float64
    largest = max(int(np.abs(a.astype(np.int64)).max(initial=1)), 1) * max(
        int(np.abs(b.astype(np.int64)).max(initial=1)), 1
    )
    return np.float64 if terms * largest < 2**53 else np.int64


def reference(layer: Gemm | Conv, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The oracle: NumPy GEMM, or a direct convolution summed over the R x S filter taps (no im2col, no folds).
    Integer results are exact and wrapped to int32; float results are float64."""
    _check_operands(layer, a, b)
    terms = layer.k if isinstance(layer, Gemm) else layer.filter_h * layer.filter_w * layer.channels // layer.groups
    integer = np.issubdtype(a.dtype, np.integer)
    wide = _oracle_dtype(a, b, terms)
    a, b = a.astype(wide), b.astype(wide)
    out = a @ b if isinstance(layer, Gemm) else _direct_conv(layer, a, b)
    return out.astype(np.int64).astype(np.int32) if integer else out


def _direct_conv(layer: Conv, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    ho, wo = conv_output_size(layer)
    sh, sw, g = layer.stride_h, layer.stride_w, layer.groups
    padded = np.pad(x, ((0, 0), (layer.pad_h, layer.pad_h), (layer.pad_w, layer.pad_w), (0, 0)))
    cg, fg = layer.channels // g, layer.num_filters // g
    out = np.zeros((layer.batch, ho, wo, g, fg), dtype=x.dtype)
    for r in range(layer.filter_h):
        for s in range(layer.filter_w):
            tap = padded[:, r : r + sh * (ho - 1) + 1 : sh, s : s + sw * (wo - 1) + 1 : sw]  # [B, Ho, Wo, C]
            taps = tap.reshape(layer.batch, ho, wo, g, cg)
            weights = w[r, s].reshape(cg, g, fg)  # filter f of group i is column i * fg + f
            out += np.einsum("bhwgc,cgf->bhwgf", taps, weights)
    return out.reshape(layer.batch, ho, wo, layer.num_filters)


# The cycle-level emulator takes one NumPy step per cycle, about 24 us each measured here (13 M steps: 310 s), so
# 2^18 cycles bound a check to about 6 s.
FUNCTIONAL_MAX_EMULATED_CYCLES = 2**18
# Functional mode holds every operand, its im2col and a float64 copy of each fold's tiles, and one Tile per fold:
# 2^25 elements is 256 MiB as float64; ResNet-50's largest im2col (conv1: 12,544 x 147) is 1.8 M elements.
FUNCTIONAL_MAX_ELEMENTS = 2**25
FUNCTIONAL_MAX_FOLDS = 2**20


def check_functional_size(layer: Gemm | Conv, hw: Hardware, *, cycle_level: bool = False) -> None:
    """Raise ValueError naming the layer and the size when functional mode would not fit in memory. The
    cycle-level emulator also holds the array's registers (rows x cols) and each fold's skewed inputs."""
    dims = layer.gemms()
    sizes = {
        "A (im2col input)": dims.count * dims.m * dims.k,
        "B (weights)": dims.count * dims.k * dims.n,
        "C (outputs)": dims.count * dims.m * dims.n,
    }
    sr, sc, _ = spatial_dims(dims.m, dims.n, dims.k, hw.dataflow)
    row_folds, col_folds = fold_counts(sr, sc, hw.rows, hw.cols)
    checks = [(f"{name} elements", size, FUNCTIONAL_MAX_ELEMENTS) for name, size in sizes.items()]
    checks.append(("folds", dims.count * row_folds * col_folds, FUNCTIONAL_MAX_FOLDS))
    if cycle_level:
        _, _, t = spatial_dims(dims.m, dims.n, dims.k, hw.dataflow)
        checks.append(("PE registers (rows x cols)", hw.rows * hw.cols, FUNCTIONAL_MAX_ELEMENTS))
        checks.append(("skewed input slots per fold", (hw.rows + hw.cols) * t, FUNCTIONAL_MAX_ELEMENTS))
        cycles = dims.count * row_folds * col_folds * cycles_per_fold(hw.rows, hw.cols, t, hw.dataflow, compat=False)
        checks.append(("cycles to emulate", cycles, FUNCTIONAL_MAX_EMULATED_CYCLES))
    for what, value, limit in checks:
        if value > limit:
            raise ValueError(
                f"functional mode: layer {layer.name!r} has {show_int(value)} {what}, over the {limit:,} it checks "
                "in bounded memory; simulate it without functional mode"
            )


def verify_layer(
    layer: Gemm | Conv, hw: Hardware, *, mode: str = "native", seed: int = 0, cycle_level: bool = False
) -> int:
    """Run `layer` on random int8 data through the fold schedule and demand bit-exact agreement with the oracle;
    returns the number of folds executed. Raises ScheduleError on a mismatch, ValueError when the layer is too big
    to hold in memory (`check_functional_size`)."""
    check_functional_size(layer, hw, cycle_level=cycle_level)
    a, b = random_operands(layer, np.int8, seed=seed)
    tiles = layer_tiles(layer, hw, mode=mode)
    array = Array(hw.rows, hw.cols, mode == "compat") if cycle_level else None
    got = _execute(layer, hw.dataflow, a, b, tiles, array)
    want = reference(layer, a, b)
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        raise ScheduleError(f"{layer.name}: {len(bad)} outputs differ from the oracle, first at {tuple(bad[0])}")
    return len(tiles)
