"""`accelkit sim`: simulate a built-in network or a SCALE-Sim topology on a preset or a SCALE-Sim config.

Prints a per-layer table with totals and optionally writes CSV/JSON. Any error prints one line and exits 2.
rich is imported only when a table or a progress bar is drawn; nothing here imports torch or triton.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

from accelkit.sim.hardware import DATAFLOWS, PRESETS, Hardware
from accelkit.sim.networks import NETWORKS, canonical_name
from accelkit.sim.report import write_files
from accelkit.sim.workloads import Conv, Gemm

PROG = "accelkit sim"
DEFAULT_PRESET = "tpu_v1"
# SCALE-Sim configs carry no clock; Hardware's default then applies and the CLI says so.
CONFIG_CLOCK_NOTE = "a SCALE-Sim config has no clock: latency is at {mhz:g} MHz (set it with --clock-mhz)"
CONFIG_BANDWIDTH_NOTE = (
    "the config's Bandwidth of {bw:g} words/cycle is per operand in SCALE-Sim; native mode reads it as the total "
    "of one shared DRAM channel (set it with --bandwidth)"
)


class UsageError(Exception):
    """A bad command line or input file; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse says "argument --rows: ..."; the flag alone reads better on one line.
        raise UsageError(message.removeprefix("argument "))


def _number(text: str, kind: type, what: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, "a positive integer")


def positive_number(text: str) -> float:
    return _number(text, float, "a positive number")


def bandwidth(text: str) -> float | None:
    if text.lower() == "calc":
        return None
    return _number(text, float, "positive words/cycle or 'calc'")


def network(text: str) -> str:
    name = canonical_name(text)
    if name not in NETWORKS:
        raise argparse.ArgumentTypeError(f"unknown network {text!r}; choose one of {', '.join(NETWORKS)}")
    return name


def _version() -> str:
    from accelkit import __version__

    return f"accelkit {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n")[0], epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    work = parser.add_mutually_exclusive_group(required=True)
    # type= normalises the spelling ("ResNet-50" -> resnet50) before choices= checks it; choices also feed
    # --help and shell completion.
    work.add_argument("--network", type=network, choices=NETWORKS, help="a built-in network (resnet-50 works)")
    work.add_argument(
        "--topology",
        type=Path,
        help="a SCALE-Sim topology CSV (conv or M,N,K rows); native mode sizes convolutions with the usual floor "
        "rule where SCALE-Sim rounds up (AlexNet Conv1: 54 vs 55 outputs a side), compat mode as SCALE-Sim does",
    )
    arch = parser.add_mutually_exclusive_group()
    arch.add_argument("--preset", choices=tuple(PRESETS), help=f"accelerator preset (default {DEFAULT_PRESET})")
    arch.add_argument("--config", type=Path, help="a SCALE-Sim .cfg file")
    _hardware_flags(parser)
    parser.add_argument(
        "--mode",
        choices=("native", "compat"),
        default="native",
        help="native (default), or compat: SCALE-Sim 3.0.0's numbers, quirks included",
    )
    parser.add_argument("--batch", type=positive_int, default=1, help="batch size of --network (default 1)")
    parser.add_argument("--seq-len", type=positive_int, help="sequence length of bert_base / gpt2")
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


_EPILOG = (
    "Hardware flags override the preset or config. --bandwidth is words/cycle: in native mode the total of one "
    "DRAM channel all operands share, in compat mode SCALE-Sim's per-operand Bandwidth."
)


def _hardware_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataflow", choices=DATAFLOWS, help="override the dataflow")
    parser.add_argument("--rows", type=positive_int, help="override the array height")
    parser.add_argument("--cols", type=positive_int, help="override the array width")
    for op in ("ifmap", "filter", "ofmap"):
        parser.add_argument(
            f"--{op}-sram-kib", type=positive_int, metavar="KIB", help=f"override the {op.upper()} SRAM size in KiB"
        )
    parser.add_argument("--clock-mhz", type=positive_number, metavar="MHZ", help="override the clock (MHz)")
    parser.add_argument(
        "--bandwidth",
        type=bandwidth,
        default=argparse.SUPPRESS,
        metavar="WORDS|calc",
        help="override DRAM words/cycle ('calc' = stall-free CALC mode)",
    )


