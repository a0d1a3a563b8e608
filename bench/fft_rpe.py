"""Kernelized attention with a relative-position bias: the FFT path (O(T log T)) against the blocked direct path
(O(T^2)), the op's method="auto", and SDPA with an additive T x T bias (exact softmax + RPE) as the peer a user
would otherwise call. One head, B = 1, D = 64, m = 64 features, D_v = 64, float32, forward + backward of all four
inputs (q, k, v, rpe_bias), T from 1k to 64k (--quick: 256 to 2k).

Time: fft, direct and auto are timed in interleaved rounds (each method once per round, the order rotating), the
median of --repeats rounds after a warm-up round while a call takes under a second, of LONG_ROUNDS rounds (the first
calls included) above that (a 64k direct call takes about a minute on a shared 2-core CPU). Peak memory: the
process's resident set sampled every millisecond during the first call, minus what it held before the call (inputs
included in neither); torch's large CPU blocks are mmap'd and return to the system when freed, so the baseline does
not creep. SDPA runs while its T x T bias is within 8 GB and its estimated working set (5 T x T float32 tensors)
within half the memory available; past that its time and memory are extrapolated from the largest run (T^2) and
marked so.

JSON: ratio = the FFT path's speed over the direct path's at T = 65536 (goal >= 1.5); crossover_T (goal <= 32k,
interpolated log-linearly between grid points); fft_memory_exponent (log-log fit of peak memory over T >= 4096,
goal <= 1.1); largest T within 16 GB per method (from the fitted memory curve, extrapolated past the runs);
auto_over_best (the worst ratio of auto's median time to the better of fft's and direct's over the grid, goal <= 1.1)
and auto_over_best_paired (the same from the rounds: per T the median over rounds of auto's time over the better of
the two in the same round, then the worst T); and
fft_unit_cost_fit, the constant kernels/fft_rpe/op.py's cost model would need to match this run. A PNG of the
curves goes to bench/out/fft_rpe.png when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from accelkit import ops
from accelkit.kernels.fft_rpe import toeplitz
from accelkit.kernels.fft_rpe.op import FFT_UNIT_COST, choose_method, orthogonal_features

GB = 1e9
D = M = DV = 64
FULL = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
QUICK = (256, 512, 1024, 2048)
OUT = Path(__file__).resolve().parent / "out"
# Rounds per T once a call takes a second or more (a 64k direct call takes about a minute on a shared 2-core CPU):
# three keep a median, at about 7 minutes for the 64k row.
LONG_ROUNDS = 3


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


class _PeakRss:
    """The peak resident set above the level at entry, sampled every millisecond by a thread (torch releases the
    GIL inside its kernels, so the sampler runs during them)."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())
        self.bytes = self.peak - self.base


def _inputs(t: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(1, t, 1, D, generator=gen) for _ in range(2))
    v = torch.randn(1, t, 1, DV, generator=gen)
    bias = -0.05 * torch.randn(1, 2 * t - 1, generator=gen).abs()
    return [x.requires_grad_() for x in (q, k, v, bias)]


def _ours(method: str, w: torch.Tensor):
    def step(q, k, v, bias):
        out = ops.rpe_kernel_attention(q, k, v, bias, features=w, method=method)
        out.backward(torch.ones_like(out))

    return step


