"""bench/out/records.jsonl: one line per benchmark run, the measured points of `accelkit roofline --records`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from accelkit.roofline.devices import _host_key

# Keys a benchmark's result carries for the roofline (flops or ops, minimum DRAM bytes, seconds of that work).
WORK_KEYS = ("flops", "ops", "bytes", "seconds")


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def make_record(result: dict, argv: list[str]) -> dict:
    """The record of one benchmark result: its name and metric, work, bytes, seconds (None where the result has
    no plain number under that key), the device it ran on ("host: ..." unless the result names another as
    `roofline_device`: "simulated: <accelerator>" for a simulator benchmark, "cuda: <GPU>" for a GPU run) and when."""
    record = {"name": result.get("name"), "metric": result.get("metric")}
    record.update({key: _number(result.get(key)) for key in WORK_KEYS})
    # What the work counts when it is not FLOPs ("binary op" for the XNOR-popcount GEMM): such points get only the
    # memory roof (roofline.points.judge).
    if isinstance(result.get("unit"), str):
        record["unit"] = result["unit"]
    record["device"] = result.get("roofline_device") or f"host: {_host_key()}"
    record["argv"] = list(argv)
    record["python"] = sys.version.split()[0]
    record["unix_time"] = time.time()
    return record


def append_record(result: dict, argv: list[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(make_record(result, argv)) + "\n")
    return path
