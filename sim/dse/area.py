"""Silicon area of a design: PEs by word size and SRAM by capacity, at one stated process node.

Defaults are for 45 nm, the node of the energy table (accelkit.sim.hardware.EnergyTable, Horowitz ISSCC 2014):
- MAC: M. Horowitz, "Computing's Energy Problem (and what we can do about it)", ISSCC 2014, 45 nm area table:
  8-bit integer multiply 282 um^2, 32-bit 3495 um^2; 8-bit add 36 um^2, 32-bit 137 um^2. Other word sizes follow
  the power law through those two points (multiplier ~ bits^1.82, adder ~ bits^0.96), so 1- and 4-byte words
  reproduce the cited figures exactly. A PE is its MAC plus `pe_overhead`, the operand and partial-sum
  registers and control, taken as 100% of the MAC (an assumption, not a measurement; set it in the spec).
- SRAM: derived from N. Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing Unit", ISCA
  2017: the 24 MiB Unified Buffer is 29% of a die of at most 331 mm^2 at 28 nm (Fig. 2 and Table 2), so
  96 mm^2 / 24,576 KiB = 0.0039 mm^2 per KiB at 28 nm, scaled to 45 nm by the square of the feature size
  ((45/28)^2 = 2.58): 0.0101 mm^2 per KiB. The die size is an upper bound, so this figure is one too.
Peripheral logic, DRAM PHYs and the NoC are not modelled; `fixed_mm2` adds a constant for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_MULT_UM2 = (282.0, 3495.0)  # 8-bit, 32-bit (Horowitz 2014)
_ADD_UM2 = (36.0, 137.0)
_TPU_UB_MM2_PER_KIB_28NM = 0.29 * 331.0 / (24 * 1024)


def _power_law(bits: int, pair: tuple[float, float]) -> float:
    exponent = math.log(pair[1] / pair[0]) / math.log(4.0)
    return pair[0] * (bits / 8) ** exponent


@dataclass(frozen=True)
class AreaTable:
    """Area model parameters (units in the names); `node_nm` is documentation only, the numbers are for it."""

    node_nm: float = 45.0
    mac_8bit_um2: float = _MULT_UM2[0] + _ADD_UM2[0]
    pe_overhead: float = 1.0
    sram_mm2_per_kib: float = _TPU_UB_MM2_PER_KIB_28NM * (45.0 / 28.0) ** 2
    fixed_mm2: float = 0.0

    def mac_um2(self, word_bytes: int) -> float:
        """One MAC of `word_bytes`-byte operands; scaled from the 8-bit figure by the cited power laws."""
        bits = 8 * word_bytes
        ratio = (_power_law(bits, _MULT_UM2) + _power_law(bits, _ADD_UM2)) / sum(p[0] for p in (_MULT_UM2, _ADD_UM2))
        return self.mac_8bit_um2 * ratio

    def pe_mm2(self, word_bytes: int) -> float:
        return self.mac_um2(word_bytes) * (1.0 + self.pe_overhead) * 1e-6

    def area_mm2(self, pes: int, sram_bytes: int, word_bytes: int) -> float:
        """Total: PEs x PE area + SRAM KiB x area per KiB + the fixed part."""
        return pes * self.pe_mm2(word_bytes) + sram_bytes / 1024 * self.sram_mm2_per_kib + self.fixed_mm2
