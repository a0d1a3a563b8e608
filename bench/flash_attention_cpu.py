"""flash_attention on the CPU against torch's scaled_dot_product_attention: causal prefill, forward + backward.

Default case: B=1, H=8, T=4096, D=64, fp32, causal (the common training/prefill case). Both sides start from the
same q, k, v in accelkit's layout [B, T, H, D] with requires_grad, run the forward, then backward with the same
upstream gradient, as a user calls them: `ops.flash_attention(q, k, v, causal=True)` against
`F.scaled_dot_product_attention(q.transpose(1, 2), ..., is_causal=True).transpose(1, 2)` (SDPA takes [B, H, T, D]).
The two are timed alternately, call by call (which one goes first alternates too), so a busy neighbour on a shared
machine slows both alike; each figure is the median of --repeats pairs after one warm-up pair, and the range is
reported too. The results are checked
against each other before timing (outputs and gradients within 1e-4).

FLOP count: FlashAttention's convention (flash-attn benchmarks/benchmark_flash_attention.py): 4 B T^2 H D for the
forward, halved for causal, and 2.5x that for the backward, so forward + backward is 3.5x the forward.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from accelkit import ops
from accelkit.roofline.costs import flash_attention as flash_attention_cost


def _ours(q, k, v, grad):
    out = ops.flash_attention(q, k, v, causal=True)
    out.backward(grad)
    return out


def _sdpa(q, k, v, grad):
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    out = out.transpose(1, 2)
    out.backward(grad)
    return out


def _leaves(b, t, h, d, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, t, h, d, generator=gen, dtype=dtype).requires_grad_() for _ in range(3)]


def _call(fn, tensors, grad) -> tuple[float, list[torch.Tensor]]:
    for x in tensors:
        x.grad = None
    start = time.perf_counter()
    out = fn(*tensors, grad)
    return time.perf_counter() - start, [out.detach(), *(x.grad for x in tensors)]


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py flash_attention_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seqlen", type=int, default=4096)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    b, t, h, d = args.batch, args.seqlen, args.heads, args.head_dim
    tensors = _leaves(b, t, h, d, torch.float32, seed=0)
    grad = torch.randn(b, t, h, d, generator=torch.Generator().manual_seed(1))

    _, ours = _call(_ours, tensors, grad)
    _, peer = _call(_sdpa, tensors, grad)
    for name, x, y in zip(("out", "dq", "dk", "dv"), ours, peer, strict=True):
        if not torch.allclose(x, y, atol=1e-4, rtol=1e-4):
            raise SystemExit(f"{name} differs from SDPA by {float((x - y).abs().max()):.3e}; timing discarded")

    times = {"ours": [], "peer": []}
    for i in range(args.repeats):
        # Alternate which side goes first, so neither always runs right after the other's allocations.
        order = (("ours", _ours), ("peer", _sdpa)) if i % 2 == 0 else (("peer", _sdpa), ("ours", _ours))
        for name, fn in order:
            times[name].append(_call(fn, tensors, grad)[0])
    ours_s, peer_s = statistics.median(times["ours"]), statistics.median(times["peer"])
    flops = 3.5 * 4 * b * t * t * h * d / 2
    headline = flash_attention_cost(b=b, t=t, h=h, d=d, causal=True, dtype_bytes=4, backward=True)
    print(f"ours {ours_s * 1e3:.1f} ms, SDPA {peer_s * 1e3:.1f} ms; {flops / ours_s / 1e9:.1f} GFLOP/s ours")
    return {
        "name": "flash_attention_cpu",
        "metric": "seconds per forward + backward (median; lower is better, ratio = peer / ours)",
        "ours": ours_s,
        "peer": peer_s,
        "ratio": peer_s / ours_s,
        "shape": {"B": b, "T": t, "H": h, "D": d, "dtype": "float32", "causal": True},
        "ours_range": [min(times["ours"]), max(times["ours"])],
        "peer_range": [min(times["peer"]), max(times["peer"])],
        "gflops_ours": flops / ours_s / 1e9,
        "gflops_peer": flops / peer_s / 1e9,
        "peer_name": "torch.nn.functional.scaled_dot_product_attention (autograd)",
        "threads": torch.get_num_threads(),
        # The roofline point: forward + backward from the op's cost model (causal, float32), at our median.
        "flops": headline.work,
        "bytes": headline.bytes,
        "seconds": ours_s,
    }
