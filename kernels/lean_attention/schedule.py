"""The stream-K partition of decode attention (Lean Attention) and Flash-Decoding's fixed split; pure Python/NumPy.

The work unit is a LeanTile: one block of `block_n` keys of one output tile. An output tile is one
(sequence b, KV head h) pair, index o = b * num_kv_heads + h; it covers every query head of the GQA group and every
query row of the chunk, so a KV block is read once for all of them. Output tile o owns ceil(cache_seqlens[b] /
block_n) LeanTiles, numbered globally and contiguously: [tile_offsets[o], tile_offsets[o + 1]).

`lean_schedule` hands program p the contiguous global range [program_starts[p], program_starts[p + 1]); the ranges
cover every LeanTile exactly once, their sizes differ by at most one, and a range may cross output-tile boundaries
(README.md). The first (total % P) programs get the extra tile, so every empty range sits at the end and the
programs that meet one output tile are consecutive: tile o is cut into num_pieces[o] pieces, computed by programs
first_program[o], ..., first_program[o] + num_pieces[o] - 1, and a kernel stores the partial of program p for tile o
at piece slot piece_offsets[o] + (p - first_program[o]).

`split_kv_schedule` describes Flash-Decoding's fixed split in the same shape: num_splits programs per output tile,
program o * num_splits + s covering the s-th of num_splits nearly equal contiguous KV ranges of tile o.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

__all__ = ["LeanSchedule", "lean_schedule", "split_kv_schedule"]


@dataclass(frozen=True)
class LeanSchedule:
    """A partition of the LeanTiles among programs. Arrays are int64 and read-only.

    tile_offsets [O + 1]: output tile o owns global LeanTiles [tile_offsets[o], tile_offsets[o + 1]).
    program_starts [P + 1]: program p covers global LeanTiles [program_starts[p], program_starts[p + 1]).
    first_program [O]: the first program whose range meets tile o (for a tile with no LeanTile, the program whose
        range would hold position tile_offsets[o], clipped to P - 1; it is never used since num_pieces is 0).
    num_pieces [O]: how many programs' ranges meet tile o (0 for a sequence of length 0).
    piece_offsets [O + 1]: exclusive prefix sum of num_pieces, the slot of tile o's first piece in a compact buffer
        of piece_offsets[O] partials.
    program_first_tile [P]: the output tile holding program p's first LeanTile (O for an empty range).
    """

    tile_offsets: np.ndarray
    program_starts: np.ndarray
    block_n: int
    num_programs: int
    num_kv_heads: int
    first_program: np.ndarray
    num_pieces: np.ndarray
    piece_offsets: np.ndarray
    program_first_tile: np.ndarray

    @property
    def num_tiles(self) -> int:
        """O: the number of output tiles (B * num_kv_heads)."""
        return len(self.tile_offsets) - 1

    @property
    def total_lean_tiles(self) -> int:
        """The number of LeanTiles over all output tiles."""
        return int(self.tile_offsets[-1])

    @property
    def total_pieces(self) -> int:
        """The number of (output tile, program) pieces, the rows of the partial buffer."""
        return int(self.piece_offsets[-1])


def lean_schedule(cache_seqlens, num_kv_heads: int, block_n: int, num_programs: int) -> LeanSchedule:
    """Stream-K: split the LeanTiles of every (sequence, KV head) into num_programs contiguous equal ranges.

    cache_seqlens [B] non-negative integers (keys per sequence), num_kv_heads, block_n and num_programs >= 1.
    Program p gets q + 1 LeanTiles if p < r else q, where (q, r) = divmod(total, num_programs).
    """
    tile_offsets = _tile_offsets(cache_seqlens, num_kv_heads, block_n)
    programs = _positive_int("num_programs", num_programs)
    total = int(tile_offsets[-1])
    base, extra = divmod(total, programs)
    p = np.arange(programs + 1, dtype=np.int64)
    program_starts = p * base + np.minimum(p, extra)
    return _build(tile_offsets, program_starts, int(block_n), _positive_int("num_kv_heads", num_kv_heads))


def split_kv_schedule(cache_seqlens, num_kv_heads: int, block_n: int, num_splits: int) -> LeanSchedule:
    """Flash-Decoding's fixed split: each output tile's LeanTiles cut into num_splits nearly equal contiguous ranges.

    There are O * num_splits programs; program o * num_splits + s covers split s of tile o. Splits get
    ceil or floor of n_o / num_splits tiles, the larger ones first, so a tile with fewer than num_splits LeanTiles
    leaves its last splits empty and num_pieces[o] = min(n_o, num_splits).
    """
    tile_offsets = _tile_offsets(cache_seqlens, num_kv_heads, block_n)
    splits = _positive_int("num_splits", num_splits)
    counts = np.diff(tile_offsets)
    base, extra = np.divmod(counts, splits)
    s = np.arange(splits, dtype=np.int64)
    # sizes [O, S]: tile o's split s holds base_o + 1 LeanTiles when s < extra_o, else base_o.
    sizes = base[:, None] + (s[None, :] < extra[:, None])
    program_starts = np.concatenate([[0], np.cumsum(sizes.reshape(-1))]).astype(np.int64)
    return _build(tile_offsets, program_starts, int(block_n), _positive_int("num_kv_heads", num_kv_heads))


def _build(tile_offsets: np.ndarray, program_starts: np.ndarray, block_n: int, num_kv_heads: int) -> LeanSchedule:
    """Derive the per-tile piece arrays from the two partitions; requires empty program ranges never to sit
    between two non-empty ranges that meet the same tile (both schedules above put them after the tile's pieces)."""
    programs = len(program_starts) - 1
    tiles = len(tile_offsets) - 1
    first_tile = tile_offsets[:-1]
    last_tile = tile_offsets[1:] - 1
    # The program that holds global LeanTile g is the last p with program_starts[p] <= g: searchsorted 'right' - 1
    # skips the empty ranges that start at g too.
    first_program = np.clip(np.searchsorted(program_starts, first_tile, side="right") - 1, 0, programs - 1)
    last_program = np.clip(np.searchsorted(program_starts, last_tile, side="right") - 1, 0, programs - 1)
    has_tiles = tile_offsets[1:] > tile_offsets[:-1]
    num_pieces = np.where(has_tiles, last_program - first_program + 1, 0).astype(np.int64)
    piece_offsets = np.concatenate([[0], np.cumsum(num_pieces)]).astype(np.int64)
    nonempty = program_starts[1:] > program_starts[:-1]
    located = np.searchsorted(tile_offsets, program_starts[:-1], side="right") - 1
    program_first_tile = np.where(nonempty, np.clip(located, 0, max(tiles - 1, 0)), tiles).astype(np.int64)
    arrays = dict(
        tile_offsets=tile_offsets,
        program_starts=program_starts.astype(np.int64),
        first_program=first_program.astype(np.int64),
        num_pieces=num_pieces,
        piece_offsets=piece_offsets,
        program_first_tile=program_first_tile,
    )
    for value in arrays.values():
        value.setflags(write=False)
    return LeanSchedule(block_n=block_n, num_programs=programs, num_kv_heads=num_kv_heads, **arrays)


def _tile_offsets(cache_seqlens, num_kv_heads: int, block_n: int) -> np.ndarray:
    lengths = _seqlens(cache_seqlens)
    heads = _positive_int("num_kv_heads", num_kv_heads)
    block = _positive_int("block_n", block_n)
    per_sequence = -(-lengths // block)
    counts = np.repeat(per_sequence, heads)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return offsets


def _seqlens(cache_seqlens) -> np.ndarray:
    lengths = np.asarray(cache_seqlens)
    if lengths.ndim != 1:
        raise ValueError(f"cache_seqlens must be one-dimensional [B], got shape {lengths.shape}")
    if lengths.size and not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"cache_seqlens must hold integers, got dtype {lengths.dtype}")
    lengths = lengths.astype(np.int64)
    if (lengths < 0).any():
        raise ValueError(f"cache_seqlens must be non-negative, got minimum {int(lengths.min())}")
    return lengths


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {number}")
    return number
