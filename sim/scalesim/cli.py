"""`accelkit scalesim`: SCALE-Sim 3.0.0's command line, flags, config files, topologies and reports.

    accelkit scalesim -c CFG -t TOPOLOGY -p OUTDIR [-i conv|gemm] [-l LAYOUT] [-s Y|N]

writes OUTDIR/<run_name>/{COMPUTE,BANDWIDTH,DETAILED_ACCESS}_REPORT.csv with scalesim's numbers, and with
`-s Y` the per-cycle traces in OUTDIR/<run_name>/layer<i>/. Reports are written to a temporary folder inside
OUTDIR and renamed into place at the end, so a failed run leaves no partial report. Only NumPy (and the C++
extension accelkit._C, for the read buffers, when it is built) is imported; never torch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

USAGE = "accelkit scalesim [--version] -c CFG -t TOPOLOGY -p OUTDIR [-i conv|gemm] [-l LAYOUT] [-s Y|N]"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="accelkit scalesim", usage=USAGE, description="SCALE-Sim 3.0.0 compatible runner (exact numbers, fast)."
    )
    p.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    p.add_argument("-c", metavar="CFG", required=True, help="SCALE-Sim config file (.cfg)")
    p.add_argument("-t", metavar="TOPOLOGY", help="topology CSV (default: the config's TopologyCsvLoc)")
    p.add_argument("-p", metavar="OUTDIR", default="./results/", help="output folder (default ./results/)")
    p.add_argument("-i", metavar="TYPE", default="conv", choices=("conv", "gemm"), help="topology type")
    p.add_argument("-l", metavar="LAYOUT", help="layout CSV; accepted, must exist, custom layouts unsupported")
    p.add_argument(
        "-s",
        metavar="Y|N",
        default="N",
        choices=("Y", "N"),
        help="save per-cycle traces (default N; scalesim 3.0.0 always saves them)",
    )
    return p


def _version() -> str:
    from accelkit import __version__

    return f"accelkit {__version__}"


def _run(args: argparse.Namespace) -> Path:
    from accelkit.sim.scalesim.config import ConfigError, read_config
    from accelkit.sim.scalesim.engine import check_compat_workload, simulate_compat
    from accelkit.sim.scalesim.reports import write_reports
    from accelkit.sim.scalesim.topology import read_topology

    cfg = read_config(args.c)
    topo = args.t or cfg.topology_path
    if not topo:
        raise ConfigError(f"{args.c}:1: no topology: pass -t or set [network_presets] TopologyCsvLoc")
    if args.l and not Path(args.l).is_file():
        raise ConfigError(f"{args.l}: layout file not found")
    layers = read_topology(topo, gemm=args.i == "gemm", allow_empty=True)
    if not layers:
        print(
            f"accelkit scalesim: warning: {topo}: no layers; writing reports without rows, as scalesim does",
            file=sys.stderr,
        )
    check_compat_workload(layers, cfg.hardware)
    out = Path(args.p)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: -p must name a folder (existing or new), and this is a file")
    out.mkdir(parents=True, exist_ok=True)
    target = out / cfg.hardware.run_name
    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.hardware.run_name}.", dir=out))
    try:
        stats = []
        for i, layer in enumerate(layers):
            stats.append(simulate_compat(layer, cfg.hardware))
            if args.s == "Y":
                from accelkit.sim.scalesim.traces import write_layer_traces

                write_layer_traces(layer, cfg.hardware, tmp / f"layer{i}")
        write_reports(stats, tmp)
        _install(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for i, s in enumerate(stats):
        print(f"layer {i} {s.name}: total cycles {s.total_cycles}, stall cycles {s.stall_cycles}")
    return target


def _install(tmp: Path, target: Path) -> None:
    """Move the finished outputs into `target`, replacing earlier ones, as scalesim overwrites its folder."""
    if not target.exists():
        os.rename(tmp, target)
        return
    for item in tmp.iterdir():
        dest = target / item.name
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(item, dest)


def _one_line(exc: ValueError | OSError) -> str:
    """The error as one line; an OSError (say, OUTDIR is a file) names the path it failed on."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    # The simulator never calls BLAS, and NumPy's import spins up one OpenBLAS thread per core: 0.09 s to import
    # NumPy with one thread against 0.14-0.46 s with the default pool on a loaded 2-core machine. A user's own
    # setting wins; in-process callers that imported NumPy already are unaffected.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        target = _run(args)
    except (ValueError, OSError) as exc:
        print(f"accelkit scalesim: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    print(f"reports written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
