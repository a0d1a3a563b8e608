"""SCALE-Sim .cfg files: v2 keys, and v3 files with their [layout], [sparsity] and request-buffer extras.

Keys are case-insensitive (configparser lower-cases them), section names are not, as in SCALE-Sim. Every problem
raises ConfigError naming the file, the line and the key; SCALE-Sim prints and exits, or crashes later.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

from accelkit.sim.hardware import Hardware


class ConfigError(ValueError):
    """A bad SCALE-Sim config or topology file; the message starts with `file:line:`."""


# Sizes, offsets and bandwidths must fit int64, as SCALE-Sim's NumPy arrays hold them; past that the simulator's
# own checks would refuse them without naming the file, line and key.
INT64_MAX = 2**63 - 1
# A bad value is quoted in the message up to this many characters: a 5000-digit number stays readable.
_QUOTE_CHARS = 40


def quote(raw: str) -> str:
    """`raw` for an error message, shortened past _QUOTE_CHARS characters."""
    return repr(raw) if len(raw) <= _QUOTE_CHARS else f"{raw[:_QUOTE_CHARS]!r}... ({len(raw)} characters)"


@dataclass(frozen=True)
class ScaleSimConfig:
    """What a SCALE-Sim config describes: the hardware plus the run-level settings outside it."""

    hardware: Hardware
    topology_path: str | None
    path: str


def read_text(path: Path, what: str) -> str:
    """The text of a config or topology file, without a leading UTF-8 byte order mark (editors on Windows write
    one); a missing, unreadable or non-UTF-8 file is a ConfigError."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: cannot read {what}: byte {exc.object[exc.start]:#04x} is not UTF-8") from exc


