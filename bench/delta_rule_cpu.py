"""delta_rule on the CPU against fla-core's pure-PyTorch references (fla has no CPU kernels), fp32.

Default case: B=1, H=4, T=2048, K=V=64, l2-normalised keys, beta = sigmoid. Four comparisons in one run:
- forward, chunk mode (the headline `ratio`): `ops.delta_rule(q, k, v, beta)` against fla's
  `delta_rule_chunkwise(..., chunk_size=64)` (the WY form, fla/ops/delta_rule/naive.py), both under no_grad;
- forward + backward: the same two with autograd and one upstream gradient (fla's through autograd);
- recurrent: `ops.delta_rule(..., mode="recurrent")` against fla's `delta_rule_recurrence`, forward only;
- linear scaling: ours (chunk forward) at T=16384 against T=2048, as time per token, the two lengths timed in pairs.
fla takes [B, H, T, D]; it gets transposed views of the same tensors, as a user switching layouts would pass. Each
pair is timed alternately (which goes first alternates too) so a busy neighbour on a shared machine slows both
alike; figures are medians of --repeats pairs after one warm-up pair, with the range. Results are checked against
each other before timing.

FLOP count of the chunk form per chunk and head (C = 64): K K^T and Q K^T 2 C^2 K each, W and U 2 C^2 (K + V),
the inverse C^3 / 3, the state products W S, Kd^T V' and Q S 2 C K V each, and the intra-chunk output 2 C^2 V.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from accelkit import ops


def _inputs(b, t, h, d, seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, h, d, generator=gen)
    k = F.normalize(torch.randn(b, t, h, d, generator=gen), dim=-1)
    v = torch.randn(b, t, h, d, generator=gen)
    beta = torch.sigmoid(torch.randn(b, t, h, generator=gen))
    return q, k, v, beta


def _fla_layout(*xs):
    return [x.transpose(1, 2) for x in xs]


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pair(ours, peer, repeats: int) -> dict:
    ours(), peer()
    times = {"ours": [], "peer": []}
    for i in range(repeats):
        order = (("ours", ours), ("peer", peer)) if i % 2 == 0 else (("peer", peer), ("ours", ours))
        for name, fn in order:
            times[name].append(_time(fn))
    o, p = statistics.median(times["ours"]), statistics.median(times["peer"])
    return {"ours": o, "peer": p, "ratio": p / o, "ours_range": [min(times["ours"]), max(times["ours"])],
            "peer_range": [min(times["peer"]), max(times["peer"])]}  # fmt: skip


def _flops(b, t, h, kd, vd, c=64) -> float:
    per_chunk = 4 * c * c * kd + 2 * c * c * (kd + vd) + c**3 / 3 + 6 * c * kd * vd + 2 * c * c * vd
    return per_chunk * (t / c) * b * h


def run(argv: list[str]) -> dict:
    from fla.ops.delta_rule.naive import delta_rule_chunkwise, delta_rule_recurrence

    parser = argparse.ArgumentParser(prog="bench/run.py delta_rule_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seqlen", type=int, default=2048)
    parser.add_argument("--long-seqlen", type=int, default=16384)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--recurrent-repeats", type=int, default=3)
    # On a shared 2-core machine, torch's two OpenMP threads wait on each other at every large op while the other
    # core is busy (a batched 128 x 64^3 matmul took 3.5 ms on 2 threads and 0.5 ms on 1), so both sides are also
    # worth timing on 1 thread; the default keeps torch's own setting.
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    b, t, h, d = 1, args.seqlen, args.heads, args.head_dim
    q, k, v, beta = _inputs(b, t, h, d, seed=0)
    grad = torch.randn(b, t, h, d, generator=torch.Generator().manual_seed(1))

    with torch.no_grad():
        ours_o, _ = ops.delta_rule(q, k, v, beta)
        fla_o, _ = delta_rule_chunkwise(*_fla_layout(q, k, v, beta), chunk_size=64)
        rec_o, _ = ops.delta_rule(q, k, v, beta, mode="recurrent")
    for name, x in (("chunkwise", fla_o.transpose(1, 2)), ("recurrent", rec_o)):
        if not torch.allclose(ours_o, x, atol=1e-3, rtol=1e-3):
            raise SystemExit(f"ours differs from {name} by {float((ours_o - x).abs().max()):.3e}; timing discarded")

    def no_grad(fn):
        def wrapped():
            with torch.no_grad():
                fn()

        return wrapped

    forward = _pair(no_grad(lambda: ops.delta_rule(q, k, v, beta)),
                    no_grad(lambda: delta_rule_chunkwise(*_fla_layout(q, k, v, beta), chunk_size=64)),
                    args.repeats)  # fmt: skip

    leaves = [x.clone().requires_grad_() for x in (q, k, v, beta)]

    def ours_train():
        ops.delta_rule(*leaves)[0].backward(grad)

    def fla_train():
        delta_rule_chunkwise(*_fla_layout(*leaves), chunk_size=64)[0].transpose(1, 2).backward(grad)

    train = _pair(ours_train, fla_train, args.repeats)
    recurrent = _pair(no_grad(lambda: ops.delta_rule(q, k, v, beta, mode="recurrent")),
                      no_grad(lambda: delta_rule_recurrence(*_fla_layout(q, k, v, beta))),
                      args.recurrent_repeats)  # fmt: skip
    long_inputs = _inputs(b, args.long_seqlen, h, d, seed=2)
    # Both lengths timed in alternating pairs, as the ratios above are, so load on a shared host hits both alike.
    lengths = _pair(no_grad(lambda: ops.delta_rule(*long_inputs)), no_grad(lambda: ops.delta_rule(q, k, v, beta)),
                    args.repeats)  # fmt: skip
    per_token_short, per_token_long = lengths["peer"] / t, lengths["ours"] / args.long_seqlen
    flops = _flops(b, t, h, d, d)
    print(f"{torch.get_num_threads()} threads")
    print(f"forward: ours {forward['ours'] * 1e3:.1f} ms, fla chunkwise {forward['peer'] * 1e3:.1f} ms; "
          f"fwd+bwd ours {train['ours'] * 1e3:.1f} ms, fla {train['peer'] * 1e3:.1f} ms; recurrent ours "
          f"{recurrent['ours'] * 1e3:.1f} ms, fla {recurrent['peer'] * 1e3:.1f} ms")  # fmt: skip
    return {
        "name": "delta_rule_cpu",
        "metric": "seconds per forward, chunk mode (median; lower is better, ratio = peer / ours)",
        "ours": forward["ours"],
        "peer": forward["peer"],
        "ratio": forward["ratio"],
        "ours_range": forward["ours_range"],
        "peer_range": forward["peer_range"],
        "peer_name": "fla.ops.delta_rule.naive.delta_rule_chunkwise (chunk_size=64), fla-core 0.6.0",
        "forward_backward": {**train, "peer_name": "autograd through fla's delta_rule_chunkwise"},
        "recurrent": {**recurrent, "peer_name": "fla.ops.delta_rule.naive.delta_rule_recurrence (forward)"},
        "scaling": {
            "T": [t, args.long_seqlen],
            "seconds": [lengths["peer"], lengths["ours"]],
            "per_token_ratio": per_token_long / per_token_short,
        },  # fmt: skip
        "shape": {"B": b, "T": t, "H": h, "K": d, "V": d, "dtype": "float32", "chunk_size": 64},
        "flops": flops,
        "bytes": 4 * b * t * h * (4 * d + 1),
        "seconds": forward["ours"],
        "gflops_ours": flops / forward["ours"] / 1e9,
        "threads": torch.get_num_threads(),
    }
