"""`accelkit scalesim` against scalesim 3.0.0 on SCALE-Sim's own configs and topologies, as whole processes.

    python bench/run.py sim_scalesim_suite [--quick] [--no-traces] [--case NAME ...]
    SCALESIM_PYTHON=/tmp/scalesim-venv/bin/python python bench/sim_scalesim_suite.py --record [NAME ...]

Configs are the presets scale-sim-v3 ships (configs/scale.cfg: 32x32 WS, 64 KiB SRAMs; configs/google.cfg:
256x256 OS, 6144/6144/2048 KiB; configs/eyeriss.cfg: 12x14 WS, 36 KiB; bandwidth 10 in each) and variants of
them in dataflow and bandwidth mode; topologies are the repository's own files (topologies/conv_nets/alexnet.csv,
alexnet_part.csv, test.csv; topologies/GEMM_mnk/NCF.csv, vit_s.csv, test_mnk_input.csv), with every row ending in
the trailing comma scalesim's reader needs. `--record` runs scalesim once per case and keeps, in
tests/sim/golden_suite/<case>/, its three reports, the sha256 of every trace file it writes and its wall seconds
(scalesim 3.0.0 always writes traces, so its time is also its trace-writing time). The benchmark then runs
without scalesim: every report must match byte for byte and, with traces on, every trace's hash, or it fails.

The JSON's `ratio` is the aggregate whole-process speed-up: scalesim's recorded seconds over ours, summed over the
cases, reports only; `trace_ratio` is the same with `-s Y`. Ours is the best of `--repeat` runs (default 2).
scalesim's seconds were measured once, on this 2-core machine with nothing else running, and are kept with the goldens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from accelkit.sim.hardware import Hardware
from accelkit.sim.scalesim.config import config_text

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "sim" / "golden_suite"
REPORTS = ("COMPUTE_REPORT", "BANDWIDTH_REPORT", "DETAILED_ACCESS_REPORT")
TRACES = (
    "IFMAP_SRAM_TRACE",
    "FILTER_SRAM_TRACE",
    "OFMAP_SRAM_TRACE",
    "IFMAP_DRAM_TRACE",
    "FILTER_DRAM_TRACE",
    "OFMAP_DRAM_TRACE",
)
CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"
GEMM_HEADER = "Layer, M, N, K,"

# scale-sim-v3's shipped presets: (rows, cols, dataflow, ifmap/filter/ofmap KiB).
PRESETS = {
    "scale": (32, 32, "ws", (64, 64, 64)),
    "google": (256, 256, "os", (6144, 6144, 2048)),
    "eyeriss": (12, 14, "ws", (36, 36, 36)),
}
TOPOLOGIES = {
    "alexnet": (
        False,
        [
            "Conv1, 224, 224, 11, 11, 3, 96, 4,",
            "Conv2, 27, 27, 5, 5, 96, 256, 1,",
            "Conv3, 13, 13, 3, 3, 256, 384, 1,",
            "Conv4, 13, 13, 3, 3, 384, 384, 1,",
            "Conv5, 13, 13, 3, 3, 384, 256, 1,",
        ],
    ),
    "alexnet_part": (False, ["Conv1, 224, 224, 11, 11, 3, 96, 4,"]),
    "inception": (False, ["Inc5b_3x3, 7, 7, 3, 3, 192, 384, 1,"]),
    "ncf": (
        True,
        [
            f"{i}, {m}, {n}, {k},"
            for i, (m, n, k) in enumerate(
                [
                    (256, 128, 2048),
                    (128, 64, 2048),
                    (256, 256, 2048),
                    (2048, 256, 256),
                    (2048, 256, 256),
                    (2048, 128, 256),
                    (2048, 256, 128),
                    (2048, 128, 64),
                    (2048, 64, 128),
                    (128, 1, 2048),
                    (2048, 1, 128),
                    (2048, 128, 1),
                ],
                1,
            )
        ],
    ),
    "vit_s": (
        True,
        ["L0, 196, 192, 384,", "L1, 196, 1176, 64,", "L2, 196, 64, 1176,"]
        + ["L3, 196, 1536, 384,", "L4, 196, 384, 1536,"],
    ),
    "mnk": (True, ["Test 1, 256, 128, 256,"]),
}
# name: (topology, preset, dataflow, mode). Every topology runs on two or three presets; all dataflows and both
# bandwidth modes appear for CNNs and for GEMMs. NCF and ViT-S stay off the 12x14 eyeriss array in IS: there
# they are millions of cycles (NCF in USER mode ran past 7 minutes of scalesim here and was dropped).
SUITE = {
    "alexnet_google_os_calc": ("alexnet", "google", "os", "CALC"),
    "alexnet_scale_ws_calc": ("alexnet", "scale", "ws", "CALC"),
    "alexnet_part_eyeriss_ws_user": ("alexnet_part", "eyeriss", "ws", "USER"),
    "alexnet_part_scale_is_calc": ("alexnet_part", "scale", "is", "CALC"),
    "inception_scale_ws_user": ("inception", "scale", "ws", "USER"),
    "inception_google_is_calc": ("inception", "google", "is", "CALC"),
    "inception_eyeriss_os_user": ("inception", "eyeriss", "os", "USER"),
    "ncf_google_os_calc": ("ncf", "google", "os", "CALC"),
    "ncf_scale_ws_calc": ("ncf", "scale", "ws", "CALC"),
    "ncf_google_is_user": ("ncf", "google", "is", "USER"),
    "vit_s_scale_os_user": ("vit_s", "scale", "os", "USER"),
    "vit_s_google_ws_calc": ("vit_s", "google", "ws", "CALC"),
    "vit_s_scale_is_calc": ("vit_s", "scale", "is", "CALC"),
    "mnk_scale_ws_user": ("mnk", "scale", "ws", "USER"),
    "mnk_eyeriss_os_calc": ("mnk", "eyeriss", "os", "CALC"),
    "mnk_google_is_user": ("mnk", "google", "is", "USER"),
}
QUICK = ("inception_scale_ws_user", "mnk_eyeriss_os_calc", "ncf_google_os_calc")


def case_hardware(name: str) -> Hardware:
    _, preset, dataflow, mode = SUITE[name]
    rows, cols, _, kib = PRESETS[preset]
    bw = 10 if mode == "USER" else None
    return Hardware(
        rows,
        cols,
        dataflow,
        kib[0] * 1024,
        kib[1] * 1024,
        kib[2] * 1024,
        dram_bw_words_per_cycle=bw,
        ifmap_dram_bw_words_per_cycle=bw,
        filter_dram_bw_words_per_cycle=bw,
        run_name=name,
    )


def write_inputs(name: str, folder: Path) -> bool:
    """Write the case's config, topology and empty layout into `folder`; True for a GEMM topology."""
    gemm, rows = TOPOLOGIES[SUITE[name][0]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scale.cfg").write_text(config_text(case_hardware(name)))
    (folder / "topology.csv").write_text("\n".join([GEMM_HEADER if gemm else CONV_HEADER, *rows]) + "\n")
    (folder / "layout.csv").write_text("Layer name,\n")
    return gemm


def trace_hashes(run: Path) -> dict[str, str]:
    """sha256 of every trace file under a run folder, keyed `layer<i>/<TRACE>`."""
    out = {}
    for layer in sorted(p for p in run.iterdir() if p.is_dir() and p.name.startswith("layer")):
        for trace in TRACES:
            path = layer / f"{trace}.csv"
            if path.is_file():
                digest = hashlib.sha256()
                with path.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 24), b""):
                        digest.update(block)
                out[f"{layer.name}/{trace}"] = digest.hexdigest()
    return out


