"""Fuzz targets for the file parsers (SCALE-Sim .cfg, topology CSV in conv and GEMM form, the layout CSV of
`accelkit scalesim -l`) and for the two command lines that read them, `accelkit sim` and `accelkit scalesim`.

Files start from a valid text and are mutated: lines dropped, duplicated or truncated, columns added or removed,
values replaced by huge, negative, fractional or non-numeric ones, sections and keys repeated, random and
non-UTF-8 bytes spliced in. A parser may succeed or raise a ValueError (ConfigError) that starts `path:line:`;
a command may exit 0 with complete outputs, or exit 2 with a one-line message and no output file left behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import hypothesis.strategies as st

from accelkit import cli
from accelkit.sim.hardware import Hardware
from accelkit.sim.networks import NETWORKS, get_network
from accelkit.sim.scalesim.config import ScaleSimConfig, config_text, read_config
from accelkit.sim.scalesim.streams import CompatLayer
from accelkit.sim.scalesim.topology import read_topology
from fuzz.core import Case, Target, file_error

# Replacement values: huge (past int64 and float), negative, zero, fractional, hex, non-ASCII digits, empty.
BAD_NUMBERS = ("0", "-5", "9" * 40, "1e3", "2.5", "0x10", "١٢", "", "nan", "abc", "10,20", "True", "%d", "1 2")
JUNK_LINES = ("[general]", "[architecture_presets]", "ArrayHeight: 4", "= 3", ":", "[", "]", "[]", "a,b,c", ",,,,,,,")
NON_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\xfe\xff")


@st.composite
def mutated(draw, text: str) -> bytes:
    """`text` with 0-3 random edits, as the bytes written to the file."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(("drop", "dup", "truncate", "value", "junk", "bytes", "column", "case")))
        lines = lines or [""]
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, line)
        elif op == "truncate":
            lines[i] = line[: draw(st.integers(0, len(line)))]
        elif op == "value":
            sep = ":" if ":" in line else "=" if "=" in line else None
            if sep is None:
                fields = line.split(",")
                fields[draw(st.integers(0, len(fields) - 1))] = draw(st.sampled_from(BAD_NUMBERS))
                lines[i] = ",".join(fields)
            else:
                lines[i] = f"{line.partition(sep)[0]}{sep} {draw(st.sampled_from(BAD_NUMBERS))}"
        elif op == "junk":
            lines.insert(i, draw(st.one_of(st.sampled_from(JUNK_LINES), st.text(max_size=20))))
        elif op == "bytes":
            return "\n".join(lines).encode() + draw(st.one_of(st.sampled_from(NON_UTF8), st.binary(max_size=16)))
        elif op == "column":
            lines[i] = line + draw(st.sampled_from((", 7", ",", ", x", ", 2:4", ", 1, 1, 1")))
        elif op == "case":
            lines[i] = line.upper()
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=200))
    return "\n".join(lines).encode()


# --- valid starting points ---

SMALL_ARRAYS = (2, 3, 4, 8, 16)


@st.composite
def config_texts(draw) -> str:
    hw = Hardware(
        rows=draw(st.sampled_from(SMALL_ARRAYS)),
        cols=draw(st.sampled_from(SMALL_ARRAYS)),
        dataflow=draw(st.sampled_from(("os", "ws", "is"))),
        ifmap_sram_bytes=1024 * draw(st.sampled_from((1, 2, 64))),
        filter_sram_bytes=1024 * draw(st.sampled_from((1, 2, 64))),
        ofmap_sram_bytes=1024 * draw(st.sampled_from((1, 2, 64))),
        dram_bw_words_per_cycle=draw(st.sampled_from((None, 1, 10))),
        run_name="fuzz_run",
    )
    return config_text(hw)


CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"
GEMM_HEADER = "Layer, M, N, K,"


@st.composite
def topology_texts(draw, gemm: bool) -> str:
    """1-3 small layers (at most 12 x 12 ifmaps, 8 channels), so compat mode runs each in milliseconds."""
    rows = [GEMM_HEADER if gemm else CONV_HEADER]
    for i in range(draw(st.integers(1, 3))):
        if gemm:
            m, n, k = (draw(st.integers(1, 16)) for _ in range(3))
            rows.append(f"g{i}, {m}, {n}, {k},")
        else:
            h = draw(st.integers(1, 12))
            r = draw(st.integers(1, h))
            name = draw(st.sampled_from((f"c{i}", f"DPc{i}")))
            c, n, s = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 3))
            rows.append(f"{name}, {h}, {h}, {r}, {r}, {c}, {n}, {s},")
    if draw(st.booleans()):
        rows.append("")
    return "\n".join(rows)


