"""An on-disk cache of simulated layers keyed by (layer shape, hardware, mode), in one sqlite file.

Every sweep that points at the same file shares it: a re-run, or a sweep overlapping an earlier one, simulates
only the (layer, hardware, mode) triples not already stored. Rows are written and committed as each task comes
back, so an interrupted sweep keeps all finished work. Only the parent process writes (workers return rows), so
sqlite's single-writer rule is never in the way; WAL mode lets two sweeps on one file read while one writes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from accelkit.sim.hardware import Hardware
from accelkit.sim.workloads import Conv, Gemm

# What a layer row keeps of LayerStats (plus the DRAM and SRAM word totals of accelkit.sim.report).
LAYER_COLUMNS = (
    "macs",
    "total_cycles",
    "compute_cycles",
    "stall_cycles",
    "dram_words",
    "sram_words",
    "mac_energy_pj",
    "ifmap_energy_pj",
    "filter_energy_pj",
    "ofmap_energy_pj",
)
# Trace offsets and the run name change no number a sweep reads.
_IGNORED_FIELDS = ("ifmap_offset", "filter_offset", "ofmap_offset", "run_name")
SCHEMA_VERSION = 1


def default_cache_path() -> Path:
    """$XDG_CACHE_HOME/accelkit/dse.sqlite (~/.cache/accelkit/dse.sqlite when XDG_CACHE_HOME is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "accelkit" / "dse.sqlite"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@functools.lru_cache(maxsize=1 << 16)
def hardware_key(hw: Hardware) -> str:
    """A digest of every Hardware field that changes a layer's numbers (memoised: dataclasses.asdict is slow and a
    sweep asks for each design's key several times)."""
    fields = dataclasses.asdict(hw)
    for name in _IGNORED_FIELDS:
        fields.pop(name)
    return _digest(json.dumps(fields, sort_keys=True))


def layer_key(layer: Gemm | Conv) -> str:
    return _digest(repr(dataclasses.replace(layer, name="")))


class ResultCache:
    """`lookup` the rows stored for some hardware keys, `store` new ones. `path=None` keeps them in memory."""

    def __init__(self, path: str | Path | None):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(":memory:" if path is None else str(path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a killed sweep still keeps every committed
        # task (only a power cut can drop the last few), and a commit per task stops costing an fsync.
        self._db.execute("PRAGMA synchronous=NORMAL")
        columns = ", ".join(f"{name} REAL NOT NULL" for name in LAYER_COLUMNS)
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS layers_v{SCHEMA_VERSION} (hw TEXT NOT NULL, layer TEXT NOT NULL, "
            f"mode TEXT NOT NULL, {columns}, PRIMARY KEY (hw, layer, mode)) WITHOUT ROWID"
        )
        self._db.commit()

    def lookup(self, hw_keys: Iterable[str], mode: str) -> dict[tuple[str, str], tuple]:
        """(hw key, layer key) -> row of LAYER_COLUMNS, for every stored row of these hardware keys."""
        keys = sorted(set(hw_keys))
        found: dict[tuple[str, str], tuple] = {}
        # sqlite caps bound parameters per statement (32766 by default since 3.32); 500 stays far below.
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = (
                f"SELECT hw, layer, {', '.join(LAYER_COLUMNS)} FROM layers_v{SCHEMA_VERSION} "
                f"WHERE mode = ? AND hw IN ({marks})"
            )
            for hw, layer, *row in self._db.execute(query, (mode, *chunk)):
                found[hw, layer] = tuple(row)
        return found

    def store(self, mode: str, rows: Iterable[tuple[str, str, tuple]]) -> None:
        marks = ",".join("?" * (3 + len(LAYER_COLUMNS)))
        with self._db:
            self._db.executemany(
                f"INSERT OR REPLACE INTO layers_v{SCHEMA_VERSION} VALUES ({marks})",
                ((hw, layer, mode, *row) for hw, layer, row in rows),
            )

    def __len__(self) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM layers_v{SCHEMA_VERSION}").fetchone()[0]

    def close(self) -> None:
        self._db.close()
