"""`accelkit dse SPEC.yaml`: run a design-space exploration and write its report (into the current directory
unless --out says otherwise)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accelkit._optional import MissingDependency, require


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accelkit dse", description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("spec", help="YAML spec (see examples/*.yaml)")
    parser.add_argument("--out", default=".", help="directory for the results and report (default: .)")
    parser.add_argument("--executor", choices=("process", "serial", "ray"), default="process")
    parser.add_argument("--workers", type=int, default=None, help="processes or local Ray CPUs (default: all)")
    parser.add_argument("--address", default=None, help="address of an existing Ray cluster (--executor ray)")
    parser.add_argument("--cache", default="default", help="sqlite result cache (default: the user cache dir)")
    parser.add_argument("--no-cache", action="store_true", help="keep results in memory for this run only")
    parser.add_argument("--design", type=int, default=None, help="design id for the per-layer breakdown")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        for module in ("yaml", "pandas", "matplotlib"):
            require(module, feature="accelkit dse")
        from accelkit.sim.dse.report import write_report
        from accelkit.sim.dse.spec import load_spec
        from accelkit.sim.dse.sweep import run_sweep

        spec = load_spec(args.spec)
        result = run_sweep(
            spec,
            executor=args.executor,
            workers=args.workers,
            address=args.address,
            cache=None if args.no_cache else args.cache,
            progress=not args.quiet,
        )
        paths = write_report(result, Path(args.out), design=args.design)
    except (MissingDependency, ValueError) as exc:  # SpecError is a ValueError
        print(f"accelkit dse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accelkit dse: interrupted; finished designs are cached, the same command resumes", file=sys.stderr)
        return 130
    table = result.table
    rate = len(table) / result.seconds
    print(
        f"{len(table)} designs, {int(table['on_front'].sum())} on the front over {', '.join(spec.objectives)}; "
        f"{result.evaluations:,} layer simulations in {result.seconds:.2f} s ({rate:,.0f} designs/s)"
    )
    print(f"report: {paths['html']}")
    return 0
