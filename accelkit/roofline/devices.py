"""Roofs: peak compute and memory bandwidth of a device, from datasheets, a measurement or a simulator preset.

Datasheet peaks are dense (NVIDIA's datasheets also print "with sparsity" figures, twice these):
- A100 SXM 80GB: NVIDIA A100 Tensor Core GPU datasheet (2021): FP32 19.5 TFLOPS, TF32 tensor 156, BF16/FP16
  tensor 312, INT8 tensor 624 TOPS; HBM2e 2,039 GB/s.
- H100 SXM: NVIDIA H100 Tensor Core GPU datasheet (2023): FP32 67 TFLOPS, TF32 tensor 494.7, BF16/FP16 tensor
  989.4, FP8 and INT8 tensor 1,978.9; HBM3 3.35 TB/s.
- H200 SXM: NVIDIA H200 Tensor Core GPU datasheet (2024): the same compute as H100 SXM; HBM3e 4.8 TB/s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Device:
    """Compute roofs by precision (ops per second; the first is the default) and one DRAM bandwidth roof.

    `bandwidth_bytes_per_s=None` means no memory roof (a simulated accelerator in CALC mode never stalls)."""

    name: str
    peaks_ops_per_s: tuple[tuple[str, float], ...]
    bandwidth_bytes_per_s: float | None
    source: str

    def peak(self, precision: str | None = None) -> float:
        if precision is None:
            return self.peaks_ops_per_s[0][1]
        for name, value in self.peaks_ops_per_s:
            if name == precision:
                return value
        raise ValueError(
            f"{self.name} has no {precision!r} roof; it has {', '.join(n for n, _ in self.peaks_ops_per_s)}"
        )

    def ridge(self, precision: str | None = None) -> float:
        """Arithmetic intensity (ops per byte) where the memory roof meets the compute roof."""
        if self.bandwidth_bytes_per_s is None:
            return 0.0
        return self.peak(precision) / self.bandwidth_bytes_per_s

    def bound(self, intensity: float, precision: str | None = None) -> float:
        """Attainable ops per second at `intensity` ops per byte: min(peak, intensity x bandwidth)."""
        if self.bandwidth_bytes_per_s is None:
            return self.peak(precision)
        return min(self.peak(precision), intensity * self.bandwidth_bytes_per_s)


_H100_COMPUTE = (("bf16", 989.4e12), ("fp32", 67e12), ("tf32", 494.7e12), ("fp8", 1978.9e12), ("int8", 1978.9e12))
DEVICES: dict[str, Device] = {
    "a100": Device(
        "A100 SXM 80GB",
        (("bf16", 312e12), ("fp32", 19.5e12), ("tf32", 156e12), ("int8", 624e12)),
        2039e9,
        "NVIDIA A100 Tensor Core GPU datasheet, dense peaks",
    ),
    "h100": Device("H100 SXM", _H100_COMPUTE, 3.35e12, "NVIDIA H100 Tensor Core GPU datasheet, dense peaks"),
    "h200": Device("H200 SXM", _H100_COMPUTE, 4.8e12, "NVIDIA H200 Tensor Core GPU datasheet, dense peaks"),
}


def accelerator_device(hw) -> Device:
    """An accelkit.sim Hardware's roofs: 2 ops per PE per cycle (one multiply-add) and its DRAM bandwidth."""
    peak = 2.0 * hw.pes * hw.clock_mhz * 1e6
    name = f"{hw.run_name} {hw.rows}x{hw.cols} {hw.dataflow.upper()} @ {hw.clock_mhz:g} MHz"
    precision = "int8" if hw.word_bytes == 1 else f"{8 * hw.word_bytes}-bit"
    source = "accelkit.sim Hardware: PEs x 2 x clock, dram_bw_words_per_cycle"
    return Device(name, ((precision, peak),), hw.dram_bw_bytes_per_s, source)


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "accelkit"


def _host_key() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.node()}|{cpu}|{usable} cpus"


def measure_host(*, matmul_n: int = 2048, reduce_mib: int = 512, repeats: int = 5) -> tuple[float, float]:
    """(fp32 FLOP/s of an n x n x n torch matmul, read bytes/s of a sum over `reduce_mib` MiB), best of `repeats`.

    The best rather than the median: a roof is what the machine can do, and other jobs only ever slow it."""
    from accelkit._optional import require

    torch = require("torch", feature="measuring this machine's roofs (--device host)")

    a = torch.randn(matmul_n, matmul_n)
    b = torch.randn(matmul_n, matmul_n)
    x = torch.ones(reduce_mib * 2**20 // 4)
    torch.mm(a, b)
    x.sum()
    best_mm = best_sum = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best_mm = min(best_mm, time.perf_counter() - start)
        start = time.perf_counter()
        x.sum()
        best_sum = min(best_sum, time.perf_counter() - start)
    return 2.0 * matmul_n**3 / best_mm, x.numel() * 4 / best_sum


def host_device(*, refresh: bool = False, cache: Path | None = None, **measure) -> Device:
    """This machine, measured once by `measure_host` and cached in <cache dir>/roofline_host.json by host key."""
    path = cache if cache is not None else cache_dir() / "roofline_host.json"
    key = _host_key()
    stored = {}
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
    entry = stored.get(key)
    if entry is None or refresh:
        flops, bandwidth = measure_host(**measure)
        entry = {"fp32_flops": flops, "read_bytes_per_s": bandwidth, "measured_at": time.time()}
        stored[key] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2) + "\n")
    return Device(
        f"this machine ({key.split('|')[1]})",
        (("fp32", entry["fp32_flops"]),),
        entry["read_bytes_per_s"],
        f"measured: torch fp32 matmul and a sum reduction, cached in {path}",
    )


def resolve_device(name: str, **host_options) -> Device:
    """A datasheet device (a100, h100, h200), 'host' (this machine, measured) or a simulator preset (tpu_v1, ...)."""
    key = name.strip().lower().replace("-", "_")
    if key in DEVICES:
        return DEVICES[key]
    if key in ("host", "this", "cpu"):
        return host_device(**host_options)
    from accelkit.sim.hardware import PRESETS, resolve_hardware

    try:
        return accelerator_device(resolve_hardware(key))
    except ValueError:
        known = [*DEVICES, "host", *PRESETS]
        raise ValueError(f"device: unknown {name!r}; choose one of {', '.join(known)}") from None


def with_peak(device: Device, precision: str) -> Device:
    """`device` with `precision` as its default compute roof."""
    value = device.peak(precision)
    rest = tuple(p for p in device.peaks_ops_per_s if p[0] != precision)
    return dataclasses.replace(device, peaks_ops_per_s=((precision, value), *rest))