def _args(folder: Path, gemm: bool, out: Path) -> list[str]:
    files = ["-c", folder / "scale.cfg", "-t", folder / "topology.csv", "-l", folder / "layout.csv", "-p", out]
    return [*map(str, files), "-i", "gemm" if gemm else "conv"]


def record(python: str, names: list[str]) -> None:
    """Run scalesim on each case once and keep its reports, trace hashes and wall seconds."""
    for name in names:
        folder = GOLDEN / name
        gemm = write_inputs(name, folder)
        with tempfile.TemporaryDirectory(prefix="scalesim_suite.") as tmp:
            start = time.perf_counter()
            cmd = [python, "-m", "scalesim.scale", *_args(folder, gemm, Path(tmp))]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            run = Path(tmp) / name
            for report in REPORTS:
                shutil.copy(run / f"{report}.csv", folder / f"{report}.csv")
            peer = {"scalesim_wall_s": round(wall, 2), "traces": trace_hashes(run)}
        (folder / "scalesim.json").write_text(json.dumps(peer, indent=1, sort_keys=True) + "\n")
        print(f"{name}: scalesim {wall:.1f} s", flush=True)


def _ours_command() -> list[str]:
    script = Path(sys.executable).with_name("accelkit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "accelkit.cli"]


def _timed_ours(name: str, work: Path, traces: bool, repeat: int) -> float:
    """Best wall seconds of `repeat` whole-process runs; checks the reports (and trace hashes) every time."""
    folder = GOLDEN / name
    gemm = TOPOLOGIES[SUITE[name][0]][0]
    peer = json.loads((folder / "scalesim.json").read_text())
    best = float("inf")
    for i in range(repeat):
        out = work / f"{name}.{traces}.{i}"
        cmd = [*_ours_command(), "scalesim", *_args(folder, gemm, out), "-s", "Y" if traces else "N"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
        run = out / name
        for report in REPORTS:
            if (run / f"{report}.csv").read_bytes() != (folder / f"{report}.csv").read_bytes():
                raise RuntimeError(f"{name}: {report} differs from scalesim's")
        if traces and trace_hashes(run) != peer["traces"]:
            raise RuntimeError(f"{name}: traces differ from scalesim's")
        shutil.rmtree(out)
    return best


def compile_bytecode() -> None:
    """Compile accelkit's Python files to bytecode, as pip does at install time (scalesim's were, in its venv). An
    editable install otherwise leaves that to the first import, and with PYTHONDONTWRITEBYTECODE set (as on this
    machine) every run compiles the ~15 modules `accelkit scalesim` imports again: about 11 ms a process here."""
    import compileall

    import accelkit
    import accelkit.sim

    for package in (accelkit, accelkit.sim):
        compileall.compile_dir(Path(package.__file__).parent, quiet=2)


def _option(argv: list[str], flag: str, default: str) -> str:
    return argv[argv.index(flag) + 1] if flag in argv else default


def run(argv: list[str]) -> dict:
    names = [argv[i + 1] for i, a in enumerate(argv) if a == "--case"] or list(QUICK if "--quick" in argv else SUITE)
    missing = [name for name in names if not (GOLDEN / name / "scalesim.json").is_file()]
    names = [name for name in names if name not in missing]
    if missing:
        print(f"no scalesim recording for {', '.join(missing)} (bench/sim_scalesim_suite.py --record); skipped")
    repeat = int(_option(argv, "--repeat", "2"))
    compile_bytecode()
    traces = "--no-traces" not in argv
    table = []
    work = Path(tempfile.mkdtemp(prefix="sim_scalesim_suite."))
    try:
        for name in names:
            peer = json.loads((GOLDEN / name / "scalesim.json").read_text())["scalesim_wall_s"]
            ours = _timed_ours(name, work, False, repeat)
            row = {"case": name, "scalesim_s": peer, "ours_s": round(ours, 3), "ratio": round(peer / ours, 1)}
            if traces:
                ours_t = _timed_ours(name, work, True, repeat)
                row |= {"ours_traces_s": round(ours_t, 3), "trace_ratio": round(peer / ours_t, 1)}
            table.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peer_total = sum(r["scalesim_s"] for r in table)
    ours_total = sum(r["ours_s"] for r in table)
    slowest = max(table, key=lambda r: r["ours_s"])
    result = {
        "name": "sim_scalesim_suite",
        "metric": "aggregate whole-process speed-up over scalesim 3.0.0 (sum of wall seconds)",
        "ours": round(ours_total, 3),
        "peer": round(peer_total, 1),
        "ratio": round(peer_total / ours_total, 1),
        "cases": len(table),
        "not_recorded": missing,
        "identical_reports": True,
        "slowest": slowest,
        "worst_ratio": min(table, key=lambda r: r["ratio"]),
        "seconds": round(ours_total, 3),
        "table": table,
    }
    if traces:
        ours_t = sum(r["ours_traces_s"] for r in table)
        result |= {"ours_traces": round(ours_t, 3), "trace_ratio": round(peer_total / ours_t, 1)}
        result["identical_traces"] = True
    return result


if __name__ == "__main__":
    if sys.argv[1:2] != ["--record"]:
        print(json.dumps(run(sys.argv[1:])))
        sys.exit(0)
    scalesim = os.environ.get("SCALESIM_PYTHON")
    if not scalesim:
        sys.exit("set SCALESIM_PYTHON to a Python that has scalesim==3.0.0 installed")
    record(scalesim, sys.argv[2:] or list(SUITE))
