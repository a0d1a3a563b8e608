"""`accelkit sim`: simulate a built-in network or a SCALE-Sim topology on a preset or a SCALE-Sim config.

Prints a per-layer table with totals and optionally writes CSV/JSON. Any error prints one line and exits 2.
rich is imported only when a table or a progress bar is drawn; nothing here imports torch or triton.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from accelkit.sim.hardware import DATAFLOWS, Hardware
from accelkit.sim.networks import NETWORKS
from accelkit.sim.workloads import Conv, Gemm

PROG = "accelkit sim"


class UsageError(Exception):
    """A bad command line or input file; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _bandwidth(text: str) -> float | None:
    if text.lower() == "calc":
        return None
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive words/cycle or 'calc', got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n")[0])
    work = parser.add_mutually_exclusive_group(required=True)
    work.add_argument("--network", choices=NETWORKS, help="a built-in network")
    work.add_argument(
        "--topology",
        type=Path,
        help="a SCALE-Sim topology CSV (conv or M,N,K rows); native mode sizes convolutions with the usual floor "
        "rule where SCALE-Sim rounds up (AlexNet Conv1: 54 vs 55 outputs a side), compat mode as SCALE-Sim does",
    )
    arch = parser.add_mutually_exclusive_group()
    arch.add_argument("--preset", choices=("tpu_v1", "eyeriss"), help="accelerator preset (default tpu_v1)")
    arch.add_argument("--config", type=Path, help="a SCALE-Sim .cfg file")
    parser.add_argument("--dataflow", choices=DATAFLOWS, help="override the dataflow")
    parser.add_argument("--rows", type=_positive_int, help="override the array height")
    parser.add_argument("--cols", type=_positive_int, help="override the array width")
    parser.add_argument(
        "--bandwidth",
        type=_bandwidth,
        default=argparse.SUPPRESS,
        help="override DRAM words/cycle ('calc' = stall-free CALC mode)",
    )
    parser.add_argument(
        "--mode",
        choices=("native", "compat"),
        default="native",
        help="native (default), or compat: SCALE-Sim 3.0.0's numbers, quirks included",
    )
    parser.add_argument("--batch", type=_positive_int, default=1, help="batch size of --network (default 1)")
    parser.add_argument("--seq-len", type=_positive_int, help="sequence length of bert_base / gpt2")
    parser.add_argument("--accumulate-on-chip", action="store_true", help="keep K-fold partial sums in SRAM")
    parser.add_argument(
        "--functional",
        nargs="?",
        const="fold",
        choices=("fold", "cycle"),
        help="also push real int8 data through every fold and check it against NumPy; 'cycle' emulates every "
        "cycle of every fold (small layers only)",
    )
    parser.add_argument("--csv", type=Path, help="write per-layer results to this CSV")
    parser.add_argument("--json", type=Path, help="write the report to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="print only the totals line")
    return parser


def _existing(path: Path, flag: str) -> Path:
    if not path.is_file():
        raise UsageError(f"{flag}: no such file: {path}")
    return path


def _hardware(args: argparse.Namespace) -> Hardware:
    if args.config is not None:
        _existing(args.config, "--config")
        from accelkit.sim.scalesim.config import read_config

        hw = read_config(args.config).hardware
    else:
        from accelkit.sim.api import resolve_hardware

        hw = resolve_hardware(args.preset or "tpu_v1")
    changes = {name: getattr(args, name) for name in ("dataflow", "rows", "cols") if getattr(args, name) is not None}
    if hasattr(args, "bandwidth"):
        changes.update(
            dram_bw_words_per_cycle=args.bandwidth,
            ifmap_dram_bw_words_per_cycle=None,
            filter_dram_bw_words_per_cycle=None,
        )
    return dataclasses.replace(hw, **changes)


def _is_gemm_topology(path: Path) -> bool:
    """SCALE-Sim's `-i gemm` files have the header `Layer, M, N, K`; conv files name IFMAP and filter sizes."""
    # Only the header line is read here, as bytes: read_topology reports any undecodable line with its number.
    with path.open("rb") as handle:
        header = handle.readline().decode("utf-8", errors="replace")
    return [field.strip().lower() for field in header.split(",")][1:4] == ["m", "n", "k"]


def _workload(args: argparse.Namespace) -> list[Gemm | Conv]:
    if args.topology is None:
        from accelkit.sim.networks import get_network

        return get_network(args.network, batch=args.batch, seq_len=args.seq_len)
    if args.batch != 1 or args.seq_len is not None:
        raise UsageError("--batch and --seq-len apply to --network only")
    from accelkit.sim.scalesim.topology import read_topology

    path = _existing(args.topology, "--topology")
    return [layer.as_workload() for layer in read_topology(path, gemm=_is_gemm_topology(path))]


def _run(args: argparse.Namespace):
    from accelkit.sim.api import simulate

    hw = _hardware(args)
    layers = _workload(args)
    options = {"mode": args.mode, "accumulate_on_chip": args.accumulate_on_chip, "functional": args.functional or False}
    if not sys.stderr.isatty():
        return simulate(layers, hw, **options)
    from rich.console import Console
    from rich.progress import Progress

    # The bar goes to stderr so that stdout stays the table (or the CSV-friendly totals line) when piped.
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("simulating", total=len(layers))
        return simulate(layers, hw, progress=lambda done, total, name: bar.update(task, completed=done), **options)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        report = _run(args)
        if args.csv is not None:
            report.to_csv(args.csv)
        if args.json is not None:
            report.to_json(args.json)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except (UsageError, ValueError, OSError) as error:
        sys.stderr.write(f"{PROG}: error: {_one_line(error)}\n")
        return 2
    print_report(report, quiet=args.quiet)
    return 0


def _one_line(error: BaseException) -> str:
    text = str(error) if not isinstance(error, OSError) or not error.filename else f"{error.strerror}: {error.filename}"
    return " ".join(text.split())


def _totals_line(report) -> str:
    t = report.totals
    hw = report.hardware
    return (
        f"{t.layers} layers on {hw.rows}x{hw.cols} {hw.dataflow.upper()} ({report.mode}): {t.total_cycles:,} cycles "
        f"({t.latency_ms:,.3f} ms at {hw.clock_mhz:g} MHz), {t.stall_cycles:,} stalls, util {t.overall_util_pct:.1f}%, "
        f"{t.energy_pj / 1e9:,.3f} mJ, DRAM {t.dram_bytes / 1e6:,.2f} MB"
    )


def print_report(report, *, quiet: bool = False) -> None:
    """A rich table of the per-layer results with a totals row, or the totals line alone when `quiet`."""
    if quiet:
        print(_totals_line(report))
        return
    from rich.console import Console
    from rich.table import Table

    from accelkit.sim.report import dram_words

    table = Table(show_footer=True)
    t = report.totals
    columns = [
        ("layer", "total", "left"),
        ("cycles", f"{t.total_cycles:,}", "right"),
        ("stalls", f"{t.stall_cycles:,}", "right"),
        ("util %", f"{t.overall_util_pct:.1f}", "right"),
        ("map eff %", "", "right"),
        ("energy uJ", f"{t.energy_pj / 1e6:,.1f}", "right"),
        ("DRAM KB", f"{t.dram_bytes / 1e3:,.1f}", "right"),
    ]
    for header, footer, justify in columns:
        table.add_column(header, footer=footer, justify=justify)
    for result in report.layers:
        s = result.stats
        dram_kb = dram_words(s) * report.hardware.word_bytes / 1e3
        table.add_row(
            result.name,
            f"{s.total_cycles:,}",
            f"{s.stall_cycles:,}",
            f"{s.overall_util_pct:.1f}",
            f"{s.mapping_efficiency_pct:.1f}",
            f"{s.total_energy_pj / 1e6:,.1f}",
            f"{dram_kb:,.1f}",
        )
    # Piped output has no terminal width; 120 columns keeps long layer names on one line.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print(_totals_line(report), soft_wrap=True)
