"""The fuzz registry: every public op, simulator entry point, file parser and command line that test_fuzz.py
drives. Each family of targets lives in its own module (ops.py, sim.py, files.py) as a TARGETS list of
`core.Target`s; a new op joins by adding its Target to one of them, or a new module to this list (README.md).
"""

from fuzz import delta_rule, fft_rpe, files, flash_attention, lean_attention, ops, sim, spike_attention, spiking, wkv
from fuzz.core import Target

REGISTRY: list[Target] = [
    *ops.TARGETS,
    *flash_attention.TARGETS,
    *lean_attention.TARGETS,
    *fft_rpe.TARGETS,
    *spiking.TARGETS,
    *spike_attention.TARGETS,
    *wkv.TARGETS,
    *delta_rule.TARGETS,
    *sim.TARGETS,
    *files.TARGETS,
]
