"""`make gpu-check`: on a machine with a CUDA device, the `cuda`-marked tests, then flash and decode attention against
torch SDPA, in at most about 8 minutes. Without a CUDA device it prints "no CUDA device" and exits 0.

Flash attention: forward and backward TFLOP/s of `accelkit.ops.flash_attention` and SDPA at the FlashAttention-2
paper's shapes, fp16: B * T = 16k tokens, T in {512, 1k, 2k, 4k, 8k, 16k} with B = 16k / T, hidden 2048 = H * D
with D in {64, 128}, causal and not. FLOPs follow the paper's accounting (flash-attn
benchmarks/benchmark_flash_attention.py, ../shared/reference/attention.md, "Benchmark FLOP convention"):
4 * B * T^2 * H * D forward, halved for causal, and backward 2.5x forward. Decode: one new token, B = 1, H_q = 32,
H_kv = 8, D = 128, fp16, 8k to 256k cached keys: lean_attention vs split_kv_attention vs SDPA (enable_gqa over the
same cache as [B, H, T, D] views). LIF: forward + backward of accelkit.ops.lif (Triton, CUDA C) against
SpikingJelly 2.0's LIFNode(step_mode='m') (its own GPU kernel choice), N = 2^20 neurons, T in {4, 16, 32}, fp32.
Times are medians of CUDA-event timings after warm-up calls. The last line is one JSON object with every figure
(also `python bench/run.py gpu_check`, which prints it once more). Delta rule: chunk forward and forward + backward
of accelkit.ops.delta_rule against fla's Triton chunk_delta_rule at fla's benchmark shapes (DELTA_RULE_SHAPES).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TOKENS, HIDDEN = 16 * 1024, 2048
SEQLENS = (512, 1024, 2048, 4096, 8192, 16384)
DECODE_KEYS = (8192, 16384, 32768, 65536, 131072, 262144)
# The cuda tests get at most this long, so the whole check stays within its 8 minutes.
TEST_TIMEOUT_S = 240


def cuda_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of fn() over `repeats` calls, each timed by a pair of CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def run_cuda_tests() -> dict:
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    print("$ " + " ".join(cmd[2:]), flush=True)
    try:
        rc = subprocess.run(cmd, cwd=ROOT, timeout=TEST_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        print(f"cuda tests stopped after {TEST_TIMEOUT_S} s", flush=True)
        rc = -1
    return {"returncode": rc, "passed": rc == 0}


def _sig(x: float) -> float:
    """Four significant figures: enough for timings that vary by a few percent between runs."""
    return float(f"{x:.4g}")


def _grad_call(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], do: torch.Tensor) -> Callable[[], object]:
    return lambda: torch.autograd.grad(out, inputs, do, retain_graph=True)


def flash_case(
    t: int,
    d: int,
    causal: bool,
    repeats: int,
    *,
    tokens: int = TOKENS,
    hidden: int = HIDDEN,
    device: str = "cuda",
    dtype: torch.dtype = torch.float16,
    timer: Callable = cuda_ms,
) -> dict:
    """TFLOP/s of ours and SDPA, forward and backward, at one of the paper's shapes (the keywords: for tests)."""
    import torch.nn.functional as F

    from accelkit import ops

    b, h = tokens // t, hidden // d
    q, k, v = (torch.randn(b, t, h, d, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    do = torch.randn(b, t, h, d, device=device, dtype=dtype)
    # SDPA takes [B, H, T, D]: transposed views of the same tensors, what a user holding [B, T, H, D] passes.
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    calls = {
        "ours": lambda: ops.flash_attention(q, k, v, causal=causal),
        "sdpa": lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal).transpose(1, 2),
    }
    # The FlashAttention-2 paper's accounting (Dao 2023, its attention benchmarks; flash-attn benchmark script flops()):
    # 4 * B * T^2 * H * D forward, half of it when causal; backward counted as 2.5x the forward.
    flops = 4 * b * t * t * h * d / (2 if causal else 1)
    row = {"T": t, "B": b, "H": h, "D": d, "causal": causal}
    for name, call in calls.items():
        with torch.no_grad():
            fwd = timer(call, repeats)
        bwd = timer(_grad_call(call(), (q, k, v), do), repeats)
        row[f"{name}_fwd_tflops"] = _sig(flops / fwd / 1e9)
        row[f"{name}_bwd_tflops"] = _sig(2.5 * flops / bwd / 1e9)
    return row


def decode_case(
    t: int, repeats: int, *, device: str = "cuda", dtype: torch.dtype = torch.float16, timer: Callable = cuda_ms
) -> dict:
    """Milliseconds of one decode step over t cached keys: lean, split-KV and SDPA (the keywords: for tests)."""
    import torch.nn.functional as F

    from accelkit import ops

    h_q, h_kv, d = 32, 8, 128
    q = torch.randn(1, h_q, d, device=device, dtype=dtype)
    k, v = (torch.randn(1, t, h_kv, d, device=device, dtype=dtype) for _ in range(2))
    lens = torch.tensor([t], device=device, dtype=torch.int32)
    q4, k4, v4 = q[:, :, None], k.transpose(1, 2), v.transpose(1, 2)
    calls = {
        "lean_ms": lambda: ops.lean_attention(q, k, v, lens),
        "split_kv_ms": lambda: ops.split_kv_attention(q, k, v, lens),
        "sdpa_ms": lambda: F.scaled_dot_product_attention(q4, k4, v4, enable_gqa=True),
    }
    row = {"T": t}
    with torch.no_grad():
        row.update({name: _sig(timer(call, repeats)) for name, call in calls.items()})
    return row


def _spikingjelly_lif():
    """SpikingJelly's LIFNode(step_mode='m') (2.0 picks its CuPy/Triton/torch kernel itself), None if not installed."""
    try:
        from spikingjelly.activation_based import neuron
    except ImportError:
        return None
    return neuron.LIFNode(tau=2.0, step_mode="m")


def lif_case(
    t: int, n: int, repeats: int, *, device: str = "cuda", dtype: torch.dtype = torch.float32, timer: Callable = cuda_ms
) -> dict:
    """Milliseconds of LIF forward + backward over x [t, n]: accelkit (Triton, and CUDA C where CuPy is installed; the
    C++ path on a CPU) against SpikingJelly 2.0's LIFNode(step_mode='m') on the same device, with the largest grad-x
    difference from accelkit's first backend."""
    from accelkit import ops

    x = (torch.randn(t, n, device=device, dtype=dtype) + 0.5).requires_grad_()
    grad = torch.randn(t, n, device=device, dtype=dtype)
    calls = {}
    for backend in ("triton", "cuda") if device == "cuda" else ("auto",):
        calls[f"accelkit_{backend}_ms"] = lambda b=backend: ops.lif(x, backend=b)
    node = _spikingjelly_lif()
    if node is not None:
        calls["spikingjelly_ms"] = lambda: (node.reset(), node(x))[1]
    row: dict = {"T": t, "N": n}
    first = None
    for name, call in calls.items():

        def step(call=call):
            x.grad = None
            call().backward(grad)

        try:
            step()
        except Exception as error:  # noqa: BLE001 - report a backend that fails instead of losing the whole check
            row[name] = f"error: {type(error).__name__}"
            continue
        first = x.grad.clone() if first is None else first
        row[name.replace("_ms", "_max_dgrad")] = _sig(float((x.grad - first).abs().max()))
        row[name] = _sig(timer(step, repeats))
    return row


def wkv_case(
    b: int,
    t: int,
    c: int,
    repeats: int,
    *,
    device: str = "cuda",
    dtype: torch.dtype = torch.float32,
    timer: Callable = cuda_ms,
) -> dict:
    """Milliseconds of WKV forward + backward on [b, t, c]: accelkit.ops.wkv (Triton on CUDA, C++ on a CPU) against
    the PyTorch loop of the same recurrence (kernels/wkv/loop.py; SpikingJelly has no WKV and SpikeGPT's CUDA kernel
    is not a package), with the largest difference of y and grad k between the two."""
    from accelkit import ops
    from accelkit.kernels.wkv.loop import wkv_loop

    gen = torch.Generator().manual_seed(0)
    w = -torch.randn(c, generator=gen).exp()
    u = torch.randn(c, generator=gen)
    k, v, gy = (torch.randn(b, t, c, generator=gen) for _ in range(3))
    args = [x.to(device=device, dtype=dtype).requires_grad_() for x in (w, u, k, v)]
    gy = gy.to(device=device, dtype=dtype)
    row: dict = {"B": b, "T": t, "C": c}
    results = {}
    for name, fn in (("accelkit_ms", ops.wkv), ("torch_loop_ms", wkv_loop)):

        def step(fn=fn):
            for x in args:
                x.grad = None
            y = fn(*args)
            y.backward(gy)
            return y

        results[name] = (step().detach(), args[2].grad.clone())
        row[name] = _sig(timer(step, repeats))
    (y0, g0), (y1, g1) = results.values()
    row["max_dy"] = _sig(float((y0 - y1).abs().max()))
    row["max_dgrad_k"] = _sig(float((g0 - g1).abs().max()))
    return row


# fla's delta-rule benchmark shapes (benchmarks/ops/benchmark_delta_rule.py before 046595a3,
# ../shared/reference/delta_rule.md section 4): bf16, hidden 2048 = H * D, D in {64, 128, 256}, (B, T) below.
DELTA_RULE_SHAPES = ((8, 2048), (4, 4096), (2, 8192))


def _fla_chunk_delta_rule():
    """fla's Triton chunk_delta_rule, None where fla-core is not installed."""
    try:
        from fla.ops.delta_rule import chunk_delta_rule
    except ImportError:
        return None
    return chunk_delta_rule


def delta_rule_case(
    b: int,
    t: int,
    d: int,
    repeats: int,
    *,
    hidden: int = 2048,
    device: str = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    timer: Callable = cuda_ms,
) -> dict:
    """Milliseconds of delta-rule chunk forward and forward + backward (chunk 64): accelkit.ops.delta_rule against
    fla's Triton chunk_delta_rule on the same device (left out on a CPU or without fla), l2-normalised keys."""
    import torch.nn.functional as F

    from accelkit import ops

    h = hidden // d
    q, v = (torch.randn(b, t, h, d, device=device, dtype=dtype, requires_grad=True) for _ in range(2))
    k = F.normalize(torch.randn(b, t, h, d, device=device, dtype=torch.float32), dim=-1).to(dtype).requires_grad_()
    beta = torch.rand(b, t, h, device=device, dtype=dtype).requires_grad_()
    do = torch.randn(b, t, h, d, device=device, dtype=dtype)
    calls = {"ours": lambda: ops.delta_rule(q, k, v, beta)[0]}
    fla = _fla_chunk_delta_rule() if device == "cuda" else None
    if fla is not None:
        calls["fla"] = lambda: fla(q, k, v, beta)[0]
    row: dict = {"B": b, "T": t, "H": h, "D": d}
    for name, call in calls.items():
        with torch.no_grad():
            row[f"{name}_fwd_ms"] = _sig(timer(call, repeats))
        row[f"{name}_fwdbwd_ms"] = _sig(timer(lambda call=call: call().backward(do), repeats))
    return row


def _print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n== {title}")
    keys = list(rows[0])
    print("  ".join(f"{key:>14}" for key in keys))
    for row in rows:
        print("  ".join(f"{row[key]!s:>14}" for key in keys), flush=True)


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(x) for x in values)) if values and min(values) > 0 else 0.0


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/gpu_check.py", description=__doc__)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement")
    parser.add_argument("--skip-tests", action="store_true", help="leave out the cuda-marked tests")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device")
        return {}
    tests = {"skipped": True} if args.skip_tests else run_cuda_tests()
    flash = [flash_case(t, d, c, args.repeats) for d in (64, 128) for c in (False, True) for t in SEQLENS]
    _print_rows("flash_attention vs SDPA, TFLOP/s, fp16", flash)
    decode = [decode_case(t, args.repeats) for t in DECODE_KEYS]
    _print_rows("decode, B = 1, H_q = 32, H_kv = 8, D = 128, fp16, ms", decode)
    lif = [lif_case(t, 2**20, args.repeats) for t in (4, 16, 32)]
    _print_rows("LIF fwd+bwd vs SpikingJelly, N = 2^20, fp32, ms", lif)
    wkv = [wkv_case(8, t, 768, args.repeats) for t in (256, 1024)]
    _print_rows("WKV fwd+bwd vs a PyTorch loop, B = 8, C = 768, fp32, ms", wkv)
    delta = [delta_rule_case(b, t, d, args.repeats) for d in (64, 128, 256) for b, t in DELTA_RULE_SHAPES]
    _print_rows("delta rule chunk fwd and fwd+bwd vs fla chunk_delta_rule, hidden 2048, bf16, ms", delta)
    ours, peer = _geomean([r["ours_fwd_tflops"] for r in flash]), _geomean([r["sdpa_fwd_tflops"] for r in flash])
    return {
        "name": "gpu_check",
        "metric": "flash_attention forward TFLOP/s, geometric mean over the FA2 paper's shapes",
        "ours": round(ours, 2),
        "peer": round(peer, 2),
        "ratio": round(ours / peer, 3) if peer else 0.0,
        "device": torch.cuda.get_device_name(),
        "cuda_tests": tests,
        "flash": flash,
        "decode": decode,
        "lif": lif,
        "wkv": wkv,
        "delta_rule": delta,
    }


def main(argv: list[str]) -> int:
    result = run(argv)
    if not result:
        return 0
    print(json.dumps(result), flush=True)
    return 0 if result["cuda_tests"].get("passed", True) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
