"""`accelkit demo`: which backends run here, every op against its NumPy oracle, then small benchmarks."""

import argparse
import os
import shutil
from collections.abc import Sequence

import numpy as np

from accelkit._optional import available


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _backends() -> list[tuple[str, str, str]]:
    import torch

    from accelkit._native import available, native

    rows = []
    if available():
        f = native().cpu_features()
        isa = native().binary_isa() if hasattr(native(), "binary_isa") else "?"
        rows.append(("C++ (accelkit._C)", "yes", f"isa={isa}, openmp={f['openmp']}, threads={f['threads']}"))
    else:
        rows.append(("C++ (accelkit._C)", "no", "extension not built: run `make setup`"))
    try:
        import triton

        mode = "compiled" if torch.cuda.is_available() else "interpreter (TRITON_INTERPRET=1)"
        rows.append(("Triton", "yes", f"triton {triton.__version__}, {mode}"))
    except ImportError:
        rows.append(("Triton", "no", "triton is not installed"))
    cuda = torch.cuda.is_available()
    rows.append(("CUDA device", "yes" if cuda else "no", torch.cuda.get_device_name() if cuda else "none present"))
    nvcc = shutil.which("nvcc")
    rows.append(("nvcc (AOT checks)", "yes" if nvcc else "no", nvcc or "not on PATH"))
    return rows


def _check(ref: np.ndarray, out) -> tuple[float, bool]:
    """Max abs error against the oracle, and whether every element is within the dtype's tolerance."""
    from accelkit.kernels._common.tolerance import outside

    dtype = out.dtype
    out = out.detach().cpu().numpy()
    err = float(np.max(np.abs(out.astype(np.float64) - ref))) if ref.size else 0.0
    return err, not outside(ref, out, dtype).any()


def _op_checks() -> list[tuple[str, str, str, str]]:
    import torch

    from accelkit import ops
    from accelkit.demo_attention import attention_checks
    from accelkit.demo_delta_rule import delta_rule_checks
    from accelkit.demo_fft_rpe import fft_rpe_checks
    from accelkit.demo_spike_attention import spike_attention_checks
    from accelkit.demo_spiking import spiking_checks
    from accelkit.kernels.binary import reference as ref

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(13, 100, generator=gen, requires_grad=True)
    w = torch.randn(7, 100, generator=gen, requires_grad=True)
    out = ops.binary_matmul(a, w)
    out.backward(torch.ones_like(out))
    ga, gw = ref.binary_matmul_bwd(a.detach().numpy(), w.detach().numpy(), np.ones((13, 7)))
    an, wn = a.detach().double().numpy(), w.detach().double().numpy()
    bits_a, bits_w = ref.pack_bits(an, 64), ref.pack_bits(wn, 64)
    t_bits_a, t_bits_w = torch.from_numpy(bits_a.view(np.int64)), torch.from_numpy(bits_w.view(np.int64))
    xnor = ref.xnor_popcount_matmul(bits_a, bits_w, 100)
    checks = [
        ("binary_matmul fwd", "cpu (C++)", _check(ref.binary_matmul(an, wn), out)),
        ("binary_matmul grad_a", "cpu (PyTorch)", _check(ga, a.grad)),
        ("binary_matmul grad_w", "cpu (PyTorch)", _check(gw, w.grad)),
        ("binarize channel", "cpu (PyTorch)", _check(ref.binarize(wn, "channel"), ops.binarize(w, scale="channel"))),
        ("pack_bits", "cpu (C++)", _check(bits_a.view(np.int64), ops.pack_bits(a.detach(), word_bits=64))),
        *_binary_triton_checks(a.detach(), bits_a, t_bits_a, t_bits_w, xnor),
        ("BinaryLinear eval", "cpu (C++)", _binary_linear_check(a.detach(), w.detach())),
        *attention_checks(_check),
        *spiking_checks(_check),
        *spike_attention_checks(_check),
        *fft_rpe_checks(_check),
        *delta_rule_checks(_check, triton=available("triton")),
    ]
    return [(name, backend, f"{err:.1e}", "ok" if good else "FAIL") for name, backend, (err, good) in checks]


