"""Points on a roofline: analytic (an op's cost model at a shape), measured (bench/out/records.jsonl) and simulated
(each layer of an accelkit.sim run). Each point knows its work, bytes and, when timed, its seconds; `judge` adds
the device's attainable bound at the point's intensity and the fraction of it reached."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from accelkit.roofline.costs import cost
from accelkit.roofline.devices import Device


@dataclass(frozen=True)
class Point:
    name: str
    kind: str  # "analytic", "measured" or "simulated"
    work: float
    unit: str
    bytes: float
    seconds: float | None = None
    device: str = ""
    bound_ops_per_s: float | None = None
    bound_kind: str | None = None  # "memory", "compute" or "memory only (...)": which roof bounds the point
    note: str = ""

    @property
    def intensity(self) -> float:
        return self.work / self.bytes if self.bytes else math.inf

    @property
    def achieved_ops_per_s(self) -> float | None:
        return self.work / self.seconds if self.seconds else None

    @property
    def fraction(self) -> float | None:
        achieved = self.achieved_ops_per_s
        return achieved / self.bound_ops_per_s if achieved is not None and self.bound_ops_per_s else None

    def row(self) -> dict:
        bound = self.bound_ops_per_s
        return {
            "name": self.name,
            "kind": self.kind,
            "work": self.work,
            "unit": self.unit,
            "bytes": self.bytes,
            "intensity": self.intensity,
            "seconds": self.seconds,
            "achieved_ops_per_s": self.achieved_ops_per_s,
            "bound_ops_per_s": bound,
            "bound": self.bound_kind,
            "fraction": self.fraction,
            "device": self.device,
            "note": self.note,
        }


# The units a device's compute roofs count: floating-point operations (datasheets, the host's matmul) and a
# simulated array's multiply-add ops. Binary ops (XNOR + popcount) and elementwise ops run on other units, whose
# peaks no roof here gives, so only the memory roof bounds them.
COMPUTE_ROOF_UNITS = ("FLOP", "op")


def judge(point: Point, device: Device) -> Point:
    """`point` with the device's attainable rate at its intensity and which roof sets it; an untimed analytic
    point gets the time the bound implies (so it sits on the roof)."""
    if point.unit not in COMPUTE_ROOF_UNITS:
        return _judge_memory_only(point, device)
    bound = device.bound(point.intensity)
    memory = device.bandwidth_bytes_per_s is not None and point.intensity < device.ridge()
    seconds = point.work / bound if point.seconds is None and point.kind == "analytic" else point.seconds
    kind = "memory" if memory else "compute"
    return replace(point, bound_ops_per_s=bound, bound_kind=kind, device=device.name, seconds=seconds)


def _judge_memory_only(point: Point, device: Device) -> Point:
    bandwidth = device.bandwidth_bytes_per_s
    bound = point.intensity * bandwidth if bandwidth and math.isfinite(point.intensity) else None
    seconds = point.seconds
    if seconds is None and point.kind == "analytic" and bound:
        seconds = point.work / bound
    kind = f"memory only (no {point.unit} roof)"
    return replace(point, bound_ops_per_s=bound, bound_kind=kind, device=device.name, seconds=seconds)


def analytic_point(op: str, shape: dict) -> Point:
    c = cost(op, **shape)
    label = ",".join(f"{k}={v}" for k, v in shape.items())
    return Point(f"{op}({label})", "analytic", c.work, c.unit, c.bytes)


def parse_shape(text: str) -> dict:
    """'B=1,T=8192,H=32,D=128,causal=true' -> {'b': 1, 't': 8192, 'h': 32, 'd': 128, 'causal': True}; a value
    with ':' separated numbers is a list (lengths=100:200:300)."""
    shape = {}
    for item in filter(None, text.split(",")):
        if "=" not in item:
            raise ValueError(f"shape: expected KEY=VALUE, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        shape[key.lower()] = _value(value)
    return shape


def _value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if ":" in text:
        return [int(part) for part in text.split(":")]
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def record_points(path: str | Path, device: str | None = None) -> list[Point]:
    """Measured points from a records.jsonl: each record with work (flops or ops), bytes and seconds numbers.
    `device` keeps only records whose device field starts with it ("host" for this machine's benchmarks,
    "simulated: <name>" for a simulator benchmark's accelerator)."""
    points = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ValueError(f"{path}:{number}: not a JSON line") from None
        if device is not None and not str(record.get("device", "")).startswith(device):
            continue
        work = record.get("flops") if record.get("flops") is not None else record.get("ops")
        unit = record.get("unit") or ("FLOP" if record.get("flops") is not None else "op")
        values = (work, record.get("bytes"), record.get("seconds"))
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
            points.append(Point(record.get("name", f"record {number}"), "measured", *values[:1], unit, *values[1:],
                                note=str(record.get("device", ""))))  # fmt: skip
    return points


def simulated_points(network: str, hardware, *, batch: int = 1, seq_len: int | None = None) -> list[Point]:
    """One point per layer of `network` simulated on `hardware`: 2 x MACs over the simulated DRAM traffic, at the
    simulated time from the first prefetch (fill and drain, folds that leave PEs idle and memory stalls included)."""
    from accelkit.sim.api import simulate
    from accelkit.sim.report import dram_words

    report = simulate(network, hardware, batch=batch, seq_len=seq_len)
    hw = report.hardware
    points = []
    for result in report.layers:
        s = result.stats
        note = f"util {s.overall_util_pct:.1f}%, map eff {s.mapping_efficiency_pct:.1f}%, stalls {s.stall_cycles:,}"
        # The prefetch before cycle 0 moves DRAM data too, so the layer's time starts there.
        cycles = max(s.total_cycles, s.total_cycles_incl_prefetch)
        points.append(Point(result.name, "simulated", 2.0 * s.macs, "op", dram_words(s) * hw.word_bytes,
                            cycles / (hw.clock_mhz * 1e6), note=note))  # fmt: skip
    return points


def layer_min_bytes(layer, word_bytes: int = 1) -> int:
    """Minimum DRAM bytes of a simulator layer: its inputs read once and its output written once."""
    from accelkit.sim.workloads import Gemm

    if isinstance(layer, Gemm):
        return (layer.m * layer.k + layer.k * layer.n + layer.m * layer.n) * word_bytes
    ifmap = layer.batch * layer.ifmap_h * layer.ifmap_w * layer.channels
    filters = layer.filter_h * layer.filter_w * (layer.channels // layer.groups) * layer.num_filters
    ofmap = layer.batch * layer.ofmap_h * layer.ofmap_w * layer.num_filters
    return (ifmap + filters + ofmap) * word_bytes


def simulated_record(report) -> dict:
    """The roofline keys of a simulator benchmark: 2 x MACs, minimum DRAM bytes and simulated seconds (first
    prefetch included) of a whole Report, on the simulated accelerator."""
    from accelkit.roofline.devices import accelerator_device

    hw = report.hardware
    cycles = sum(max(r.stats.total_cycles, r.stats.total_cycles_incl_prefetch) for r in report.layers)
    return {
        "flops": 2.0 * report.totals.macs,
        "bytes": sum(layer_min_bytes(r.layer, hw.word_bytes) for r in report.layers),
        "seconds": cycles / (hw.clock_mhz * 1e6),
        "roofline_device": f"simulated: {accelerator_device(hw).name}",
    }