def _existing(path: Path, flag: str) -> Path:
    if not path.is_file():
        raise UsageError(f"{flag}: no such file: {path}")
    return path


def _base_hardware(args: argparse.Namespace) -> Hardware:
    if args.config is None:
        return PRESETS[args.preset or DEFAULT_PRESET]()
    _existing(args.config, "--config")
    from accelkit.sim.scalesim.config import read_config

    hw = read_config(args.config).hardware
    if args.clock_mhz is None:
        _note(CONFIG_CLOCK_NOTE.format(mhz=hw.clock_mhz))
    if args.mode == "native" and not hw.calc_mode and not hasattr(args, "bandwidth"):
        _note(CONFIG_BANDWIDTH_NOTE.format(bw=hw.dram_bw_words_per_cycle))
    return hw


def _hardware(args: argparse.Namespace) -> Hardware:
    hw = _base_hardware(args)
    changes = {name: getattr(args, name) for name in ("dataflow", "rows", "cols", "clock_mhz")}
    changes.update({f"{op}_sram_bytes": _kib(getattr(args, f"{op}_sram_kib")) for op in ("ifmap", "filter", "ofmap")})
    changes = {name: value for name, value in changes.items() if value is not None}
    if hasattr(args, "bandwidth"):
        changes.update(
            dram_bw_words_per_cycle=args.bandwidth,
            ifmap_dram_bw_words_per_cycle=None,
            filter_dram_bw_words_per_cycle=None,
        )
    return dataclasses.replace(hw, **changes)


def _kib(value: int | None) -> int | None:
    return None if value is None else value * 1024


def _note(message: str) -> None:
    sys.stderr.write(f"{PROG}: note: {message}\n")


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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = _run(args)
        for warning in caught:
            _note(str(warning.message))
        # Both files or neither: a --json that cannot be written must not leave the --csv behind.
        outputs = {args.csv: report.csv_text, args.json: report.json_text}
        write_files({path: text() for path, text in outputs.items() if path is not None})
    except SystemExit as exit_:  # --help, --version
        return int(exit_.code or 0)
    except (UsageError, ValueError, TypeError, OSError) as error:
        sys.stderr.write(f"{PROG}: error: {cli_words(_one_line(error))}\n")
        return 2
    print_report(report, quiet=args.quiet)
    return 0


# The simulator's messages name Python arguments; on the command line the flags are what a user can change.
_API_TO_FLAGS = (
    ("mode='native'", "--mode native"),
    ("mode='compat'", "--mode compat"),
    ("accumulate_on_chip", "--accumulate-on-chip"),
    ("simulate it without functional mode", "run it without --functional"),
    ("Hardware.dram_bw_words_per_cycle", "--bandwidth"),
    ("Hardware.clock_mhz", "--clock-mhz"),
    ("dram_bw_words_per_cycle", "--bandwidth"),
)


def cli_words(message: str) -> str:
    for api, flag in _API_TO_FLAGS:
        message = message.replace(api, flag)
    return message


def _one_line(error: BaseException) -> str:
    text = str(error) if not isinstance(error, OSError) or not error.filename else f"{error.strerror}: {error.filename}"
    return " ".join(text.split())


def print_report(report, *, quiet: bool = False) -> None:
    """A rich table of the per-layer results with a totals row, or the totals line alone when `quiet`."""
    if quiet:
        print(report.summary())
        return
    from rich.console import Console

    # Piped output has no terminal width; 120 columns keeps long layer names on one line.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(report.rich_table())
    console.print(report.summary(), soft_wrap=True)
