"""WKV forward + backward on the CPU: accelkit.ops.wkv (C++) against a PyTorch loop of the same recurrence
(kernels/wkv/loop.py, one torch op per term per step, autograd for the backward), B = 1, T = 4096, C = 512,
float32, w = -exp(N(0, 1)) as SpikeGPT's decay.

Both are timed as a user calls them: the op on leaf tensors, then .backward() of a random output gradient, the
gradients of w, u, k and v computed. Each timing is the median of --repeats calls after one warm-up call (the peer,
a few seconds a call, gets --peer-repeats); min and max are reported too, because the CPUs may be shared.

Work: the recurrence does about 24 flops and 2 exps per (b, t, c) forward (output and carry update, one exp per
max-and-rescale) and about twice the flops and 5 exps backward (the carries again, then the reverse pass); "flops"
counts the 72 flops and "ops" the 7 exps besides. Bytes are the minimum: forward reads k, v and writes y, backward
reads k, v, gy and writes gk, gv (8 B T C 4 bytes; w, u and their gradients are C-sized).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from accelkit import ops
from accelkit.kernels.wkv.loop import wkv_loop
from accelkit.timing import sample_seconds

FLOPS_PER_STEP = 72
EXPS_PER_STEP = 7


def _timed(fn, repeats: int) -> dict:
    samples = sample_seconds(fn, repeats, warmup=1)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def _inputs(batch: int, steps: int, channels: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    w = -torch.randn(channels, generator=gen).exp()
    u = torch.randn(channels, generator=gen)
    k, v, gy = (torch.randn(batch, steps, channels, generator=gen) for _ in range(3))
    return [x.requires_grad_() for x in (w, u, k, v)], gy


def _step(fn, args, gy):
    def step():
        for x in args:
            x.grad = None
        fn(*args).backward(gy)

    return step


def _check(args, gy) -> None:
    """Ours and the loop agree on a slice of the input before anything is timed."""
    small = [x.detach()[..., :64, :32].clone().requires_grad_() if x.dim() == 3 else x.detach()[:32].clone()
             for x in args]  # fmt: skip
    small = [x.requires_grad_() for x in small]
    peer = [x.detach().clone().requires_grad_() for x in small]
    g = gy[..., :64, :32]
    ops.wkv(*small).backward(g)
    wkv_loop(*peer).backward(g)
    for a, b in zip(small, peer, strict=True):
        if not torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-4):
            raise SystemExit("ops.wkv and the PyTorch loop disagree; timing discarded")


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py wkv_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4096)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--peer-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    tensors, gy = _inputs(args.batch, args.steps, args.channels)
    _check(tensors, gy)
    ours = _timed(_step(ops.wkv, tensors, gy), args.repeats)
    peer = _timed(_step(wkv_loop, tensors, gy), args.peer_repeats)
    fwd = _timed(lambda: ops.wkv(*(x.detach() for x in tensors)), args.repeats)
    elements = args.batch * args.steps * args.channels
    return {
        "name": "wkv_cpu",
        "metric": "seconds per forward + backward (median)",
        "ours": ours["median"],
        "peer": peer["median"],
        "ratio": peer["median"] / ours["median"],
        "ours_range": [ours["min"], ours["max"]],
        "peer_range": [peer["min"], peer["max"]],
        "ours_forward_only": fwd["median"],
        "peer_impl": "PyTorch loop over T of the same recurrence (kernels/wkv/loop.py), autograd backward",
        "shape": {"B": args.batch, "T": args.steps, "C": args.channels, "dtype": "float32"},
        "threads": torch.get_num_threads(),
        "flops": FLOPS_PER_STEP * elements,
        "ops": EXPS_PER_STEP * elements,
        "bytes": 8 * elements * 4,
        "seconds": ours["median"],
    }
