"""The last part of `accelkit demo`: a small design-space sweep (36 designs on the 54 ResNet-50 layers) and the path
of its HTML report."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from accelkit._optional import available

SPEC = """\
name: demo_resnet50
base: eyeriss
parameters:
  rows: [8, 16, 32]
  cols: [8, 16, 32]
  dataflow: [ws, os]
  filter_sram_kib: [32, 128]
workloads:
  - network: resnet50
objectives: [latency, energy, area]
"""


def run(echo: Callable[[str], None], out_dir: str | None = None) -> str | None:
    """Sweep SPEC in this process (no cache file) and write the report; returns its path (None without the extra)."""
    missing = [m for m in ("yaml", "pandas", "matplotlib", "optuna", "pyarrow") if not available(m)]
    if missing:
        echo(f"skipped: {', '.join(missing)} not installed; pip install 'accelkit[dse]' for accelkit dse")
        return None
    from accelkit.sim.dse.report import knee_design, write_report
    from accelkit.sim.dse.spec import parse_spec
    from accelkit.sim.dse.sweep import run_sweep

    result = run_sweep(parse_spec(SPEC, "demo_resnet50.yaml"), executor="serial", cache=None, progress=False)
    paths = write_report(result, out_dir or tempfile.mkdtemp(prefix="accelkit-dse-"))
    front = result.front
    knee = knee_design(result)
    echo(
        f"{len(result.table)} designs x {len(result.spec.workloads[0].layers)} ResNet-50 layers in "
        f"{result.seconds:.2f} s: {len(front)} on the latency/energy/area front; knee: design {knee} "
        f"({result.table.loc[result.table['design'] == knee, ['rows', 'cols', 'dataflow']].to_dict('records')[0]})"
    )
    echo(f"report: {paths['html']}")
    return str(paths["html"])
