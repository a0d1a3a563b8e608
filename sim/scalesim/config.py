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


@dataclass(frozen=True)
class ScaleSimConfig:
    """What a SCALE-Sim config describes: the hardware plus the run-level settings outside it."""

    hardware: Hardware
    topology_path: str | None
    path: str


class _Source:
    """A parsed config that can say on which line a section or key sits."""

    def __init__(self, path: Path):
        self.path = path
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
        self.parser = configparser.ConfigParser()
        try:
            self.parser.read_string(text, source=str(path))
        except configparser.ParsingError as exc:
            line, text = exc.errors[0]
            raise ConfigError(f"{path}:{line}: cannot parse {text.strip()!r}") from exc
        except configparser.Error as exc:
            line = getattr(exc, "lineno", 1)
            raise ConfigError(f"{path}:{line}: {exc.message.splitlines()[0]}") from exc
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

    def get_int(self, section: str, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        raw = self.get(section, key, None if default is None else str(default))
        try:
            value = int(raw)
        except ValueError:
            raise self.error(section, key, f"expected an integer, got {raw!r}") from None
        if value < minimum:
            raise self.error(section, key, f"must be >= {minimum}, got {value}")
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
        raise src.error("architecture_presets", "Bandwidth", f"expected integers, got {raw!r}") from None
    if ofmap_bw < 1:
        raise src.error("architecture_presets", "Bandwidth", f"must be >= 1, got {ofmap_bw}")
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
        raise src.error(arch, "Dataflow", f"expected os, ws or is, got {dataflow!r}")
    kib = {op: src.get_int(arch, f"{op}SramSzkB") for op in ("Ifmap", "Filter", "Ofmap")}
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
    try:
        hw = Hardware(**fields, run_name=run_name)
    except ValueError as exc:
        raise src.error("general", "run_name", str(exc)) from exc
    return ScaleSimConfig(hw, topology, str(path))
