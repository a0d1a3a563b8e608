"""Binary GEMM through the public op (accelkit.ops.packed_binary_matmul) against torch.matmul in float32, M = N = K.

Both are called as a user calls them: C = A @ W.T with W [N, K] (nn.Linear layout), each call returning a new
result. The headline (`ours`, `ratio`) is the public packed op with the operands packed once beforehand, as a
server does with its weights. Beside it: the C++ kernel alone writing into a preallocated buffer (`kernel_only`,
what no public op does, so the overhead of the op is visible), `ops.binary_matmul` end to end (pack A and W, GEMM,
float result), and a BinaryLinear-style step (pack A only, W packed once, float result). Each timing is the median
of --repeats calls after one warm-up call; the range over the calls is reported too, because the CPUs may be shared.
One binary MAC is one +-1 product summed into a dot product (one bit of XOR + popcount), one float MAC one FMA.

The popcount peak is a model, not a measurement of the GEMM: the rate at which the threads the GEMM uses could
count bits if they did nothing else, 512 bits x the VPOPCNTQ zmm instructions per second that a native probe
retires when all those threads run it at once (the higher of a probe before and one after the timings). Measured,
not derived from a per-core table, because vCPUs may share a core or a busy host: then two threads count no faster
than one, and the peak says so.
"""

import argparse
import os
import statistics

import numpy as np
import torch

from accelkit import ops
from accelkit._native import native
from accelkit.roofline.costs import packed_binary_matmul as packed_binary_matmul_cost
from accelkit.timing import sample_seconds

VECTOR_BITS = 512


def _timed(fn, repeats: int) -> dict:
    samples = sample_seconds(fn, repeats, warmup=1)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def _cpuinfo_mhz() -> float | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1])
    except OSError:
        pass
    return None


