"""Regenerate tests/sim/golden/ by running scalesim 3.0.0 on every case below, or fuzz against it.

    SCALESIM_PYTHON=/tmp/scalesim-venv/bin/python python tests/sim/make_goldens.py [CASE ...]
    SCALESIM_PYTHON=/tmp/scalesim-venv/bin/python python tests/sim/make_goldens.py --fuzz SEED COUNT

scalesim needs numpy<2, so it lives in its own venv, named by SCALESIM_PYTHON. Each case folder receives the
config, the topology, an empty layout file (scalesim's CLI exits when its -l file is missing) and scalesim's three
reports; cases listed in TRACE_CASES also keep the six per-cycle trace files of layer 0.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from accelkit.sim.hardware import Hardware
from accelkit.sim.scalesim.config import config_text

GOLDEN = Path(__file__).resolve().parent / "golden"

CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
GEMM_HEADER = "Layer, M, N, K,\n"

# name: (config fields, topology rows, gemm?). Sizes keep scalesim to seconds per case; small SRAMs force
# prefetch windows to wrap and write buffers to drain often, so the memory model is exercised, not just compute.
CASES = {
    "calc_os_8x8_gemm": (
        dict(rows=8, cols=8, dataflow="os", kb=(1, 1, 1), mode="CALC"),
        ["g1, 40, 20, 30,", "g2, 64, 64, 64,", "g3, 9, 70, 5,"],
        True,
    ),
    "calc_ws_16x8_conv": (
        dict(rows=16, cols=8, dataflow="ws", kb=(2, 1, 1), mode="CALC"),
        ["c1, 12, 12, 3, 3, 4, 10, 1,", "c2, 15, 15, 3, 3, 3, 16, 2,", "DPc3, 10, 10, 3, 3, 2, 1, 1,"],
        False,
    ),
    "calc_is_8x12_conv": (
        dict(rows=8, cols=12, dataflow="is", kb=(1, 2, 1), mode="CALC"),
        ["c1, 14, 14, 3, 3, 4, 20, 1,", "c2, 9, 9, 2, 2, 8, 8, 2,"],
        False,
    ),
    "calc_ws_32x32_big": (
        dict(rows=32, cols=32, dataflow="ws", kb=(64, 64, 64), mode="CALC"),
        ["g1, 256, 128, 256,", "g2, 100, 300, 50,"],
        True,
    ),
    "user_os_8x8_gemm": (
        dict(rows=8, cols=8, dataflow="os", kb=(1, 1, 1), mode="USER", bw=(10, 10, 10)),
        ["g1, 40, 20, 30,", "g2, 64, 64, 64,"],
        True,
    ),
    "user_ws_16x16_conv": (
        dict(rows=16, cols=16, dataflow="ws", kb=(2, 2, 1), mode="USER", bw=(4, 6, 5)),
        ["c1, 12, 12, 3, 3, 4, 20, 1,", "c2, 15, 15, 3, 3, 3, 16, 2,"],
        False,
    ),
    "user_is_12x8_gemm": (
        dict(rows=12, cols=8, dataflow="is", kb=(1, 1, 2), mode="USER", bw=(5, 8, 6)),
        ["g1, 50, 30, 40,", "g2, 20, 60, 33,"],
        True,
    ),
    "user_os_16x8_conv": (
        dict(rows=16, cols=8, dataflow="os", kb=(2, 1, 1), mode="USER", bw=(3, 4, 4)),
        ["c1, 12, 12, 3, 3, 4, 10, 1,", "c2, 11, 11, 3, 3, 2, 12, 2,"],
        False,
    ),
    "user_ws_32x32_ample": (
        dict(rows=32, cols=32, dataflow="ws", kb=(64, 64, 64), mode="USER", bw=(10, 10, 10)),
        ["g1, 256, 128, 256,"],
        True,
    ),
    "user_is_20x28_conv": (
        dict(rows=20, cols=28, dataflow="is", kb=(2, 3, 1), mode="USER", bw=(9, 7, 5)),
        ["c1, 20, 22, 3, 2, 3, 24, 1,", "c2, 17, 17, 4, 4, 2, 30, 3,"],
        False,
    ),
    "calc_os_24x12_conv": (
        dict(rows=24, cols=12, dataflow="os", kb=(1, 2, 2), mode="CALC"),
        ["c1, 25, 25, 5, 5, 3, 16, 2,", "DPdw, 12, 12, 3, 3, 3, 1, 1,"],
        False,
    ),
    # mobilnet_paper.csv's rows end in a note after the comma (`1,#dw`); v3 rows may carry an N:M sparsity field.
    "calc_ws_12x10_trailing": (
        dict(rows=12, cols=10, dataflow="ws", kb=(1, 1, 1), mode="CALC"),
        ["Conv2_dw, 14, 14, 3, 3, 1, 1, 1,#dw", "c2, 10, 10, 1, 1, 8, 16, 1, 2:4,", "Conv9,9,9,3,3,4,6,2,"],
        False,
    ),
    "trace_os_4x4": (dict(rows=4, cols=4, dataflow="os", kb=(1, 1, 1), mode="CALC"), ["g1, 6, 5, 7,"], True),
    "trace_ws_4x6_user": (
        dict(rows=4, cols=6, dataflow="ws", kb=(1, 1, 1), mode="USER", bw=(3, 4, 5)),
        ["c1, 8, 8, 3, 3, 3, 7, 2,"],
        False,
    ),
    "trace_os_8x8_calc_conv": (
        dict(rows=8, cols=8, dataflow="os", kb=(1, 1, 1), mode="CALC"),
        ["c1, 16, 16, 3, 3, 2, 5, 1,"],
        False,
    ),
}
TRACE_CASES = ("trace_os_4x4", "trace_ws_4x6_user", "trace_os_8x8_calc_conv")
TRACES = (
    "IFMAP_SRAM_TRACE",
    "FILTER_SRAM_TRACE",
    "OFMAP_SRAM_TRACE",
    "IFMAP_DRAM_TRACE",
    "FILTER_DRAM_TRACE",
    "OFMAP_DRAM_TRACE",
)
REPORTS = ("COMPUTE_REPORT", "BANDWIDTH_REPORT", "DETAILED_ACCESS_REPORT")


def case_hardware(name: str, spec: dict) -> Hardware:
    """The accelerator of a case; CALC cases carry no bandwidth (scalesim ignores the one the config file holds)."""
    ofmap_bw, ifmap_bw, filter_bw = spec.get("bw", (10, 10, 10)) if spec["mode"] == "USER" else (None, None, None)
    return Hardware(
        rows=spec["rows"],
        cols=spec["cols"],
        dataflow=spec["dataflow"],
        ifmap_sram_bytes=spec["kb"][0] * 1024,
        filter_sram_bytes=spec["kb"][1] * 1024,
        ofmap_sram_bytes=spec["kb"][2] * 1024,
        dram_bw_words_per_cycle=ofmap_bw,
        ifmap_dram_bw_words_per_cycle=ifmap_bw,
        filter_dram_bw_words_per_cycle=filter_bw,
        run_name=name,
    )


def write_inputs(name: str, folder: Path) -> None:
    spec, rows, gemm = CASES[name]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scale.cfg").write_text(config_text(case_hardware(name, spec)))
    (folder / "topology.csv").write_text((GEMM_HEADER if gemm else CONV_HEADER) + "\n".join(rows) + "\n")
    (folder / "layout.csv").write_text("Layer name,\n")


def _scalesim(python: str, folder: Path, gemm: bool, out: Path) -> None:
    args = ["-c", folder / "scale.cfg", "-t", folder / "topology.csv", "-l", folder / "layout.csv", "-p", out]
    cmd = [python, "-m", "scalesim.scale", *map(str, args), "-i", "gemm" if gemm else "conv"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def regenerate(name: str, python: str) -> None:
    folder = GOLDEN / name
    write_inputs(name, folder)
    with tempfile.TemporaryDirectory() as tmp:
        _scalesim(python, folder, CASES[name][2], Path(tmp))
        out = Path(tmp) / name
        for report in REPORTS:
            shutil.copy(out / f"{report}.csv", folder / f"{report}.csv")
        if name in TRACE_CASES:
            for trace in TRACES:
                shutil.copy(out / "layer0" / f"{trace}.csv", folder / f"{trace}.csv")


def random_case(rng: random.Random) -> tuple[dict, list[str], bool]:
    """A small random config and two-layer topology (both bandwidth modes, any dataflow, SRAMs that stall)."""
    spec = dict(
        rows=rng.randint(2, 32),
        cols=rng.randint(2, 32),
        dataflow=rng.choice(["os", "ws", "is"]),
        kb=tuple(rng.randint(1, 4) for _ in range(3)),
        mode=rng.choice(["CALC", "USER"]),
        bw=tuple(rng.randint(1, 12) for _ in range(3)),
    )
    if rng.random() < 0.5:
        return (
            spec,
            [f"g{j}, {rng.randint(1, 200)}, {rng.randint(1, 200)}, {rng.randint(1, 200)}," for j in range(2)],
            True,
        )
    rows = []
    for j in range(2):
        h, r, s = rng.randint(3, 18), rng.randint(1, 5), rng.randint(1, 4)
        r = min(r, h)
        rows.append(
            f"c{j}, {h}, {h + rng.randint(0, 3)}, {r}, {rng.randint(1, r)}, {rng.randint(1, 4)}, "
            f"{rng.randint(1, 24)}, {s},"
        )
    return spec, rows, False


def fuzz(python: str, seed: int, count: int) -> int:
    """Run `count` random cases through scalesim and `accelkit scalesim`; print and count differing reports."""
    from accelkit.sim.scalesim.cli import main as ours

    rng, bad = random.Random(seed), 0
    for i in range(count):
        name = f"fuzz{seed}_{i}"
        CASES[name] = random_case(rng)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_inputs(name, folder)
            _scalesim(python, folder, CASES[name][2], folder / "peer")
            args = ["-c", folder / "scale.cfg", "-t", folder / "topology.csv", "-p", folder / "ours"]
            assert ours([*map(str, args), "-i", "gemm" if CASES[name][2] else "conv"]) == 0
            same = all(
                (folder / "ours" / name / f"{r}.csv").read_text() == (folder / "peer" / name / f"{r}.csv").read_text()
                for r in REPORTS
            )
        bad += not same
        print(name, CASES[name][0]["mode"], "identical" if same else "DIFFERENT", flush=True)
    return bad


def main(argv: list[str]) -> int:
    python = os.environ.get("SCALESIM_PYTHON")
    if not python:
        print("set SCALESIM_PYTHON to a Python that has scalesim==3.0.0 installed", file=sys.stderr)
        return 2
    if argv[:1] == ["--fuzz"]:
        return 1 if fuzz(python, int(argv[1]), int(argv[2])) else 0
    for name in argv or list(CASES):
        print(f"{name} ...", flush=True)
        regenerate(name, python)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
