"""`accelkit roofline`: a roofline chart (PNG) and table (CSV, JSON) of op costs, benchmark records or the layers of
a simulated network on a device.

  accelkit roofline --device h100 --op flash_attention --shape B=1,T=8192,H=32,D=128,causal=true
  accelkit roofline --hardware tpu_v1 --network resnet50
  accelkit roofline --records bench/out/records.jsonl          # on this machine's measured roofs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accelkit._optional import MissingDependency, require


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accelkit roofline", description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", default=None, help="a100, h100, h200, host (measured, cached) or a sim preset")
    parser.add_argument("--precision", default=None, help="which compute roof bounds the points (e.g. fp32, bf16)")
    parser.add_argument("--op", action="append", default=[], help="an accelkit.ops name (repeat with --shape)")
    parser.add_argument("--shape", action="append", default=[], help="the op's shape, e.g. B=1,T=8192,H=32,D=128")
    parser.add_argument("--hardware", default=None, help="simulator preset whose layers (--network) are plotted")
    parser.add_argument("--network", default=None, help="network simulated on --hardware, one point per layer")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--records", default=None, help="bench/out/records.jsonl: measured points")
    parser.add_argument("--all-records", action="store_true", help="plot records of every device, not just --device's")
    parser.add_argument("--out", default=".", help="output directory (default: .)")
    parser.add_argument("--name", default="roofline", help="file stem: NAME.png, NAME.csv, NAME.json")
    parser.add_argument("--refresh-host", action="store_true", help="re-measure this machine's roofs")
    return parser


def _device(args):
    from accelkit.roofline.devices import accelerator_device, resolve_device, with_peak

    if args.device is None and args.hardware is not None:
        from accelkit.sim.hardware import resolve_hardware

        device = accelerator_device(resolve_hardware(args.hardware))
    else:
        device = resolve_device(args.device or "host", **({"refresh": True} if args.refresh_host else {}))
    return with_peak(device, args.precision) if args.precision else device


def _record_device(device) -> str:
    """The records a device's chart shows: this machine's benchmarks on 'host', a simulator benchmark's on its
    accelerator, GPU runs on a datasheet GPU (records say 'cuda: <GPU name>')."""
    if device.name.startswith("this machine"):
        return "host"
    if device.source.startswith("accelkit.sim"):
        return f"simulated: {device.name}"
    return "cuda"


def _points(args, device) -> list:
    from accelkit.roofline.points import analytic_point, parse_shape, record_points, simulated_points

    if len(args.op) != len(args.shape):
        raise ValueError(f"give one --shape per --op ({len(args.op)} ops, {len(args.shape)} shapes)")
    points = [analytic_point(op, parse_shape(shape)) for op, shape in zip(args.op, args.shape, strict=True)]
    if args.network is not None:
        if args.hardware is None:
            raise ValueError("--network needs --hardware (the simulator preset to run it on)")
        points += simulated_points(args.network, args.hardware, batch=args.batch)
    if args.records is not None:
        points += record_points(args.records, None if args.all_records else _record_device(device))
    if not points:
        raise ValueError("nothing to plot: give --op/--shape, --hardware/--network or --records")
    return points


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        require("matplotlib", feature="accelkit roofline")
        from accelkit.roofline.chart import plot, write_table
        from accelkit.roofline.points import judge

        device = _device(args)
        points = [judge(point, device) for point in _points(args, device)]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        png = plot(points, device, out / f"{args.name}.png")
        csv_path, json_path = write_table(points, out / args.name)
    except (MissingDependency, ValueError, OSError) as exc:
        print(f"accelkit roofline: {exc}", file=sys.stderr)
        return 2
    ridge = device.ridge()
    print(f"{device.name}: peak {device.peak() / 1e12:.4g} T ops/s" + (
        f", {device.bandwidth_bytes_per_s / 1e9:,.0f} GB/s, ridge {ridge:.3g} ops/byte" if ridge else ", no memory roof"
    ))  # fmt: skip
    for point in points:
        fraction = f"{point.fraction:.1%}" if point.fraction is not None else "-"
        print(f"  {point.kind:<9} {point.name[:48]:<48} AI {point.intensity:9.3g}  {point.bound_kind:<7} bound "
              f"{point.bound_ops_per_s / 1e12:9.4g} T/s  reached {fraction}")  # fmt: skip
    print(f"wrote {png}, {csv_path}, {json_path}")
    return 0