def _binary_triton_checks(a, bits_a, t_bits_a, t_bits_w, xnor) -> list:
    """The Triton pack and GEMM rows; none without triton (the backends table says it is not installed)."""
    if not available("triton"):
        return []
    from accelkit.kernels.binary import triton_kernels as tri

    return [
        ("pack (Triton)", "triton", _check(bits_a.view(np.int64), tri.binary_pack_fwd(a, 64))),
        ("xnor gemm (Triton)", "triton", _check(xnor, tri.binary_gemm_fwd(t_bits_a, t_bits_w, 100))),
    ]


def _binary_linear_check(x, w) -> tuple[float, bool]:
    """BinaryLinear in eval mode (cached packed weights, XNOR-Net channel scale) against the float64 oracle."""
    import torch

    from accelkit.kernels.binary import reference as ref
    from accelkit.nn import BinaryLinear

    layer = BinaryLinear(w.shape[1], w.shape[0], False, scale="channel").eval()
    with torch.no_grad():
        layer.weight.copy_(w)
        out = layer(x)
    wn = w.double().numpy()
    return _check(ref.sign(x.double().numpy()) @ ref.binarize(wn, "channel").T, out)


def _binary_bench(size: int) -> list[tuple[str, str]]:
    import torch

    from accelkit import ops
    from accelkit.timing import sample_seconds

    a, w = torch.randn(size, size), torch.randn(size, size)
    a_bits, w_bits = ops.pack_bits(a, word_bits=64), ops.pack_bits(w, word_bits=64)

    t_bin = min(sample_seconds(lambda: ops.packed_binary_matmul(a_bits, w_bits, size), 5, warmup=1))
    t_e2e = min(sample_seconds(lambda: ops.binary_matmul(a, w), 5, warmup=1))
    t_f32 = min(sample_seconds(lambda: torch.matmul(a, w.T), 5, warmup=1))
    macs = size**3
    return [
        ("problem", f"M = N = K = {size}"),
        ("ops.packed_binary_matmul", f"{macs / t_bin / 1e9:8.1f} GMAC/s"),
        ("ops.binary_matmul (pack + GEMM)", f"{macs / t_e2e / 1e9:8.1f} GMAC/s"),
        ("torch.matmul float32", f"{macs / t_f32 / 1e9:8.1f} GMAC/s"),
        ("ratio (packed op)", f"{t_f32 / t_bin:8.1f}x  (full size: python bench/run.py binary_gemm)"),
    ]


def _kernels_section(size: int) -> list[tuple[str, ...]]:
    import torch

    if not torch.cuda.is_available():
        # Triton must see this before its first import: kernels then run on NumPy, one program at a time.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

    print("== Backends\n" + table(_backends(), ("backend", "available", "details")))
    checks = _op_checks()
    print("\n== Ops against their NumPy float64 oracles\n" + table(checks, ("op", "backend", "max abs err", "")))
    print(f"\n== Binary GEMM, {size}^3\n" + table(_binary_bench(size), ("measure", "value")))
    from accelkit.demo_attention import decode_bench

    print("\n== Decode attention\n" + table(decode_bench(), ("measure", "value")))
    return checks


def _no_kernels_section() -> list[tuple[str, ...]]:
    """A simulator-only install has no torch: say so in one line and show the simulator alone."""
    print("== Kernels\nskipped: torch is not installed; pip install 'accelkit[kernels]' for the ops")
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="accelkit demo", description=__doc__)
    parser.add_argument("--size", type=int, default=1024, help="GEMM size of the small binary benchmark")
    parser.add_argument("--skip-sim", action="store_true", help="leave out the simulator section")
    args = parser.parse_args(argv)
    checks = _kernels_section(args.size) if available("torch") else _no_kernels_section()
    if not args.skip_sim:
        from accelkit.sim import demo as sim_demo

        print("\n== Simulator")
        sim_demo.run(print)
        from accelkit import demo_dse

        print("\n== Design-space exploration")
        demo_dse.run(print)
    return 0 if all(row[-1] == "ok" for row in checks) else 1