def _parse_error(path: Path, exc: configparser.Error) -> ConfigError:
    """configparser's errors as `file:line:` messages; their attributes differ by type (a missing section header
    is a ParsingError without `.errors` on Python 3.11)."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return ConfigError(f"{path}:{exc.lineno}: expected a [section] header before {exc.line.strip()!r}")
    if isinstance(exc, configparser.ParsingError):
        line, text = exc.errors[0]
        return ConfigError(f"{path}:{line}: cannot parse {text.strip()!r}")
    if isinstance(exc, configparser.DuplicateSectionError):
        return ConfigError(f"{path}:{exc.lineno}: [{exc.section}]: section appears twice")
    if isinstance(exc, configparser.DuplicateOptionError):
        return ConfigError(f"{path}:{exc.lineno}: [{exc.section}] {exc.option}: key appears twice in its section")
    return ConfigError(f"{path}:{getattr(exc, 'lineno', None) or 1}: {exc.message.splitlines()[0]}")


class _Source:
    """A parsed config that can say on which line a section or key sits."""

    def __init__(self, path: Path):
        self.path = path
        text = read_text(path, "config")
        # No interpolation: SCALE-Sim values are plain numbers and names, and with it a `%` in a value would raise
        # InterpolationError from every later lookup instead of a ConfigError naming the key.
        self.parser = configparser.ConfigParser(interpolation=None)
        try:
            self.parser.read_string(text, source=str(path))
        except configparser.Error as exc:
            raise _parse_error(path, exc) from exc
        self.lines = text.splitlines()

    def line_of(self, section: str, key: str | None = None) -> int:
        current = None
        header = 1
        for i, raw in enumerate(self.lines, 1):
            stripped = raw.strip()
            match = re.fullmatch(r"\[(.+)\]", stripped)
            if match:
                current = match.group(1).strip()
                if current == section:
                    header = i
                continue
            if current == section and key and re.match(rf"{re.escape(key)}\s*[:=]", stripped, re.IGNORECASE):
                return i
        return header

    def error(self, section: str, key: str | None, message: str) -> ConfigError:
        where = f"[{section}] {key}" if key else f"[{section}]"
        return ConfigError(f"{self.path}:{self.line_of(section, key)}: {where}: {message}")

    def get(self, section: str, key: str, default: str | None = None) -> str:
        if not self.parser.has_section(section):
            if default is not None:
                return default
            raise ConfigError(f"{self.path}:1: [{section}]: missing section (needed for key {key})")
        if not self.parser.has_option(section, key):
            if default is not None:
                return default
            raise self.error(section, key, "missing key")
        return self.parser.get(section, key).strip()

    def get_int(
        self, section: str, key: str, default: int | None = None, *, minimum: int = 1, maximum: int = INT64_MAX
    ) -> int:
        raw = self.get(section, key, None if default is None else str(default))
        try:
            value = int(raw)
        except ValueError:
            # Also what int() raises for a number of over 4300 digits.
            raise self.error(section, key, f"expected an integer, got {quote(raw)}") from None
        if value < minimum:
            raise self.error(section, key, f"must be >= {minimum}, got {value}")
        if value > maximum:
            raise self.error(section, key, f"must be <= {maximum}, got {quote(str(value))}")
        return value

    def get_bool(self, section: str, key: str, default: bool) -> bool:
        raw = self.get(section, key, str(default)).lower()
        if raw not in ("true", "false"):
            raise self.error(section, key, f"expected True or False, got {raw!r}")
        return raw == "true"


def _unsupported(src: _Source) -> None:
    if src.get_bool("run_presets", "UseRamulatorTrace", False):
        raise src.error("run_presets", "UseRamulatorTrace", "Ramulator traces are not supported")
    for key in ("IfmapCustomLayout", "FilterCustomLayout"):
        if src.get_bool("layout", key, False):
            raise src.error("layout", key, "custom SRAM layouts are not supported")
    if src.get_bool("sparsity", "SparsitySupport", False):
        raise src.error("sparsity", "SparsitySupport", "sparsity is not supported")


def _bandwidths(src: _Source) -> tuple[int | None, int | None, int | None]:
    mode = src.get("run_presets", "InterfaceBandwidth")
    if mode not in ("USER", "CALC"):
        raise src.error("run_presets", "InterfaceBandwidth", f"expected USER or CALC, got {mode!r}")
    if mode == "CALC":
        return None, None, None
    raw = src.get("architecture_presets", "Bandwidth")
    try:
        ofmap_bw = [int(x.strip()) for x in raw.split(",")][0]
    except ValueError:
        raise src.error("architecture_presets", "Bandwidth", f"expected integers, got {quote(raw)}") from None
    if not 1 <= ofmap_bw <= INT64_MAX:
        raise src.error("architecture_presets", "Bandwidth", f"must be in [1, {INT64_MAX}], got {quote(str(ofmap_bw))}")
    # v3 reads IFMAP and filter DRAM bandwidth from [layout]; a v2 file has no [layout] and uses Bandwidth.
    bws = []
    for op in ("Ifmap", "Filter"):
        bw = src.get_int("layout", f"{op}SRAMBankBandwidth", ofmap_bw)
        banks = src.get_int("layout", f"{op}SRAMBankNum", 1)
        if bw % banks:
            raise src.error("layout", f"{op}SRAMBankNum", f"{op}SRAMBankBandwidth={bw} is not divisible by {banks}")
        bws.append(bw)
    return ofmap_bw, bws[0], bws[1]


def read_config(path: str | Path) -> ScaleSimConfig:
    """Parse a SCALE-Sim config into a Hardware (word size 1 byte, SRAM sizes in KiB as SCALE-Sim reads them)."""
    src = _Source(Path(path))
    run_name = src.get("general", "run_name")
    _unsupported(src)
    ofmap_bw, ifmap_bw, filter_bw = _bandwidths(src)
    arch = "architecture_presets"
    dataflow = src.get(arch, "Dataflow")
    if dataflow not in ("os", "ws", "is"):
        # scalesim 3.0.0 compares case-sensitively, warns "Invalid dataflow" and silently simulates os instead.
        raise src.error(arch, "Dataflow", f"expected os, ws or is (lower case), got {dataflow!r}")
    # KiB, so the byte count (x 1024) fits int64 too.
    kib = {op: src.get_int(arch, f"{op}SramSzkB", maximum=INT64_MAX // 1024) for op in ("Ifmap", "Filter", "Ofmap")}
    offsets = {op: src.get_int(arch, f"{op}Offset", minimum=0) for op in ("Ifmap", "Filter", "Ofmap")}
    topology = None
    if src.parser.has_section("network_presets") and src.parser.has_option("network_presets", "TopologyCsvLoc"):
        topology = src.get("network_presets", "TopologyCsvLoc").strip().strip('"')
    fields = dict(
        rows=src.get_int(arch, "ArrayHeight"),
        cols=src.get_int(arch, "ArrayWidth"),
        dataflow=dataflow,
        ifmap_sram_bytes=kib["Ifmap"] * 1024,
        filter_sram_bytes=kib["Filter"] * 1024,
        ofmap_sram_bytes=kib["Ofmap"] * 1024,
        dram_bw_words_per_cycle=ofmap_bw,
        ifmap_dram_bw_words_per_cycle=ifmap_bw,
        filter_dram_bw_words_per_cycle=filter_bw,
        ifmap_offset=offsets["Ifmap"],
        filter_offset=offsets["Filter"],
        ofmap_offset=offsets["Ofmap"],
    )
    _check_run_name(src, run_name)
    try:
        hw = Hardware(**fields, run_name=run_name)
    except (ValueError, TypeError) as exc:
        # Hardware names the field it refused; the message names the key that set it.
        field = re.match(r"Hardware\.(\w+)", str(exc))
        section, key = _FIELD_KEYS.get(field.group(1) if field else "", ("general", "run_name"))
        raise src.error(section, key, str(exc)) from exc
    return ScaleSimConfig(hw, topology, str(path))


# The config key behind each Hardware field, for errors Hardware raises (say, an array too large to simulate).
_FIELD_KEYS = {
    "rows": ("architecture_presets", "ArrayHeight"),
    "cols": ("architecture_presets", "ArrayWidth"),
    "dataflow": ("architecture_presets", "Dataflow"),
    **{f"{op.lower()}_sram_bytes": ("architecture_presets", f"{op}SramSzkB") for op in ("Ifmap", "Filter", "Ofmap")},
    **{f"{op.lower()}_offset": ("architecture_presets", f"{op}Offset") for op in ("Ifmap", "Filter", "Ofmap")},
    "dram_bw_words_per_cycle": ("architecture_presets", "Bandwidth"),
    "ifmap_dram_bw_words_per_cycle": ("layout", "IfmapSRAMBankBandwidth"),
    "filter_dram_bw_words_per_cycle": ("layout", "FilterSRAMBankBandwidth"),
    "run_name": ("general", "run_name"),
}


def _check_run_name(src: _Source, run_name: str) -> None:
    """run_name names the report folder inside OUTDIR (`accelkit scalesim -p`): a path separator or `..` would
    put the reports elsewhere, and `.` or `..` would replace OUTDIR itself."""
    if "/" in run_name or "\\" in run_name or run_name in (".", ".."):
        raise src.error("general", "run_name", f"must name a folder inside the output folder, got {run_name!r}")


# scalesim 3.0.0 reads the bandwidth keys in CALC mode too, and ignores them; its sample configs carry 10.
_UNUSED_CALC_BANDWIDTH = 10

_V3_TEMPLATE = """[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {ifmap_kib}
FilterSramSzkB: {filter_kib}
OfmapSramSzkB: {ofmap_kib}
IfmapOffset: {ifmap_offset}
FilterOffset: {filter_offset}
OfmapOffset: {ofmap_offset}
Bandwidth : {ofmap_bw}
Dataflow : {dataflow}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {ifmap_bw}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {filter_bw}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""


def _whole_kib(hw: Hardware, field: str) -> int:
    value = getattr(hw, field)
    if value % 1024:
        raise ValueError(f"Hardware.{field}={value} is not a whole number of KiB, the unit of SCALE-Sim configs")
    return value // 1024


def _whole_bandwidth(hw: Hardware, field: str, value: float | None) -> int:
    if value is None:
        return _UNUSED_CALC_BANDWIDTH
    if value != int(value):
        raise ValueError(f"Hardware.{field}={value} is not a whole number of words/cycle, as SCALE-Sim needs")
    return int(value)


def config_text(hw: Hardware) -> str:
    """A scalesim 3.0.0 config (v3 format, no sparsity, one SRAM bank) that `read_config` reads back as `hw`.

    SCALE-Sim words are 1 byte and its SRAM sizes whole KiB, so other sizes raise ValueError; clock and energy
    have no place in the file and are dropped.
    """
    if hw.word_bytes != 1:
        raise ValueError(f"Hardware.word_bytes={hw.word_bytes}: SCALE-Sim configs describe 1-byte words")
    if hw.run_name != hw.run_name.strip() or any(c in hw.run_name for c in "\r\n"):
        # configparser strips a value's outer spaces and ends it at a line break: such a name would not read back.
        raise ValueError(f"Hardware.run_name={hw.run_name!r} must be one line without leading or trailing spaces")
    if any(c in hw.run_name for c in "/\\") or hw.run_name in (".", ".."):
        raise ValueError(f"Hardware.run_name={hw.run_name!r} must name a folder: no path separators, not . or ..")
    return _V3_TEMPLATE.format(
        run_name=hw.run_name,
        rows=hw.rows,
        cols=hw.cols,
        dataflow=hw.dataflow,
        ifmap_kib=_whole_kib(hw, "ifmap_sram_bytes"),
        filter_kib=_whole_kib(hw, "filter_sram_bytes"),
        ofmap_kib=_whole_kib(hw, "ofmap_sram_bytes"),
        ifmap_offset=hw.ifmap_offset,
        filter_offset=hw.filter_offset,
        ofmap_offset=hw.ofmap_offset,
        ofmap_bw=_whole_bandwidth(hw, "dram_bw_words_per_cycle", hw.dram_bw_words_per_cycle),
        ifmap_bw=_whole_bandwidth(hw, "ifmap_dram_bw_words_per_cycle", hw.read_bw("ifmap")),
        filter_bw=_whole_bandwidth(hw, "filter_dram_bw_words_per_cycle", hw.read_bw("filter")),
        mode="CALC" if hw.calc_mode else "USER",
    )