def _lines(data: bytes) -> int:
    return data.count(b"\n") + 1


# --- parsers ---


@st.composite
def _config_cases(draw) -> Case:
    data = draw(mutated(draw(config_texts())))
    return config_case(draw(st.sampled_from(("scale.cfg", "my config.cfg", "ü.cfg"))), data)


def config_case(name: str, data: bytes) -> Case:
    def call(workdir: Path):
        path = workdir / name
        path.write_bytes(data)
        return read_config(path)

    def check(cfg) -> None:
        assert isinstance(cfg, ScaleSimConfig), f"read_config returned a {type(cfg).__name__}"
        assert isinstance(cfg.hardware, Hardware), f"hardware is a {type(cfg.hardware).__name__}"

    return Case(f"read_config(<{name}: {data!r}>)", call, check, on_error=_file_error_in(name, data))


def _file_error_in(name: str, data: bytes):
    """file_error for a file written into the case's workdir, whose path is known only at call time."""

    def judge(error: BaseException) -> None:
        message = str(error)
        path = message.split(":", 1)[0]
        assert path.endswith(name), f"the error does not start with the file's path: {message!r}"
        file_error(Path(path), _lines(data))(error)

    return judge


@dataclass(frozen=True)
class _Topology:
    data: bytes
    gemm: bool

    def expected_rows(self) -> tuple[int, bool]:
        """Non-blank rows after the header, and whether any may expand (a DP layer is one layer per channel)."""
        text = self.data.decode("utf-8", "replace")
        rows = [r for r in text.splitlines()[1:] if r.strip()]
        return len(rows), not self.gemm and any("DP" in r.split(",")[0] for r in rows)


@st.composite
def _topology_cases(draw, gemm: bool) -> Case:
    return topology_case(draw(mutated(draw(topology_texts(gemm)))), gemm)


def topology_case(data: bytes, gemm: bool) -> Case:
    topo = _Topology(data, gemm)

    def call(workdir: Path):
        path = workdir / "topology.csv"
        path.write_bytes(topo.data)
        return read_topology(path, gemm=gemm)

    def check(layers) -> None:
        assert isinstance(layers, list) and layers, f"read_topology returned {layers!r:.80}"
        rows, expands = topo.expected_rows()
        assert len(layers) >= rows if expands else len(layers) == rows, f"{len(layers)} layers from {rows} rows"
        for layer in layers:
            assert isinstance(layer, CompatLayer), f"a layer is a {type(layer).__name__}"
            dims = (layer.ifmap_h, layer.ifmap_w, layer.filter_h, layer.filter_w, layer.channels, layer.num_filters)
            assert min(dims) >= 1, f"layer {layer.name} has a size below 1: {dims}"

    return Case(
        f"read_topology(<{topo.data!r}>, gemm={gemm})",
        call,
        check,
        on_error=_file_error_in("topology.csv", topo.data),
    )


# --- command lines ---


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str
    workdir: Path
    inputs: frozenset[str]


