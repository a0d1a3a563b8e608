"""The `workloads:` section of a DSE spec: built-in networks and custom layer lists, with batch and sequence length.

```
workloads:
  - network: resnet50          # any accelkit.sim.networks name; batch and seq_len as get_network takes them
    batch: 1
  - name: mlp                  # a custom list: a layer with k is a GEMM (m defaults to batch x seq_len),
    batch: 4                   # one with ifmap_h a convolution (batch defaults to the workload's)
    seq_len: 128
    layers:
      - {name: fc1, n: 1024, k: 256}
      - {name: conv, ifmap_h: 28, ifmap_w: 28, filter_h: 3, filter_w: 3, channels: 64, num_filters: 64,
         pad_h: 1, pad_w: 1}
```
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from accelkit.sim.dse.space import SpecError
from accelkit.sim.networks import get_network
from accelkit.sim.workloads import Conv, Gemm

NETWORK_KEYS = ("network", "name", "batch", "seq_len")
CUSTOM_KEYS = ("name", "batch", "seq_len", "layers")
GEMM_KEYS = ("name", "m", "n", "k")
CONV_KEYS = tuple(f.name for f in dataclasses.fields(Conv))


@dataclass(frozen=True)
class Workload:
    name: str
    layers: tuple[Gemm | Conv, ...]


def parse_workloads(doc, raw: object) -> tuple[Workload, ...]:
    """`doc` is the spec's parsed document (spec._Doc): its `error(key, message)` names file:line: key."""
    if not isinstance(raw, list) or not raw:
        raise doc.error(("workloads",), "must be a non-empty list of {network: ...} or {name: ..., layers: [...]}")
    out = []
    for index, item in enumerate(raw):
        key = ("workloads", index)
        if not isinstance(item, dict):
            raise doc.error(key, "must be a mapping with network or layers")
        if ("network" in item) == ("layers" in item):
            raise doc.error(key, "give exactly one of network (a built-in) or layers (a custom list)")
        out.append(_network(doc, key, item) if "network" in item else _custom(doc, key, item))
    names = [w.name for w in out]
    if len(set(names)) != len(names):
        raise doc.error(("workloads",), f"workload names must differ, got {names}")
    return tuple(out)


def _positive_int(doc, key: tuple, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise doc.error(key, f"must be a positive int, got {value!r}")
    return value


def _network(doc, key: tuple, item: dict) -> Workload:
    _known(doc, key, item, NETWORK_KEYS)
    batch = _positive_int(doc, (*key, "batch"), item.get("batch", 1))
    seq_len = item.get("seq_len")
    if seq_len is not None:
        _positive_int(doc, (*key, "seq_len"), seq_len)
    try:
        layers = get_network(item["network"], batch=batch, seq_len=seq_len)
    except (TypeError, ValueError) as exc:
        raise doc.error((*key, "network"), str(exc)) from None
    name = item.get("name", item["network"] if batch == 1 else f"{item['network']}_b{batch}")
    return Workload(str(name), tuple(layers))


def _custom(doc, key: tuple, item: dict) -> Workload:
    _known(doc, key, item, CUSTOM_KEYS)
    if not isinstance(item.get("name"), str) or not item["name"]:
        raise doc.error((*key, "name"), "a custom workload needs a name")
    batch = _positive_int(doc, (*key, "batch"), item.get("batch", 1))
    seq_len = item.get("seq_len")
    if seq_len is not None:
        _positive_int(doc, (*key, "seq_len"), seq_len)
    layers = item["layers"]
    if not isinstance(layers, list) or not layers:
        raise doc.error((*key, "layers"), "must be a non-empty list of layers")
    out = [_layer(doc, (*key, "layers", i), layer, i, batch, seq_len) for i, layer in enumerate(layers)]
    return Workload(item["name"], tuple(out))


def _layer(doc, key: tuple, raw: object, index: int, batch: int, seq_len: int | None) -> Gemm | Conv:
    if not isinstance(raw, dict):
        raise doc.error(key, "a layer is a mapping: {name, m, n, k} or Conv fields (ifmap_h, ...)")
    fields = dict(raw)
    fields.setdefault("name", f"layer{index}")
    try:
        if "k" in fields:
            _known(doc, key, fields, GEMM_KEYS)
            if "m" not in fields:
                if seq_len is None:
                    raise doc.error(key, "m is missing and the workload has no seq_len to make it batch x seq_len")
                fields["m"] = batch * seq_len
            return Gemm(**fields)
        if "ifmap_h" in fields:
            _known(doc, key, fields, CONV_KEYS)
            fields.setdefault("batch", batch)
            return Conv(**fields)
    except SpecError:
        raise
    except (TypeError, ValueError) as exc:
        raise doc.error(key, str(exc)) from None
    raise doc.error(key, "a layer needs k (a GEMM: m, n, k) or ifmap_h (a Conv)")


def _known(doc, key: tuple, mapping: dict, allowed) -> None:
    for name in mapping:
        if name not in allowed:
            raise doc.error((*key, name), f"unknown key; expected one of {', '.join(allowed)}")
