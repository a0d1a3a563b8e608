"""Synaptic operation counts and the 45 nm energy estimate of the spiking papers.

The spiking papers (Spike-driven Transformer V1/V2, QSD, SpikeGPT) estimate energy as
``E_SNN = E_MAC * FLOPs_first_layer + E_AC * SOPs`` with ``SOPs = T * firing_rate * FLOPs``: a spike-driven synapse
only accumulates (AC) where an input spike arrived, while a dense layer multiplies and accumulates (MAC). The ops in
accelkit.kernels.spiking and kernels/spike_attention report their counts here, computed from the actual spikes:

    from accelkit.kernels.spiking import energy
    with energy.counting() as counter:
        out = model(x)
    counter.by_op        # {"sdsa_v1": SynapticOps(acs=..., macs=...), ...}
    energy.energy_pj(counter.total)

Counting reads spike counts back from the device, so the ops compute them only inside ``counting()``;
``record`` outside it returns at once and the ops skip the count (``is_counting()``), so there is no host sync.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "HOROWITZ_45NM_PJ",
    "Counter",
    "SynapticOps",
    "counting",
    "energy_pj",
    "is_counting",
    "record",
]


@dataclass(frozen=True)
class SynapticOps:
    """Counts of synaptic operations: ``acs`` accumulates (spike-driven adds), ``macs`` multiply-accumulates."""

    acs: int = 0
    macs: int = 0

    def __post_init__(self) -> None:
        for name in ("acs", "macs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")

    def __add__(self, other: SynapticOps) -> SynapticOps:
        if not isinstance(other, SynapticOps):
            return NotImplemented
        return SynapticOps(acs=self.acs + other.acs, macs=self.macs + other.macs)


# Energy per operation in picojoules at 45 nm, 0.9 V: M. Horowitz, "Computing's energy problem (and what we can do
# about it)", ISSCC 2014, slide "Rough energy costs for various operations". The spiking papers take E_MAC = 4.6 pJ
# (fp32 mult 3.7 + add 0.9) and E_AC = 0.9 pJ (fp32 add); SpikingJelly's op_counter/compute_energy.py uses the same
# fp32 pair and fp16 1.5/0.4, int8 0.23/0.03 (../shared/reference/spiking_binary.md section 3.9).
HOROWITZ_45NM_PJ: MappingProxyType[str, float] = MappingProxyType(
    {
        "fp32_add": 0.9,
        "fp32_mult": 3.7,
        "fp32_mac": 4.6,
        "fp16_add": 0.4,
        "fp16_mult": 1.1,
        "fp16_mac": 1.5,
        "int32_add": 0.1,
        "int32_mult": 3.1,
        "int8_add": 0.03,
        "int8_mult": 0.2,
        "int8_mac": 0.23,
    }
)


def energy_pj(ops: SynapticOps, *, e_mac_pj: float = 4.6, e_ac_pj: float = 0.9) -> float:
    """Energy in picojoules: ``e_mac_pj * ops.macs + e_ac_pj * ops.acs`` (defaults: Horowitz 45 nm fp32)."""
    if not isinstance(ops, SynapticOps):
        raise TypeError(f"ops must be a SynapticOps, got {type(ops).__name__}")
    for name, value in (("e_mac_pj", e_mac_pj), ("e_ac_pj", e_ac_pj)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(e_mac_pj) * ops.macs + float(e_ac_pj) * ops.acs


@dataclass
class Counter:
    """The counts recorded inside one ``counting()`` block, per op name."""

    by_op: dict[str, SynapticOps] = field(default_factory=dict)

    @property
    def total(self) -> SynapticOps:
        out = SynapticOps()
        for ops in self.by_op.values():
            out = out + ops
        return out

    def add(self, op_name: str, ops: SynapticOps) -> None:
        self.by_op[op_name] = self.by_op.get(op_name, SynapticOps()) + ops


# A process-wide stack rather than a context variable: autograd and DataLoader threads see the same counters, and
# nested counting() blocks each receive every record made inside them.
_ACTIVE: list[Counter] = []
_LOCK = threading.Lock()


def is_counting() -> bool:
    """True inside a ``counting()`` block; ops check it before computing counts (which syncs with the device)."""
    return bool(_ACTIVE)


def record(op_name: str, ops: SynapticOps) -> None:
    """Add ``ops`` under ``op_name`` to every active counter; a no-op outside ``counting()``."""
    if not _ACTIVE:
        return
    if not isinstance(op_name, str) or not op_name:
        raise ValueError(f"op_name must be a non-empty str, got {op_name!r}")
    if not isinstance(ops, SynapticOps):
        raise TypeError(f"ops must be a SynapticOps, got {type(ops).__name__}")
    with _LOCK:
        for counter in _ACTIVE:
            counter.add(op_name, ops)


@contextlib.contextmanager
def counting() -> Iterator[Counter]:
    """Collect the ``SynapticOps`` the spiking ops record while the block runs."""
    counter = Counter()
    with _LOCK:
        _ACTIVE.append(counter)
    try:
        yield counter
    finally:
        with _LOCK:
            _ACTIVE.remove(counter)