def _sdpa(q, k, v, bias):
    """softmax(q.k / sqrt(D) + b_{j-i}) v with the bias as a T x T additive mask, gathered from rpe_bias so its
    gradient reaches the 2T - 1 parameters, as a user would write it."""
    t = q.shape[1]
    idx = torch.arange(t)[None, :] - torch.arange(t)[:, None] + (t - 1)
    mask = bias[0][idx][None, None]
    qn, kn = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    out = F.scaled_dot_product_attention(qn.transpose(1, 2), kn.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    out.backward(torch.ones_like(out))


def _first_call(step, t: int) -> tuple[list, float, int]:
    """The leaves of one method at T, its first call's seconds and that call's peak extra memory."""
    leaves = _inputs(t)
    with _PeakRss() as mem:
        start = time.perf_counter()
        _call(step, leaves)
        first = time.perf_counter() - start
    return leaves, first, mem.bytes


def _call(step, leaves) -> None:
    for x in leaves:
        x.grad = None
    step(*leaves)


def _measure_rounds(steps: dict, t: int, repeats: int) -> dict[str, dict]:
    """Each method's rows at T from interleaved rounds: every round times each method once, the order rotating from
    round to round, so a slow stretch of a shared host lands on all of them alike. The first call of each method
    (its memory sample) is round 0, a warm-up when the slowest first call took under a second (then `repeats` rounds
    follow) and a sample otherwise (then LONG_ROUNDS rounds in all). `paired_auto` is auto's time over the better of
    fft and direct within each round."""
    names = list(steps)
    state = {name: _first_call(steps[name], t) for name in names}
    samples = {name: [state[name][1]] for name in names}
    fast = max(state[n][1] for n in names) < 1.0
    if fast:  # the first call is then a warm-up, not a sample
        samples = {name: [] for name in names}
    for r in range(1, repeats + 1 if fast else LONG_ROUNDS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            _call(steps[name], state[name][0])
            samples[name].append(time.perf_counter() - start)
    rows = {
        name: {
            "T": t,
            "seconds": statistics.median(s),
            "min": min(s),
            "max": max(s),
            "samples": s,
            "peak_bytes": state[name][2],
        }
        for name, s in samples.items()
    }
    if {"auto", "fft", "direct"} <= set(names):
        paired = [a / min(f, d) for a, f, d in zip(samples["auto"], samples["fft"], samples["direct"], strict=True)]
        rows["auto"]["paired_auto"] = paired
    return rows


def _sdpa_fits(t: int) -> bool:
    return t * t * 4 <= 8 * GB and 5 * t * t * 4 <= _available() / 2


def _fit(xs, ys) -> tuple[float, float]:
    """Slope and intercept of log y against log x."""
    slope, icpt = np.polyfit(np.log(xs), np.log(ys), 1)
    return float(slope), float(icpt)


# Peaks below this are within the RSS sampler's noise (allocator caching, a page table), too small to fit a curve to.
MIN_FIT_BYTES = 64 * 2**20


def _largest_within(rows: list[dict], budget: float) -> dict:
    """The largest T whose (fitted) peak memory is within budget: measured if a run reached it, else the T at which
    the log-log fit crosses the budget, fitted over the runs with T >= 4096 and a peak of at least MIN_FIT_BYTES
    (the two largest runs if fewer qualify)."""
    done = [r for r in rows if not r.get("extrapolated")]
    big = [r for r in done if r["T"] >= 4096 and r["peak_bytes"] >= MIN_FIT_BYTES]
    big = big if len(big) >= 2 else done[-2:]
    if len(big) < 2:
        return {"T": None, "extrapolated": True, "slope": None}
    slope, icpt = _fit([r["T"] for r in big], [max(r["peak_bytes"], 1) for r in big])
    if not slope > 0.1:
        # Memory flat in T over the runs (small sizes lost in the sampler's noise): no curve to extrapolate.
        return {"T": None, "extrapolated": True, "slope": slope}
    t_fit = math.exp((math.log(budget) - icpt) / slope)
    within = [r["T"] for r in done if r["peak_bytes"] <= budget]
    measured = max(within) if within else 0
    return {"T": int(max(t_fit, measured)), "extrapolated": t_fit > max(r["T"] for r in done), "slope": slope,
            "fit_T": [r["T"] for r in big]}  # fmt: skip


def _crossover(grid, fft_s, direct_s) -> float | None:
    """The T where fft stops losing to direct, interpolated in log T between the grid points around the sign
    change of log(fft / direct); None when fft never wins on the grid."""
    logs = [math.log(f / d) for f, d in zip(fft_s, direct_s, strict=True)]
    if logs[0] <= 0:
        return float(grid[0])
    for i in range(1, len(grid)):
        if logs[i] <= 0:
            a, b = math.log(grid[i - 1]), math.log(grid[i])
            return float(math.exp(a + (b - a) * logs[i - 1] / (logs[i - 1] - logs[i])))
    return None


def _unit_cost(t: int, fft_s: float, direct_s: float) -> float:
    """The FFT_UNIT_COST that would make the cost model's fft/direct ratio equal the measured one at T."""
    n = toeplitz.fft_length(t)
    e = DV + 1
    return (fft_s / direct_s) * t * t * (M + e) / (M * e * n * math.log2(n))


def _plot(results: dict, grid, path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, rows in results.items():
        ts = [r["T"] for r in rows]
        style = "--" if name == "sdpa" else "-"
        (line,) = ax_t.loglog(ts, [r["seconds"] for r in rows], style, label=name)
        ax_m.loglog(ts, [max(r["peak_bytes"], 1) / GB for r in rows], style, color=line.get_color(), label=name)
        for ax, key in ((ax_t, "seconds"), (ax_m, "peak_bytes")):
            for r in rows:
                y = r[key] if key == "seconds" else max(r[key], 1) / GB
                face = "none" if r.get("extrapolated") else line.get_color()
                ax.plot([r["T"]], [y], "o", color=line.get_color(), markerfacecolor=face)
    ax_t.set(xlabel="T", ylabel="fwd + bwd seconds", title="time (H=1, D=m=D_v=64, fp32; hollow: extrapolated)")
    ax_m.set(xlabel="T", ylabel="peak extra memory (GB)", title="memory (hollow: extrapolated)")
    for ax in (ax_t, ax_m):
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _extrapolate(rows: list[dict], grid) -> list[dict]:
    """SDPA past its last run: time and memory scaled by (T / T_last)^2, marked extrapolated."""
    last = rows[-1]
    out = list(rows)
    for t in grid:
        if t > last["T"]:
            f = (t / last["T"]) ** 2
            out.append({"T": t, "seconds": last["seconds"] * f, "peak_bytes": last["peak_bytes"] * f,
                        "extrapolated": True})  # fmt: skip
    return out


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py fft_rpe", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 256 .. 2048 only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else FULL
    w = orthogonal_features(M, D, seed=0)
    steps = {"fft": _ours("fft", w), "direct": _ours("direct", w), "auto": _ours("auto", w), "sdpa": _sdpa}
    results: dict[str, list[dict]] = {name: [] for name in steps}
    # The first call of the process pays one-time setup (about 3 s here: dispatch and FFT initialisation), which
    # would otherwise land on the smallest T's single timed call.
    for step in steps.values():
        step(*_inputs(64))
    for t in grid:
        ours = {name: step for name, step in steps.items() if name != "sdpa"}
        rows = _measure_rounds(ours, t, args.repeats)
        if _sdpa_fits(t):
            rows.update(_measure_rounds({"sdpa": _sdpa}, t, args.repeats))
        rows["auto"]["picked"] = choose_method(t, M, DV + 1, "cpu")
        for name, row in rows.items():
            results[name].append(row)
            print(f"T={t:6d} {name:6s} {row['seconds']:9.4f} s  peak {row['peak_bytes'] / GB:7.3f} GB", flush=True)
    if results["sdpa"]:
        results["sdpa"] = _extrapolate(results["sdpa"], grid)
    fft_s = [r["seconds"] for r in results["fft"]]
    direct_s = [r["seconds"] for r in results["direct"]]
    best = [min(a, b) for a, b in zip(fft_s, direct_s, strict=True)]
    auto_over_best = max(r["seconds"] / b for r, b in zip(results["auto"], best, strict=True))
    auto_paired = max(statistics.median(r["paired_auto"]) for r in results["auto"])
    big_fft = [r for r in results["fft"] if r["T"] >= 4096] or results["fft"]
    exponent = _fit([r["T"] for r in big_fft], [r["peak_bytes"] for r in big_fft])[0] if len(big_fft) > 1 else None
    head = grid[-1]
    n = toeplitz.fft_length(head)
    cols = M * (DV + 1)
    # Six real FFTs of length n per column (2 forward, 4 backward), about 2.5 n log2 n flops each, plus the
    # contractions; minimum DRAM traffic: q, k, v, the output and their gradients once, float32.
    flops = cols * 6 * 2.5 * n * math.log2(n) + 8 * head * cols
    nbytes = 4 * head * (4 * D + 2 * DV) + 4 * 2 * (2 * head - 1)
    return {
        "name": "fft_rpe",
        "metric": f"fwd+bwd speed of the FFT path over the blocked direct path at T={head} (H=1, D=m=D_v=64, fp32)",
        "ours": fft_s[-1],
        "peer": direct_s[-1],
        "ratio": direct_s[-1] / fft_s[-1],
        "crossover_T": _crossover(grid, fft_s, direct_s),
        "fft_memory_exponent": exponent,
        # auto's memory follows the path it picks (direct below the crossover, fft above), a curve with a jump that
        # no power law fits; its largest T is the fft path's.
        "largest_T_within_16GB": {
            name: _largest_within(rows, 16 * GB) for name, rows in results.items() if rows and name != "auto"
        },
        "auto_over_best": auto_over_best,
        "auto_over_best_paired": auto_paired,
        "fft_unit_cost_fit": statistics.median(
            _unit_cost(t, f, d) for t, f, d in zip(grid, fft_s, direct_s, strict=True)
        ),
        "fft_unit_cost_used": FFT_UNIT_COST["cpu"],
        "flops": flops,
        "bytes": nbytes,
        "seconds": fft_s[-1],
        "threads": torch.get_num_threads(),
        "png": _plot(results, grid, OUT / ("fft_rpe_quick.png" if args.quick else "fft_rpe.png")),
        "results": results,
        "note": "CPU shared with other jobs; single runs above 1 s; sdpa rows marked extrapolated were not run",
    }
