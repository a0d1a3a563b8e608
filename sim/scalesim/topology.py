"""SCALE-Sim topology CSVs: conv rows and `-i gemm` rows (`Layer, M, N, K,`).

The first line is a header and is skipped; blank lines are skipped. SCALE-Sim drops the last field of every row
(`row.split(',')[:-1]`), which is why its rows end with a comma; here a trailing empty field is dropped and a
row without the comma keeps all its fields, instead of silently losing the last one. Fields after the ones a
row needs (7 conv values, or M, N, K) are ignored, as scalesim ignores them: a `#dw` note, or v3's `N:M`
sparsity field, which it reads only with sparsity on. A conv row under `-i gemm` (or a GEMM row without it) is
refused with a message that says which flag to change. A conv layer whose name contains "DP" is
expanded, as SCALE-Sim does, into one single-channel layer per channel named `<name>Channel_<i>`. Values must fit
int64, as in SCALE-Sim's NumPy arrays, and a "DP" layer may have at most MAX_DEPTHWISE_CHANNELS channels.
"""

from __future__ import annotations

from pathlib import Path

from accelkit.sim.scalesim.config import INT64_MAX, ConfigError, quote, read_text
from accelkit.sim.scalesim.streams import CompatLayer

CONV_COLUMNS = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels", "Num Filter", "Strides")
GEMM_COLUMNS = ("M", "N", "K")
# A "DP" layer becomes one layer per channel, each simulated on its own. The widest depthwise layers of common
# networks have 960 (MobileNetV2) to 3840 (EfficientNet-B7) channels; 65536 is 17x that, and refusing past it
# keeps a typo like 10^11 channels from building 10^11 layers (hours and all of memory) before anything runs.
MAX_DEPTHWISE_CHANNELS = 2**16


def _fields(row: str) -> list[str]:
    fields = [f.strip() for f in row.split(",")]
    if fields and fields[-1] == "":
        fields.pop()
    return fields


def _ints(path: Path, line: int, name: str, fields: list[str], columns: tuple[str, ...]) -> list[int]:
    values = []
    for column, raw in zip(columns, fields, strict=True):
        try:
            value = int(raw)
        except ValueError:
            # Also what int() raises for a number of over 4300 digits.
            raise ConfigError(
                f"{path}:{line}: layer {name!r}, column {column!r}: expected an integer, got {quote(raw)}"
            ) from None
        if not 1 <= value <= INT64_MAX:
            raise ConfigError(
                f"{path}:{line}: layer {name!r}, column {column!r}: must be in [1, {INT64_MAX}], got {quote(raw)}"
            )
        values.append(value)
    return values


def _is_int(raw: str) -> bool:
    try:
        int(raw)
    except ValueError:
        return False
    return True


def _looks_like_conv(fields: list[str]) -> bool:
    """A row of 7 or more integer values: a conv row (H, W, R, S, C, N, stride), not M, N, K."""
    return len(fields) >= 1 + len(CONV_COLUMNS) and all(_is_int(f) for f in fields[1 : 1 + len(CONV_COLUMNS)])


def _conv(path: Path, line: int, fields: list[str]) -> list[CompatLayer]:
    name = fields[0]
    if len(fields) == 1 + len(GEMM_COLUMNS) and all(_is_int(f) for f in fields[1:]):
        raise ConfigError(
            f"{path}:{line}: layer {name!r}: 3 values (M, N, K?) where a conv row has {len(CONV_COLUMNS)}: "
            "this looks like a GEMM topology; pass -i gemm"
        )
    if len(fields) < 1 + len(CONV_COLUMNS):
        raise ConfigError(
            f"{path}:{line}: layer {name!r}: expected {len(CONV_COLUMNS)} values "
            f"({', '.join(CONV_COLUMNS)}), got {len(fields) - 1}"
        )
    h, w, r, s, c, n, stride = _ints(path, line, name, fields[1:8], CONV_COLUMNS)
    if r > h or s > w:
        column = "Filter Height" if r > h else "Filter Width"
        raise ConfigError(f"{path}:{line}: layer {name!r}, column {column!r}: filter larger than the IFMAP")
    if "DP" in name:
        if c > MAX_DEPTHWISE_CHANNELS:
            raise ConfigError(
                f"{path}:{line}: layer {name!r}, column 'Channels': a depthwise (DP) layer is simulated once per "
                f"channel; {c} channels is over the {MAX_DEPTHWISE_CHANNELS} supported"
            )
        return [CompatLayer(f"{name}Channel_{i}", h, w, r, s, 1, n, stride, stride) for i in range(c)]
    return [CompatLayer(name, h, w, r, s, c, n, stride, stride)]


def _gemm(path: Path, line: int, fields: list[str]) -> list[CompatLayer]:
    name = fields[0]
    if len(fields) < 4:
        raise ConfigError(f"{path}:{line}: layer {name!r}: expected M, N, K, got {len(fields) - 1} values")
    if _looks_like_conv(fields):
        raise ConfigError(
            f"{path}:{line}: layer {name!r}: {len(CONV_COLUMNS)} values ({', '.join(CONV_COLUMNS)}?) where a "
            "GEMM row has M, N, K: this looks like a conv topology; drop -i gemm"
        )
    m, n, k = _ints(path, line, name, fields[1:4], GEMM_COLUMNS)
    return [CompatLayer(name, m, k, 1, k, 1, n, 1, 1)]


def read_topology(path: str | Path, *, gemm: bool = False, allow_empty: bool = False) -> list[CompatLayer]:
    """Layers of a SCALE-Sim topology file, in file order (depthwise "DP" layers expanded). A file without layers
    is a ConfigError unless `allow_empty` (scalesim runs it and writes reports without rows)."""
    path = Path(path)
    text = read_text(path, "topology")
    layers: list[CompatLayer] = []
    parse = _gemm if gemm else _conv
    for line, row in enumerate(text.splitlines()[1:], 2):
        if row.strip():
            layers.extend(parse(path, line, _fields(row)))
    if not layers and not allow_empty:
        raise ConfigError(f"{path}:1: no layers (the first line is a header)")
    return layers
