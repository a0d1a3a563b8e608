"""Decode attention on the CPU: accelkit's Lean Attention (C++ stream-K) against torch SDPA on the same inputs.

Headline: one new token, B = 1, H_q = H_kv = 32, T = 65536 cached keys, D = 128, float32 cache [B, T, H, D] (the
layout of flash-attn's KV cache). SDPA gets the same tensors as [B, H, T, D] views (what a user with this cache
calls); for reference, SDPA on a contiguous [B, H, T, D] copy (the copy not timed) is reported too. Second case: a
ragged batch of 8 sequences of 1k to 64k keys (H = 8, so the padded caches stay at 2 GiB each), ours over
cache_seqlens against SDPA over the padded batch with a boolean key mask.

Rates are bytes of K and V the attention must read (the valid keys only) per second of the call. The machine's read
bandwidth is measured in the same run: the best of several reductions over a 1 GiB float32 tensor (torch.sum,
torch.amax and torch.dot, the highest rate among them, before and after the timings), since on some hosts one
reduction is compute-bound below the memory's rate and would flatter the fraction; and paired, the same
reductions timed right after each call of ours, since other jobs sharing the host change the memory's rate from one
second to the next. Each timing is the median of --repeats calls after one warm-up; the min and max are reported
because the CPUs may be shared.

The headline fraction compares like with like: our fastest call against the fastest reduction (both are the least
disturbed samples of the run). Our median call against that fastest reduction (a best case against a typical
one) and the paired median are reported beside it.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics

import torch
import torch.nn.functional as F

from accelkit.timing import sample_seconds

GIB = 2**30
RAGGED_LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768, 49152, 65536)


def _public_ops():
    """accelkit.ops.lean_attention / split_kv_attention when the op is wired, else the C++ launchers."""
    try:
        from accelkit import ops

        return ops.lean_attention, ops.split_kv_attention, "accelkit.ops.lean_attention"
    except (ImportError, AttributeError):
        from accelkit.kernels.lean_attention.cpu import lean_attention_cpu, split_kv_attention_cpu

        def lean(q, k, v, lengths, *, num_programs=None):
            return lean_attention_cpu(q[:, None], k, v, lengths, None, None, num_programs)[0][:, 0]

        def split(q, k, v, lengths, *, num_splits=None):
            return split_kv_attention_cpu(q[:, None], k, v, lengths, None, None, num_splits)[0][:, 0]

        return lean, split, "accelkit.kernels.lean_attention.cpu.lean_attention_cpu (op not wired)"


def _timed(fn, repeats: int) -> dict:
    samples = sample_seconds(fn, repeats, warmup=1)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def read_bandwidth(repeats: int = 5) -> dict:
    """Bytes per second of the fastest of three reductions over a 1 GiB float32 tensor, best of `repeats` each."""
    x = torch.ones(GIB // 4)
    rates = {}
    for name, fn in (("sum", lambda: x.sum()), ("amax", lambda: x.amax()), ("dot", lambda: torch.dot(x, x))):
        rates[name] = x.numel() * 4 / min(sample_seconds(fn, repeats, warmup=1))
    return rates


def paired_fraction(fn, nbytes: int, repeats: int) -> list[float]:
    """Per repeat: the rate of `fn` over the fastest reduction timed right after it, so both see the same load
    from whatever else the host runs (other jobs sharing the memory make a probe minutes apart meaningless)."""
    x = torch.ones(GIB // 4)
    probes = (lambda: x.sum(), lambda: x.amax(), lambda: torch.dot(x, x))
    for probe in probes:
        probe()
    fractions = []
    for _ in range(repeats):
        ours = nbytes / sample_seconds(fn, 1)[0]
        best = max(x.numel() * 4 / sample_seconds(probe, 1)[0] for probe in probes)
        fractions.append(ours / best)
    return fractions


def _sdpa(q, k, v, mask=None):
    """SDPA over [B, T, H, D] tensors: one query [B, H, D] -> [B, H, D]."""
    return F.scaled_dot_product_attention(q[:, :, None], k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)[:, :, 0]


def _check(ours, ref, what: str) -> None:
    err = float((ours.double() - ref.double()).abs().max())
    if not err < 1e-4:
        raise SystemExit(f"{what}: ours differs from SDPA by {err:.3e}; timing discarded")


def headline(lean, split, args) -> dict:
    b, h, t, d = 1, args.heads, args.seq, args.dim
    gen = torch.Generator().manual_seed(0)
    k = torch.randn(b, t, h, d, generator=gen)
    v = torch.randn(b, t, h, d, generator=gen)
    q = torch.randn(b, h, d, generator=gen)
    lengths = torch.full((b,), t, dtype=torch.int32)
    _check(lean(q, k, v, lengths), _sdpa(q, k, v), "headline")
    times = {
        "ours": _timed(lambda: lean(q, k, v, lengths), args.repeats),
        "split_kv": _timed(lambda: split(q, k, v, lengths), args.repeats),
        "peer": _timed(lambda: _sdpa(q, k, v), args.repeats),
    }
    k_c, v_c = k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()
    sdpa_c = lambda: F.scaled_dot_product_attention(q[:, :, None], k_c, v_c)  # noqa: E731
    times["peer_bhtd_copy"] = _timed(sdpa_c, args.repeats)
    nbytes = 2 * b * t * h * d * 4
    paired = paired_fraction(lambda: lean(q, k, v, lengths), nbytes, args.repeats)
    return {"bytes": nbytes, "seconds": times, "shape": {"B": b, "H": h, "T": t, "D": d}, "paired_fractions": paired}


def ragged(lean, args) -> dict:
    lens = [min(n, args.seq) for n in RAGGED_LENGTHS]
    b, h, t, d = len(lens), args.ragged_heads, max(lens), args.dim
    gen = torch.Generator().manual_seed(1)
    k = torch.randn(b, t, h, d, generator=gen)
    v = torch.randn(b, t, h, d, generator=gen)
    q = torch.randn(b, h, d, generator=gen)
    lengths = torch.tensor(lens, dtype=torch.int32)
    mask = (torch.arange(t)[None, :] < lengths[:, None])[:, None, None, :]  # [B, 1, 1, T]: True = attend
    _check(lean(q, k, v, lengths), _sdpa(q, k, v, mask), "ragged")
    times = {
        "ours": _timed(lambda: lean(q, k, v, lengths), args.repeats),
        "peer": _timed(lambda: _sdpa(q, k, v, mask), args.repeats),
    }
    return {"bytes": 2 * sum(lens) * h * d * 4, "seconds": times, "lengths": lens, "H": h, "D": d}


def _rate(case: dict, who: str) -> float:
    return case["bytes"] / case["seconds"][who]["median"]


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run.py decode_attention", description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=65536, help="cached keys T (default 65536)")
    parser.add_argument("--heads", type=int, default=32, help="H_q = H_kv of the headline case (default 32)")
    parser.add_argument("--ragged-heads", type=int, default=8, help="H of the ragged case (default 8)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    lean, split, ours_call = _public_ops()
    # Each case allocates its caches and frees them on return (2 + 4 GiB at the defaults), one at a time.
    probes = [read_bandwidth()]
    gc.collect()
    first = headline(lean, split, args)
    gc.collect()
    second = ragged(lean, args)
    gc.collect()
    probes.append(read_bandwidth())
    best = max(max(p.values()) for p in probes)
    ours, peer = _rate(first, "ours"), _rate(first, "peer")
    rag_ours, rag_peer = _rate(second, "ours"), _rate(second, "peer")

    shape = first["shape"]
    print(f"decode attention, float32 cache [B, T, H, D]; threads: ours {_threads()}, torch {torch.get_num_threads()}")
    print(f"  headline B={shape['B']} H={shape['H']} T={shape['T']} D={shape['D']}: {first['bytes'] / 1e9:.2f} GB")
    for name, who in (("ours (" + ours_call + ")", "ours"), ("split-KV (ours)", "split_kv"),
                      ("SDPA, same tensors", "peer"), ("SDPA, [B,H,T,D] copy", "peer_bhtd_copy")):  # fmt: skip
        t = first["seconds"][who]
        print(f"    {name:<58}{t['median'] * 1e3:>9.1f} ms  [{t['min'] * 1e3:.1f}, {t['max'] * 1e3:.1f}]"
              f"{_rate(first, who) / 1e9:>8.2f} GB/s")  # fmt: skip
    print(f"  ragged B=8 lengths {second['lengths']} H={second['H']}: {second['bytes'] / 1e9:.2f} GB of valid K, V")
    for name, who in (("ours", "ours"), ("SDPA over the padded batch + mask", "peer")):
        t = second["seconds"][who]
        print(f"    {name:<58}{t['median'] * 1e3:>9.1f} ms  [{t['min'] * 1e3:.1f}, {t['max'] * 1e3:.1f}]"
              f"{_rate(second, who) / 1e9:>8.2f} GB/s")  # fmt: skip
    print("  read bandwidth (best reduction over 1 GiB, before/after): "
          + ", ".join(f"{k} {v / 1e9:.1f}" for p in probes for k, v in p.items()) + " GB/s")  # fmt: skip
    ours_best = first["bytes"] / first["seconds"]["ours"]["min"]
    print(f"  headline ratio {ours / peer:.2f} (goal 1.3), fastest call {ours_best / best:.0%} of the fastest "
          f"reduction, {best / 1e9:.1f} GB/s (goal 80%); median call {ours / best:.0%}; "
          f"ragged ratio {rag_ours / rag_peer:.2f} (goal 2)")  # fmt: skip
    print(f"  headline against the best reduction timed right after each call: median "
          f"{statistics.median(first['paired_fractions']):.0%}, "
          + ", ".join(f"{f:.0%}" for f in first["paired_fractions"]))  # fmt: skip
    return {
        "name": "decode_attention",
        "metric": "GB/s of K and V read",
        "ours": ours,
        "peer": peer,
        "ratio": ours / peer,
        "ours_call": ours_call,
        "peer_call": "torch.nn.functional.scaled_dot_product_attention on [B, H, T, D] views of the same cache",
        "bandwidth_fraction": ours_best / best,
        "bandwidth_fraction_median": ours / best,
        "bandwidth_fraction_paired": statistics.median(first["paired_fractions"]),
        "measured_read_bandwidth": best,
        "bandwidth_probes": probes,
        "split_kv": _rate(first, "split_kv"),
        "peer_bhtd_copy": _rate(first, "peer_bhtd_copy"),
        "ratio_vs_bhtd_copy": ours / _rate(first, "peer_bhtd_copy"),
        # The roofline point of the headline call (cost model: every valid K and V row read once).
        **_roofline(first),
        "headline": first,
        "ragged": {**second, "ours": rag_ours, "peer": rag_peer, "ratio": rag_ours / rag_peer},
        "ragged_ratio": rag_ours / rag_peer,
        "torch_threads": torch.get_num_threads(),
        "threads": _threads(),
        "cpu_count": os.cpu_count(),
    }


def _roofline(case: dict) -> dict:
    from accelkit.roofline.costs import lean_attention

    shape = case["shape"]
    lengths = [shape["T"]] * shape["B"]
    work = lean_attention(lengths=lengths, h=shape["H"], d=shape["D"], dtype_bytes=4)
    return {"flops": work.work, "bytes": work.bytes, "seconds": case["seconds"]["ours"]["median"]}


def _threads() -> int:
    from accelkit.kernels.lean_attention.cpu import default_threads

    return default_threads()
