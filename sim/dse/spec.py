"""A DSE spec read from YAML: the parameters to explore, constraints, workloads, objectives and the search.

Every error names the file, the line and the key: `resnet50_edge.yaml:12: parameters.rows: ...`. YAML is
composed into nodes first (not loaded straight into dicts) so that each value keeps the line it came from.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelkit._optional import require
from accelkit.sim.dse.area import AreaTable
from accelkit.sim.dse.layers import Workload
from accelkit.sim.dse.layers import parse_workloads as _workloads
from accelkit.sim.dse.space import OBJECTIVES, PARAMETERS, Constraints, Parameter, SpecError, hardware_for
from accelkit.sim.hardware import PRESETS, Hardware

TOP_KEYS = ("name", "base", "mode", "parameters", "constraints", "workloads", "objectives", "search", "area")
SEARCH_METHODS = ("grid", "nsga2")
# Pre-checking constraints walks the grid until one design fits; past this many combinations it stops looking.
MAX_FEASIBILITY_SCAN = 2_000_000


@dataclass(frozen=True)
class Search:
    method: str = "grid"
    trials: int = 200
    population: int = 20
    seed: int = 0


@dataclass(frozen=True)
class Spec:
    """A validated spec. `parameters` lists every explored Hardware knob with its candidate values."""

    name: str
    path: str
    base: Hardware
    mode: str
    parameters: tuple[Parameter, ...]
    constraints: Constraints
    workloads: tuple[Workload, ...]
    objectives: tuple[str, ...]
    search: Search
    area: AreaTable

    @property
    def grid_size(self) -> int:
        return math.prod(len(p.values) for p in self.parameters)

    def grid(self):
        """Every combination of parameter values, in row-major order of the spec's parameter list."""
        return itertools.product(*(p.values for p in self.parameters))


class _Doc:
    """A parsed YAML document: plain values plus the line of every key path."""

    def __init__(self, path: str, value: Any, lines: dict[tuple, int]):
        self.path, self.value, self.lines = path, value, lines

    def line(self, key: tuple) -> int:
        while key not in self.lines and key:
            key = key[:-1]
        return self.lines.get(key, 1)

    def error(self, key: tuple, message: str) -> SpecError:
        name = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in key).replace(".[", "[")
        return SpecError(f"{self.path}:{self.line(key)}: {name or '(top)'}: {message}")


def _plain(yaml, node, key: tuple, lines: dict, doc_path: str):
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = f"{doc_path}:{key_node.start_mark.line + 1}"
            if not isinstance(name, str) or not name:
                raise SpecError(f"{where}: {'.'.join(map(str, key)) or '(top)'}: keys must be plain strings")
            if name in out:
                raise SpecError(f"{where}: {'.'.join(map(str, (*key, name)))}: duplicate key")
            out[name] = _plain(yaml, value_node, (*key, name), lines, doc_path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(yaml, item, (*key, i), lines, doc_path) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


def _parse(text: str, path: str) -> _Doc:
    yaml = require("yaml", feature="accelkit dse")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}:{line}: malformed YAML: {problem}") from None
    if node is None:
        raise SpecError(f"{path}:1: (top): the spec is empty")
    lines: dict[tuple, int] = {}
    return _Doc(path, _plain(yaml, node, (), lines, path), lines)


def load_spec(path: str | Path) -> Spec:
    """Read and validate the YAML spec at `path`; raises SpecError naming file:line: key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc.strerror}") from None
    return parse_spec(text, str(path))


def parse_spec(text: str, path: str = "<spec>") -> Spec:
    doc = _parse(text, path)
    top = doc.value
    if not isinstance(top, dict):
        raise doc.error((), "the spec must be a mapping of name, parameters, workloads, objectives, ...")
    _known_keys(doc, (), top, TOP_KEYS)
    for required in ("parameters", "workloads", "objectives"):
        if required not in top:
            raise doc.error((), f"missing required key {required!r}")
    base = _base(doc, top.get("base"))
    mode = top.get("mode", "native")
    if mode not in ("native", "compat"):
        raise doc.error(("mode",), f"must be 'native' or 'compat', got {mode!r}")
    parameters = _parameters(doc, top["parameters"], base)
    area = _area(doc, top.get("area", {}))
    constraints = _constraints(doc, top.get("constraints", {}))
    spec = Spec(
        name=_name(doc, top.get("name", Path(path).stem)),
        path=path,
        base=base,
        mode=mode,
        parameters=parameters,
        constraints=constraints,
        workloads=_workloads(doc, top["workloads"]),
        objectives=_objectives(doc, top["objectives"]),
        search=_search(doc, top.get("search", {})),
        area=area,
    )
    _check_feasible(doc, spec)
    return spec


def _known_keys(doc: _Doc, key: tuple, mapping: dict, allowed) -> None:
    for name in mapping:
        if name not in allowed:
            raise doc.error((*key, name), f"unknown key; expected one of {', '.join(allowed)}")


def _name(doc: _Doc, name: object) -> str:
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\\0"):
        raise doc.error(("name",), f"must be a non-empty string usable in a file name, got {name!r}")
    return name.strip()


def _base(doc: _Doc, base: object) -> Hardware:
    if base is None:
        return Hardware(rows=16, cols=16, run_name="dse")
    if not isinstance(base, str) or base.lower().removesuffix("_like") not in PRESETS:
        raise doc.error(("base",), f"must be a preset name ({', '.join(PRESETS)}), got {base!r}")
    return dataclasses.replace(PRESETS[base.lower().removesuffix("_like")](), run_name="dse")


def _values(doc: _Doc, key: tuple, raw: object) -> tuple:
    """A parameter's candidates: a list, one scalar, or {from, to, step} / {from, to, factor}."""
    if isinstance(raw, list):
        values = tuple(raw)
    elif isinstance(raw, dict):
        _known_keys(doc, key, raw, ("from", "to", "step", "factor"))
        if "from" not in raw or "to" not in raw or ("step" in raw) == ("factor" in raw):
            raise doc.error(key, "a range needs from, to and exactly one of step (added) or factor (multiplied)")
        values = _range(doc, key, raw)
    elif raw is None:
        values = ()
    else:
        values = (raw,)
    if not values:
        raise doc.error(key, "empty range: give at least one value")
    if len(set(values)) != len(values):
        raise doc.error(key, f"repeated values in {list(values)}")
    return values