def _check(out: torch.Tensor, a: torch.Tensor, w: torch.Tensor, what: str) -> None:
    """The timed result must be right: 8 rows against the float64 product of the signs."""
    n = a.shape[0]
    rows = torch.arange(0, n, max(1, n // 8))
    expected = torch.where(a[rows] >= 0, 1.0, -1.0).double() @ torch.where(w >= 0, 1.0, -1.0).double().T
    if not torch.equal(out[rows].double(), expected):
        raise SystemExit(f"{what} differs from sign(a) @ sign(w).T; timing discarded")


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py binary_gemm", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="M = N = K (default 4096)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--word-bits", type=int, default=64, choices=(32, 64))
    parser.add_argument("--isa", default="auto", choices=("auto", "avx512", "avx2", "scalar"))
    args = parser.parse_args(argv)
    n, word_bits, C = args.size, args.word_bits, native()
    threads = C.cpu_features()["threads"]
    isa = C.binary_isa() if args.isa == "auto" else args.isa

    # The probe runs before and after the timings and the higher aggregate is the peak: on a shared host a probe
    # that ran while another process held a core would lower the peak and flatter the fraction.
    probes = [C.binary_peak_probe(threads=threads)]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    w = torch.randn(n, n, generator=gen)
    a_bits, w_bits = ops.pack_bits(a, word_bits=word_bits), ops.pack_bits(w, word_bits=word_bits)

    public = _timed(lambda: ops.packed_binary_matmul(a_bits, w_bits, n), args.repeats)
    _check(ops.packed_binary_matmul(a_bits, w_bits, n), a, w, "packed_binary_matmul")
    a_np, w_np, out = a_bits.numpy(), w_bits.numpy(), np.empty((n, n), dtype=np.int32)
    kernel = _timed(lambda: C.binary_gemm(a_np, w_np, n, out, args.isa), args.repeats)
    _check(torch.from_numpy(out), a, w, "binary_gemm kernel")
    end_to_end = _timed(lambda: ops.binary_matmul(a, w), args.repeats)
    _check(ops.binary_matmul(a, w), a, w, "binary_matmul")
    serve = _timed(lambda: ops.packed_binary_matmul(ops.pack_bits(a, word_bits=word_bits), w_bits, n), args.repeats)
    pack = _timed(lambda: ops.pack_bits(a, word_bits=word_bits), args.repeats)
    peer = _timed(lambda: torch.matmul(a, w.T), args.repeats)

    macs = float(n) ** 3
    rate = {name: macs / t["median"] for name, t in (("public", public), ("kernel", kernel), ("e2e", end_to_end))}
    rate["serve"], rate["peer"] = macs / serve["median"], macs / peer["median"]
    probes.append(C.binary_peak_probe(threads=threads))
    probe = max(probes, key=lambda p: p["vpopcntq_per_second_all_threads"])
    clock, per_thread = probe["clock_hz"], probe["vpopcntq_per_second"]
    all_threads = probe["vpopcntq_per_second_all_threads"]
    peak = all_threads * VECTOR_BITS
    fraction = rate["public"] / peak if peak else None
    fraction_kernel = rate["kernel"] / peak if peak else None

    mhz = _cpuinfo_mhz()
    print(
        f"binary GEMM  M = N = K = {n}, {word_bits}-bit words, isa {isa}, "
        f"{threads} threads (torch: {torch.get_num_threads()})"
    )
    rows = [
        ("ops.packed_binary_matmul (ours)", public, rate["public"]),
        ("C++ kernel, preallocated out", kernel, rate["kernel"]),
        ("ops.binary_matmul end to end", end_to_end, rate["e2e"]),
        ("pack A + packed GEMM (serve)", serve, rate["serve"]),
        ("torch.matmul float32 (peer)", peer, rate["peer"]),
    ]
    print(f"  {'call':<34}{'median s':>10}{'min s':>9}{'max s':>9}{'GMAC/s':>10}{'x peer':>8}")
    for name, t, r in rows:
        print(
            f"  {name:<34}{t['median']:>10.4f}{t['min']:>9.4f}{t['max']:>9.4f}{r / 1e9:>10.1f}{r / rate['peer']:>8.1f}"
        )
    print(f"  {'pack A alone':<34}{pack['median']:>10.4f}{pack['min']:>9.4f}{pack['max']:>9.4f}")
    clock_note = f", /proc/cpuinfo says {mhz:.0f} MHz" if mhz else ""
    print(f"  measured clock {clock / 1e9:.2f} GHz{clock_note}")
    if peak:
        print(
            f"  VPOPCNTQ zmm per second: {per_thread / 1e9:.2f} G on 1 thread, {all_threads / 1e9:.2f} G on "
            f"{threads} threads at once ({all_threads / per_thread:.2f}x)"
        )
        print(
            f"  popcount peak ({threads} threads x measured VPOPCNTQ rate x {VECTOR_BITS} bits) = "
            f"{peak / 1e12:.2f} TMAC/s; the public op reaches {fraction:.0%} of it, the kernel alone "
            f"{fraction_kernel:.0%}"
        )
    else:
        print("  popcount peak: no AVX-512 VPOPCNTDQ on this CPU, no model")

    headline_cost = packed_binary_matmul_cost(m=n, n=n, k=n, word_bits=word_bits)
    return {
        "name": "binary_gemm",
        "metric": "MAC/s",
        "ours": rate["public"],
        "peer": rate["peer"],
        "ratio": rate["public"] / rate["peer"],
        "ours_call": "accelkit.ops.packed_binary_matmul (operands packed once)",
        "peer_call": "torch.matmul(a, w.T) float32",
        "kernel_only": rate["kernel"],
        "kernel_only_ratio": rate["kernel"] / rate["peer"],
        "end_to_end": rate["e2e"],
        "end_to_end_ratio": rate["e2e"] / rate["peer"],
        "serve": rate["serve"],
        "serve_ratio": rate["serve"] / rate["peer"],
        "timings": {"public": public, "kernel_only": kernel, "end_to_end": end_to_end, "serve": serve, "peer": peer},
        # The roofline point (accelkit roofline --records) of the headline call, from the op's cost model.
        "ops": headline_cost.work,
        "unit": headline_cost.unit,
        "bytes": headline_cost.bytes,
        "seconds": public["median"],
        "pack_a_seconds": pack["median"],
        "isa": isa,
        "size": n,
        "word_bits": word_bits,
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "clock_hz_measured": clock,
        "cpuinfo_mhz": mhz,
        "vpopcntq_per_second_1_thread": per_thread,
        "vpopcntq_per_second_all_threads": all_threads,
        "vpopcntq_per_second_all_threads_probes": [p["vpopcntq_per_second_all_threads"] for p in probes],
        "popcount_peak_model": peak or None,
        "popcount_peak_fraction": fraction,
        "popcount_peak_fraction_kernel_only": fraction_kernel,
        "cpu_count": os.cpu_count(),
    }
