"""LIF forward + backward on the CPU: accelkit.ops.lif (C++) against SpikingJelly's LIFNode(step_mode='m') CPU path
on the same inputs, T = 32, N = 2^18 neurons, float32, tau = 2, hard reset, Sigmoid surrogate
(both libraries' defaults).

Bytes are the minimum a fused kernel must move: the forward reads x and writes spikes, the backward reads the
incoming gradient and x (our backward recomputes the membrane from x instead of saving h_seq) and writes grad x,
5 T N 4 bytes. The machine's read bandwidth is measured in the same run with decode_attention.py's probes (the best
of three reductions over 1 GiB, before and after, and paired right after each of our calls, since other jobs on a
shared host change the memory's rate from second to second). Each timing is the median of --repeats calls after a
warm-up; min and max are reported too.

Also measured, to choose what the backward needs: the C++ launchers with the backward recomputing H from x (5 T N
elements moved) against a forward that stores h_seq for a backward that reads it (6 T N).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from decode_attention import paired_fraction, read_bandwidth

from accelkit.timing import sample_seconds


def _timed(fn, repeats: int) -> dict:
    samples = sample_seconds(fn, repeats, warmup=1)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def _ours(x: torch.Tensor, grad: torch.Tensor):
    from accelkit import ops

    def step():
        x.grad = None
        ops.lif(x, tau=2.0).backward(grad)

    return step


def _peer(x: torch.Tensor, grad: torch.Tensor):
    from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(tau=2.0, step_mode="m")

    def step():
        x.grad = None
        node.reset()
        node(x).backward(grad)

    return step


def _variants(x: torch.Tensor, grad: torch.Tensor, repeats: int) -> dict:
    """The C++ launchers alone: backward from x (recompute) vs from a saved h_seq, fwd + bwd seconds."""
    from accelkit.kernels.spiking.cpu import neuron_backward_cpu, neuron_forward_cpu

    opts = dict(decay=0.5, decay_input=True, v_threshold=1.0, v_reset=0.0)
    bopts = dict(want_decay=False, surrogate="sigmoid", alpha=4.0, detach_reset=False, **opts)
    xd = x.detach()

    def recompute():
        neuron_forward_cpu(xd, None, **opts)
        neuron_backward_cpu(xd, None, grad, None, None, **bopts)

    def saved_h():
        _, _, _, h = neuron_forward_cpu(xd, None, store_h_seq=True, **opts)
        neuron_backward_cpu(xd, None, grad, None, None, h_seq=h, **bopts)

    return {"recompute_from_x": _timed(recompute, repeats), "saved_h_seq": _timed(saved_h, repeats)}


def _check(x: torch.Tensor, grad: torch.Tensor) -> None:
    """Ours and the peer agree on this input before anything is timed (spikes exactly, grad x to fp32 tolerance)."""
    from spikingjelly.activation_based import neuron

    from accelkit import ops

    a = x.detach()[:, :4096].clone().requires_grad_()
    b = a.detach().clone().requires_grad_()
    sa = ops.lif(a)
    sa.backward(grad[:, :4096])
    sb = neuron.LIFNode(tau=2.0, step_mode="m")(b)
    sb.backward(grad[:, :4096])
    if not torch.equal(sa, sb) or not torch.allclose(a.grad, b.grad, atol=1e-5, rtol=2e-6):
        raise SystemExit("lif_cpu: accelkit and SpikingJelly disagree on the benchmark input")


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="lif_cpu")
    parser.add_argument("--t", type=int, default=32)
    parser.add_argument("--n", type=int, default=2**18)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(args.t, args.n, generator=gen) + 0.5).requires_grad_()
    grad = torch.randn(args.t, args.n, generator=gen)
    _check(x, grad)
    nbytes = 5 * args.t * args.n * 4
    probes = [read_bandwidth()]
    ours_step = _ours(x, grad)
    ours = _timed(ours_step, args.repeats)
    peer = _timed(_peer(x, grad), args.repeats)
    variants = _variants(x, grad, args.repeats)
    paired = paired_fraction(ours_step, nbytes, args.repeats)
    probes.append(read_bandwidth())
    best = max(v for p in probes for v in p.values())
    rate_best, rate_median = nbytes / ours["min"], nbytes / ours["median"]
    print(f"  LIF fwd+bwd T={args.t} N={args.n} fp32: {nbytes / 1e6:.0f} MB minimum traffic")
    for who, t in (("accelkit", ours), ("spikingjelly", peer)):
        print(f"  {who:>13}: median {t['median'] * 1e3:8.2f} ms (min {t['min'] * 1e3:.2f}, max {t['max'] * 1e3:.2f})")
    for name, t in variants.items():
        print(f"  C++ launchers, {name}: median {t['median'] * 1e3:.2f} ms")
    print(f"  read bandwidth (best reduction over 1 GiB): {best / 1e9:.1f} GB/s; ours {rate_best / 1e9:.1f} GB/s "
          f"best call ({rate_best / best:.0%}), {rate_median / 1e9:.1f} GB/s median call "
          f"({rate_median / best:.0%}), paired median {statistics.median(paired):.0%}")  # fmt: skip
    return {
        "name": "lif_cpu",
        "metric": f"LIF fwd+bwd calls per second (T={args.t}, N={args.n}, fp32)",
        "ours": 1.0 / ours["median"],
        "peer": 1.0 / peer["median"],
        "ratio": peer["median"] / ours["median"],
        "peer_name": "spikingjelly 2.0.0 LIFNode(step_mode='m'), CPU",
        "ops": 2 * args.t * args.n,
        "bytes": nbytes,
        "seconds": ours["median"],
        "gb_per_s": rate_median / 1e9,
        "gb_per_s_best_call": rate_best / 1e9,
        "measured_read_bandwidth_gb_per_s": best / 1e9,
        "bandwidth_fraction": rate_best / best,
        "bandwidth_fraction_median": rate_median / best,
        "bandwidth_fraction_paired": statistics.median(paired),
        "bandwidth_probes": probes,
        "timings": {"ours": ours, "peer": peer, **variants},
        "threads": torch.get_num_threads(),
        "note": "shared 2-core host; see bandwidth_fraction_paired for the same-moment comparison",
    }