def _range(doc: _Doc, key: tuple, raw: dict) -> tuple:
    start, stop = raw["from"], raw["to"]
    step, factor = raw.get("step"), raw.get("factor")
    for name, value in (("from", start), ("to", stop), ("step", step), ("factor", factor)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise doc.error((*key, name), f"must be a number, got {value!r}")
    if (step is not None and step <= 0) or (factor is not None and factor <= 1):
        raise doc.error(key, "step must be > 0 and factor > 1")
    values, value = [], start
    while value <= stop and len(values) <= 10_000:
        values.append(value)
        value = value + step if step is not None else value * factor
    if len(values) > 10_000:
        raise doc.error(key, "a range of over 10,000 values")
    return tuple(values)


def _parameters(doc: _Doc, raw: object, base: Hardware) -> tuple[Parameter, ...]:
    if not isinstance(raw, dict) or not raw:
        raise doc.error(("parameters",), f"must be a mapping of parameter names to values: {', '.join(PARAMETERS)}")
    out = []
    for name, values_raw in raw.items():
        key = ("parameters", name)
        if name not in PARAMETERS:
            raise doc.error(key, f"unknown parameter; expected one of {', '.join(PARAMETERS)}")
        values = _values(doc, key, values_raw)
        for index, value in enumerate(values):
            try:
                hardware_for(base, ((name, value),))
            except (TypeError, ValueError) as exc:
                where = (*key, index) if isinstance(values_raw, list) else key
                raise doc.error(where, f"{value!r}: {exc}") from None
        out.append(Parameter(name, values))
    return tuple(out)


def _positive_number(doc: _Doc, key: tuple, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise doc.error(key, f"must be a positive number, got {value!r}")
    return value


def _constraints(doc: _Doc, raw: object) -> Constraints:
    if not isinstance(raw, dict):
        raise doc.error(("constraints",), "must be a mapping")
    fields = [f.name for f in dataclasses.fields(Constraints)]
    _known_keys(doc, ("constraints",), raw, fields)
    values = {name: _positive_number(doc, ("constraints", name), value) for name, value in raw.items()}
    return Constraints(**values)


def _area(doc: _Doc, raw: object) -> AreaTable:
    if not isinstance(raw, dict):
        raise doc.error(("area",), "must be a mapping of AreaTable fields")
    fields = [f.name for f in dataclasses.fields(AreaTable)]
    _known_keys(doc, ("area",), raw, fields)
    for name, value in raw.items():
        _positive_number(doc, ("area", name), value)
    return AreaTable(**raw)


def _objectives(doc: _Doc, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise doc.error(("objectives",), f"must list two or more of {', '.join(OBJECTIVES)}")
    for index, name in enumerate(raw):
        if name not in OBJECTIVES:
            raise doc.error(
                ("objectives", index), f"unknown objective {name!r}; expected one of {', '.join(OBJECTIVES)}"
            )
    if len(set(raw)) != len(raw):
        raise doc.error(("objectives",), "an objective is listed twice")
    return tuple(raw)


def _search(doc: _Doc, raw: object) -> Search:
    if not isinstance(raw, dict):
        raise doc.error(("search",), "must be a mapping with method (grid or nsga2), trials, population, seed")
    _known_keys(doc, ("search",), raw, ("method", "trials", "population", "seed"))
    method = raw.get("method", "grid")
    if method not in SEARCH_METHODS:
        raise doc.error(("search", "method"), f"must be one of {', '.join(SEARCH_METHODS)}, got {method!r}")
    ints = {}
    for name, low in (("trials", 1), ("population", 2), ("seed", 0)):
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise doc.error(("search", name), f"must be an int >= {low}, got {value!r}")
            ints[name] = value
    return Search(method=method, **ints)


def _check_feasible(doc: _Doc, spec: Spec) -> None:
    """Refuse constraints that no design of the grid meets (a sweep would evaluate nothing)."""
    if spec.grid_size > MAX_FEASIBILITY_SCAN:
        return
    names = tuple(p.name for p in spec.parameters)
    for values in spec.grid():
        if spec.constraints.violation(hardware_for(spec.base, zip(names, values, strict=True)), spec.area) is None:
            return
    first = hardware_for(spec.base, zip(names, next(iter(spec.grid())), strict=True))
    reason = spec.constraints.violation(first, spec.area)
    raise doc.error(("constraints",), f"impossible: none of the {spec.grid_size} designs meets them (e.g. {reason})")