@contextlib.contextmanager
def _chdir(path: Path):
    """contextlib.chdir, which Python 3.10 lacks: relative paths in argv resolve inside the case's folder."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _run_cli(argv: list[str], workdir: Path, inputs: set[str]) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse's usage errors exit 2 with the message on stderr
            code = exit_.code if isinstance(exit_.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue(), workdir, frozenset(inputs))


def _stray_files(result: CliResult, allowed: set[Path]) -> list[str]:
    """Files under the workdir that are neither inputs nor allowed outputs: partial or temporary outputs."""
    stray = []
    for path in result.workdir.rglob("*"):
        if path.is_file() and path.name not in result.inputs and path not in allowed:
            stray.append(str(path.relative_to(result.workdir)))
    return stray


def _error_line(result: CliResult, prog: str) -> None:
    assert result.code == 2, f"exit status {result.code}; stderr: {result.stderr!r}"
    lines = result.stderr.strip().splitlines()
    assert lines, "exit status 2 without a message"
    assert lines[-1].startswith(f"{prog}: error: "), f"the last stderr line is not '{prog}: error: ...': {lines}"


def _file_arg(draw, workdir_name: str, data: bytes | None) -> tuple[str, bytes | None]:
    """A path argument: the drawn file, a missing file, or a folder."""
    pick = draw(st.integers(0, 9))
    if pick == 0:
        return "missing.csv", None
    if pick == 1:
        return ".", None
    return workdir_name, data


@st.composite
def _sim_cli_cases(draw) -> Case:
    files: dict[str, bytes] = {}
    argv = ["sim"]
    network = None
    if draw(st.booleans()):
        network = draw(st.sampled_from(NETWORKS)) if draw(st.integers(0, 5)) else draw(st.sampled_from(("x", "")))
        argv += ["--network", network]
    else:
        gemm = draw(st.booleans())
        name, data = _file_arg(draw, "topo.csv", draw(mutated(draw(topology_texts(gemm)))))
        if data is not None:
            files[name] = data
        argv += ["--topology", name]
    if draw(st.booleans()):
        name, data = _file_arg(draw, "arch.cfg", draw(mutated(draw(config_texts()))))
        if data is not None:
            files[name] = data
        argv += ["--config", name]
    elif draw(st.booleans()):
        argv += ["--preset", draw(st.sampled_from(("tpu_v1", "eyeriss", "tpu")))]
    flags = {
        "--dataflow": ("os", "ws", "is", "xs"),
        "--rows": ("1", "8", "0", "-3", "2.5", "9" * 30, "x"),
        "--cols": ("1", "8", "0", "abc"),
        "--bandwidth": ("calc", "CALC", "4", "0.5", "0", "-1", "nan", "inf", "x"),
        "--mode": ("native", "compat", "other"),
        "--batch": ("1", "2", "0", "x"),
        "--seq-len": ("16", "0", "100000"),
    }
    for flag, values in flags.items():
        if draw(st.integers(0, 3)) == 0:
            argv += [flag, draw(st.sampled_from(values))]
    if draw(st.integers(0, 4)) == 0:
        argv.append("--accumulate-on-chip")
    csv_name = json_name = None
    if draw(st.booleans()):
        csv_name = draw(st.sampled_from(("out.csv", "sub/out.csv", "topo.csv" if "topo.csv" in files else "o.csv")))
        argv += ["--csv", csv_name]
    if draw(st.booleans()):
        json_name = draw(st.sampled_from(("out.json", "missing/dir/out.json", ".")))
        argv += ["--json", json_name]
    argv.append("--quiet")
    return sim_cli_case(argv, files)


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def sim_cli_case(argv: list[str], files: dict[str, bytes]) -> Case:
    """`accelkit` + argv (argv[0] = "sim"), run in a folder holding `files`."""
    csv_name, json_name, network = _flag(argv, "--csv"), _flag(argv, "--json"), _flag(argv, "--network")
    # The CSV and JSON must list every layer of the network; --batch and --seq-len may change the count.
    plain_network = network in NETWORKS and "--batch" not in argv and "--seq-len" not in argv
    expected = len(get_network(network)) if plain_network else None

    def call(workdir: Path) -> CliResult:
        for name, data in files.items():
            (workdir / name).write_bytes(data)
        with _chdir(workdir):
            return _run_cli(argv, workdir, set(files))

    def check(result: CliResult) -> None:
        outputs = {result.workdir / n for n in (csv_name, json_name) if n}
        if result.code != 0:
            _error_line(result, "accelkit sim")
            # A failed run leaves no output behind, in particular no half-written CSV or JSON.
            assert not _stray_files(result, set()), f"partial outputs left: {_stray_files(result, set())}"
            return
        assert result.stdout.strip(), "exit 0 but nothing printed"
        assert not _stray_files(result, outputs), f"stray files: {_stray_files(result, outputs)}"
        counts = []
        if csv_name:
            with open(result.workdir / csv_name, newline="") as handle:
                counts.append(len(list(csv.DictReader(handle))))
        if json_name:
            counts.append(len(json.loads((result.workdir / json_name).read_text())["layers"]))
        assert all(c >= 1 for c in counts), f"outputs list {counts} layers"
        assert len(set(counts)) <= 1, f"the CSV and the JSON list different layer counts: {counts}"
        if expected is not None and counts:
            assert counts[0] == expected, f"outputs list {counts[0]} layers, the network has {expected}"

    return Case(f"accelkit {' '.join(argv)}  # files: {files!r}", call, check, names=())


@st.composite
def _scalesim_cli_cases(draw) -> Case:
    files: dict[str, bytes] = {}
    gemm = draw(st.booleans())
    cfg_name, cfg = _file_arg(draw, "scale.cfg", draw(mutated(draw(config_texts()))))
    topo_name, topo = _file_arg(draw, "topology.csv", draw(mutated(draw(topology_texts(gemm)))))
    files.update({n: d for n, d in ((cfg_name, cfg), (topo_name, topo)) if d is not None})
    argv = ["scalesim", "-c", cfg_name, "-t", topo_name, "-p", draw(st.sampled_from(("out", "out/deep", "scale.cfg")))]
    if draw(st.integers(0, 4)):
        argv += ["-i", "gemm" if gemm else "conv"]
    elif draw(st.booleans()):
        argv += ["-i", "fc"]
    if draw(st.booleans()):
        # The layout CSV: scalesim only checks it exists (custom layouts are unsupported), whatever it holds.
        layout_name, layout = _file_arg(draw, "layout.csv", draw(mutated("Layer name,\nc0,\n")))
        if layout is not None:
            files[layout_name] = layout
        argv += ["-l", layout_name]
    if draw(st.integers(0, 3)) == 0:
        argv += ["-s", draw(st.sampled_from(("Y", "N", "yes")))]
    return scalesim_cli_case(argv, files)


def scalesim_cli_case(argv: list[str], files: dict[str, bytes]) -> Case:
    """`accelkit` + argv (argv[0] = "scalesim"), run in a folder holding `files`."""
    out_dir, topo_name = _flag(argv, "-p"), _flag(argv, "-t")

    def call(workdir: Path) -> CliResult:
        for name, data in files.items():
            (workdir / name).write_bytes(data)
        with _chdir(workdir):
            return _run_cli(argv, workdir, set(files))

    def check(result: CliResult) -> None:
        if result.code != 0:
            _error_line(result, "accelkit scalesim")
            assert not _stray_files(result, set()), f"partial outputs left: {_stray_files(result, set())}"
            return
        # The run folder is the config's run_name, which a mutation may have changed (say, upper-cased).
        run = result.workdir / out_dir / read_config(result.workdir / _flag(argv, "-c")).hardware.run_name
        reports = {run / f"{r}_REPORT.csv" for r in ("COMPUTE", "BANDWIDTH", "DETAILED_ACCESS")}
        for report in reports:
            assert report.is_file(), f"exit 0 but {report.name} is missing"
        layers = len(read_topology(result.workdir / topo_name, gemm="gemm" in argv, allow_empty=True))
        rows = (run / "COMPUTE_REPORT.csv").read_text().strip().splitlines()
        assert len(rows) == layers + 1, f"COMPUTE_REPORT has {len(rows) - 1} rows for {layers} layers"
        traces = {p for p in run.rglob("*") if p.is_file() and p.parent != run}
        assert not _stray_files(result, reports | traces), f"stray files: {_stray_files(result, reports | traces)}"

    return Case(f"accelkit {' '.join(argv)}  # files: {files!r}", call, check, names=())


# Reproducers of bugs the fuzzer found (see README.md); each runs first in every fuzz run of its target.
_CONV_ROW = CONV_HEADER + "\n{}, 4, 4, 1, 1, {}, 1, 1,\n"
# A DP layer is one layer per channel: 10^11 channels once built 10^11 layers before anything ran.
DP_HUGE_CHANNELS = topology_case(_CONV_ROW.format("DPc0", 10**11).encode(), gemm=False)
# Past int64 (SCALE-Sim's NumPy sizes): refused with file:line, not later by Conv without them.
CONV_PAST_INT64 = topology_case(_CONV_ROW.format("c0", 10**23).encode(), gemm=False)
# A 40-digit ArrayHeight was reported against [general] run_name; it must name its own line.
CFG_HUGE_ROWS = config_case(
    "scale.cfg",
    config_text(Hardware(4, 4, run_name="r")).replace("ArrayHeight: 4", "ArrayHeight: " + "9" * 40).encode(),
)
# --json into a missing folder failed after the CSV was written, leaving out.csv behind with exit status 2.
SIM_CSV_LEFT_BEHIND = sim_cli_case(
    ["sim", "--network", "resnet50", "--csv", "out.csv", "--json", "missing/dir/out.json", "--quiet"], {}
)

TARGETS = [
    Target("file.scalesim_cfg", _config_cases(), errors=(ValueError,), examples=(CFG_HUGE_ROWS,)),
    Target(
        "file.topology_conv",
        _topology_cases(gemm=False),
        errors=(ValueError,),
        examples=(DP_HUGE_CHANNELS, CONV_PAST_INT64),
    ),
    Target("file.topology_gemm", _topology_cases(gemm=True), errors=(ValueError,)),
    # The commands handle their own errors: any exception escaping main() is a bug, so none is allowed.
    Target("cli.sim", _sim_cli_cases(), errors=(), timeout_s=20.0, examples=(SIM_CSV_LEFT_BEHIND,)),
    Target("cli.scalesim", _scalesim_cli_cases(), errors=(), timeout_s=20.0),
]
