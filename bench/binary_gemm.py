"""Packed binary GEMM (C++, XNOR/popcount) against torch.matmul in float32 on the same M = N = K problem.

Both compute C = A @ W.T with W [N, K] (nn.Linear layout) into a preallocated output, so neither pays for a 64 MB
allocation per call; packing A and W is timed separately and is not part of the GEMM time. Each timing is the median
of --repeats calls after one warm-up call. One binary MAC is one +-1 product summed into a dot product (one bit of a
512-bit XOR + VPOPCNTQ), one float MAC is one fused multiply-add.

The popcount peak is a model, not a measurement of the GEMM: threads x clock x 512 bits x VPOPCNTQ zmm per cycle,
the rate at which the cores could count bits if they did nothing else. The clock and the VPOPCNTQ rate come from
native probes on this machine (a chain of dependent adds, 1 cycle each, and 12 independent VPOPCNTQ chains);
uops.info (https://uops.info/html-instr/VPOPCNTQ_ZMM_ZMM.html) lists VPOPCNTQ zmm on Zen 4 on two FP pipes, but has
no table for every core this may run on, hence the probe.
"""

import argparse
import os
import statistics

import numpy as np
import torch

from accelkit._native import native
from accelkit.kernels.binary.cpu import binary_pack_cpu
from accelkit.timing import sample_seconds

VECTOR_BITS = 512


def _median_seconds(fn, repeats: int) -> float:
    return statistics.median(sample_seconds(fn, repeats, warmup=1))


def _cpuinfo_mhz() -> float | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1])
    except OSError:
        pass
    return None


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py binary_gemm", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="M = N = K (default 4096)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--word-bits", type=int, default=64, choices=(32, 64))
    parser.add_argument("--isa", default="auto", choices=("auto", "avx512", "avx2", "scalar"))
    args = parser.parse_args(argv)
    n, word_bits, C = args.size, args.word_bits, native()
    threads = C.cpu_features()["threads"]

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    w = torch.randn(n, n, generator=gen)
    pack_seconds = _median_seconds(lambda: (binary_pack_cpu(a, word_bits), binary_pack_cpu(w, word_bits)), args.repeats)
    a_bits, w_bits = binary_pack_cpu(a, word_bits), binary_pack_cpu(w, word_bits)

    a_np, w_np = a_bits.numpy(), w_bits.numpy()
    out = np.empty((n, n), dtype=np.int32)
    gemm_seconds = _median_seconds(lambda: C.binary_gemm(a_np, w_np, n, out, args.isa), args.repeats)
    isa = C.binary_isa() if args.isa == "auto" else args.isa

    c = torch.empty(n, n)
    peer_seconds = _median_seconds(lambda: torch.matmul(a, w.T, out=c), args.repeats)

    # The timed kernel must be right: check 8 rows against the float product of the signs.
    rows = torch.arange(0, n, max(1, n // 8))
    expected = torch.where(a[rows] >= 0, 1.0, -1.0).double() @ torch.where(w >= 0, 1.0, -1.0).double().T
    if not np.array_equal(out[rows.numpy()], expected.numpy().astype(np.int32)):
        raise SystemExit("binary_gemm result differs from sign(a) @ sign(w).T; timing discarded")

    macs = float(n) ** 3
    ours, peer = macs / gemm_seconds, macs / peer_seconds
    probe = C.binary_peak_probe()
    clock, vpopcnt_rate = probe["clock_hz"], probe["vpopcntq_per_second"]
    per_cycle = vpopcnt_rate / clock if clock else 0.0
    peak = threads * clock * VECTOR_BITS * per_cycle
    fraction = ours / peak if peak else None

    mhz = _cpuinfo_mhz()
    print(
        f"binary GEMM  M = N = K = {n}, {word_bits}-bit words, isa {isa}, "
        f"{threads} threads (torch: {torch.get_num_threads()})"
    )
    print(f"  {'kernel':<28}{'seconds':>10}{'GMAC/s':>12}")
    print(f"  {'accelkit binary_gemm':<28}{gemm_seconds:>10.4f}{ours / 1e9:>12.1f}")
    print(f"  {'torch.matmul float32':<28}{peer_seconds:>10.4f}{peer / 1e9:>12.1f}")
    print(f"  {'pack A and W (not in GEMM)':<28}{pack_seconds:>10.4f}")
    print(f"  ratio ours / peer: {ours / peer:.1f}")
    clock_note = f", /proc/cpuinfo says {mhz:.0f} MHz" if mhz else ""
    print(
        f"  measured clock {clock / 1e9:.2f} GHz{clock_note}; measured VPOPCNTQ zmm per cycle per core {per_cycle:.2f}"
    )
    if fraction is not None:
        print(
            f"  popcount peak (model: {threads} cores x {clock / 1e9:.2f} GHz x {VECTOR_BITS} bits x "
            f"{per_cycle:.2f}/cycle) = {peak / 1e12:.2f} TMAC/s; binary_gemm reaches {fraction:.0%} of it"
        )
    else:
        print("  popcount peak: no AVX-512 VPOPCNTDQ on this CPU, no model")

    return {
        "name": "binary_gemm",
        "metric": "MAC/s",
        "ours": ours,
        "peer": peer,
        "ratio": ours / peer,
        "pack_seconds": pack_seconds,
        "gemm_seconds": gemm_seconds,
        "peer_seconds": peer_seconds,
        "isa": isa,
        "size": n,
        "word_bits": word_bits,
        "threads": threads,
        "clock_hz_measured": clock,
        "cpuinfo_mhz": mhz,
        "vpopcntq_per_cycle_measured": per_cycle,
        "popcount_peak_model": peak,
        "popcount_peak_fraction": fraction,
        "cpu_count": os.cpu_count(),
    }
