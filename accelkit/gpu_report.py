"""`accelkit gpu-report`: compile every kernel for sm_80 and sm_90 without a GPU and check its resources.

Triton kernels come from the AOT registry (kernels/_common/aot.py), CUDA C kernels from csrc/cuda/*.cu. Register
and spill counts come from `ptxas -v`; shared memory is Triton's dynamic allocation plus ptxas' static count.
The exit status is non-zero when any kernel fails to build, spills, or exceeds a per-thread or per-block limit.

Triton compiles run in worker processes (`python -m accelkit.gpu_report --worker`) with TRITON_INTERPRET removed:
the interpreter (which the test suite turns on) replaces `@triton.jit` kernels with Python functions that cannot
be compiled, and it is fixed when triton is first imported, so it cannot be switched off inside a process that
already uses it.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from accelkit import _sources

TARGETS = {"sm_80": 80, "sm_90": 90}
# Maximum shared memory per thread block with the opt-in attribute (CUDA C Programming Guide, "Technical
# Specifications per Compute Capability"): 163 KB on compute capability 8.0 and 227 KB on 9.0.
SMEM_LIMIT = {"sm_80": 163 * 1024, "sm_90": 227 * 1024}
# Same table: at most 255 32-bit registers per thread on every compute capability from 5.0 up.
REG_LIMIT = 255


@dataclass(frozen=True)
class KernelReport:
    """One kernel built for one target. status is 'ok', 'skipped' (a tool is missing) or 'error' (build failed);
    the counts are None unless status is 'ok'."""

    kernel: str
    source: str
    target: str
    status: str = "ok"
    registers: int | None = None
    spill_stores: int | None = None
    spill_loads: int | None = None
    shared_bytes: int | None = None
    reason: str = ""

    @property
    def problems(self) -> list[str]:
        """Why this row fails the check; empty when it passes or was skipped."""
        if self.status == "error":
            return [f"build failed: {self.reason}"]
        if self.status != "ok":
            return []
        found = []
        if self.spill_stores or self.spill_loads:
            found.append(f"spills {self.spill_stores} B stored / {self.spill_loads} B loaded")
        if self.registers is not None and self.registers > REG_LIMIT:
            found.append(f"{self.registers} registers > {REG_LIMIT}")
        limit = SMEM_LIMIT.get(self.target)
        if limit is not None and self.shared_bytes is not None and self.shared_bytes > limit:
            found.append(f"shared memory {self.shared_bytes} B > {limit} B")
        return found


@dataclass(frozen=True)
class PtxasUsage:
    registers: int
    spill_stores: int
    spill_loads: int
    static_smem: int


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(log: str) -> dict[str, PtxasUsage]:
    """Per entry function usage from `ptxas -v` output (which lists each entry's spills, then its registers)."""
    usage: dict[str, PtxasUsage] = {}
    name, spills = None, (0, 0)
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            name, spills = m.group(1), (0, 0)
        elif (m := _SPILLS.search(line)) and name is not None:
            spills = (int(m.group(1)), int(m.group(2)))
        elif (m := _REGS.search(line)) and name is not None:
            smem = _SMEM.search(line)
            usage[name] = PtxasUsage(int(m.group(1)), *spills, int(smem.group(1)) if smem else 0)
            name = None
    return usage


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


# Triton -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TritonBuild:
    report: KernelReport
    ptx: str = ""


def _worker_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    # Keeps Triton 3.9's current default and silences its deprecation warning.
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return env


def _ptxas_usage(ptx: str, arch: int, workdir: str) -> PtxasUsage:
    from triton.backends.nvidia.compiler import get_ptxas

    # Triton writes `.target sm_90a` for arch 90; ptxas must be told the same name.
    gpu_name = re.search(r"^\.target\s+(\w+)", ptx, re.MULTILINE).group(1)
    src = Path(workdir) / "kernel.ptx"
    src.write_text(ptx)
    res = _run([get_ptxas(arch).path, "-v", "--gpu-name", gpu_name, str(src), "-o", str(src.with_suffix(".o"))])
    if res.returncode != 0:
        raise RuntimeError(f"ptxas failed: {_tail(res.stderr)}")
    usage = parse_ptxas(res.stdout + res.stderr)
    if len(usage) != 1:
        raise RuntimeError(f"expected one entry function in ptxas output, got {sorted(usage)}")
    return next(iter(usage.values()))


def _build_triton(specs: dict, spec_id: str, target: str) -> TritonBuild:
    """Compile one spec for one target and measure it; runs in a worker process."""
    from accelkit.kernels._common import aot

    try:
        compiled = aot.compile_spec(specs[spec_id], TARGETS[target])
        ptx = compiled.asm["ptx"]
        with tempfile.TemporaryDirectory() as workdir:
            usage = _ptxas_usage(ptx, TARGETS[target], workdir)
    except Exception as exc:  # noqa: BLE001 - any build failure becomes an error row, not a crashed report
        return TritonBuild(KernelReport(spec_id, "triton", target, "error", reason=f"{type(exc).__name__}: {exc}"))
    shared = compiled.metadata.shared + usage.static_smem
    report = KernelReport(
        spec_id, "triton", target, "ok", usage.registers, usage.spill_stores, usage.spill_loads, shared
    )
    return TritonBuild(report, ptx)


def _worker(request_file: str) -> int:
    """`python -m accelkit.gpu_report --worker REQUEST.json`: build every `shards`-th (spec, target) pair starting
    at `shard` and write [pair index, report fields, ptx] rows to the request's `out` file. Each worker discovers
    the specs itself, so the parent never imports triton or torch."""
    from accelkit.kernels._common import aot

    request = json.loads(Path(request_file).read_text())
    specs = {s.id: s for s in aot.discover()}
    every = [spec_id for spec_id, spec in specs.items() if spec.ci_build or not request.get("ci_only")]
    pairs = [(spec_id, t) for spec_id in request["ids"] or every for t in request["targets"]]
    rows = []
    for index in range(request["shard"], len(pairs), request["shards"]):
        build = _build_triton(specs, *pairs[index])
        rows.append([index, asdict(build.report), build.ptx])
    Path(request["out"]).write_text(json.dumps(rows))
    return 0


def _start_worker(tmp: Path, shard: int, shards: int, spec_ids, targets, ci_only: bool = False) -> tuple:
    request = tmp / f"request{shard}.json"
    out, log = tmp / f"out{shard}.json", tmp / f"log{shard}.txt"
    fields = {"shard": shard, "shards": shards, "ids": spec_ids, "targets": list(targets), "out": str(out),
              "ci_only": ci_only}  # fmt: skip
    request.write_text(json.dumps(fields))
    cmd = [sys.executable, "-m", "accelkit.gpu_report", "--worker", str(request)]
    with log.open("w") as stderr:
        proc = subprocess.Popen(cmd, env=_worker_env(), stdout=subprocess.DEVNULL, stderr=stderr)
    return proc, out, log


def compile_triton(
    spec_ids: list[str] | None = None, targets=tuple(TARGETS), jobs: int | None = None, ci_only: bool = False
) -> list:
    """Build every discovered Triton spec (or the given ids; or, with ci_only, those marked ci_build) for every target
    in `jobs` worker processes (default: one per CPU); a TritonBuild per (spec, target), in order. Without triton (a
    Linux x86-64 dependency only) there is one 'skipped' row per target."""
    if importlib.util.find_spec("triton") is None:
        reason = "triton is not installed"
        return [TritonBuild(KernelReport("(Triton kernels)", "triton", t, "skipped", reason=reason)) for t in targets]
    shards = max(1, jobs or os.cpu_count() or 1)
    if spec_ids is not None:
        shards = min(shards, len(spec_ids) * len(targets))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workers = [_start_worker(Path(tmp), shard, shards, spec_ids, targets, ci_only) for shard in range(shards)]
        for proc, out, log in workers:
            if proc.wait() != 0 or not out.exists():
                raise RuntimeError(f"gpu_report worker failed: {_tail(log.read_text(), 6)}")
            rows += json.loads(out.read_text())
    rows.sort(key=lambda row: row[0])
    return [TritonBuild(KernelReport(**fields), ptx) for _, fields, ptx in rows]


def triton_reports(
    spec_ids: list[str] | None = None, targets=tuple(TARGETS), jobs: int | None = None, ci_only: bool = False
) -> list:
    """KernelReport rows of compile_triton."""
    return [build.report for build in compile_triton(spec_ids, targets, jobs, ci_only)]


# CUDA C -----------------------------------------------------------------------------------------------------------


def cuda_sources() -> list[Path]:
    """csrc/cuda/*.cu of this installation; an installation without them is broken, so this raises rather than
    reporting no CUDA rows."""
    sources = _sources.cuda_sources()
    if not sources:
        raise FileNotFoundError(f"no CUDA sources (*.cu) in {_sources.csrc_dir() / 'cuda'}")
    return sources


def find_nvcc() -> str | None:
    return os.environ.get("NVCC") or shutil.which("nvcc")


def _demangle(names: list[str]) -> list[str]:
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt or not names:
        return names
    res = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True, check=False)
    out = res.stdout.splitlines()
    return out if res.returncode == 0 and len(out) == len(names) else names


def _build_cuda(path: Path, target: str, nvcc: str, include_dir: Path) -> list[KernelReport]:
    label = path.name
    with tempfile.TemporaryDirectory() as workdir:
        cubin = Path(workdir) / f"{path.stem}.{target}.cubin"
        cmd = [nvcc, "-cubin", f"-arch={target}", "-I", str(include_dir), "-Xptxas", "-v", str(path), "-o", str(cubin)]
        res = _run(cmd)
    if res.returncode != 0:
        return [KernelReport(label, "cuda", target, "error", reason=_tail(res.stderr))]
    usage = parse_ptxas(res.stdout + res.stderr)
    if not usage:
        return [KernelReport(label, "cuda", target, "error", reason="no __global__ kernel found in ptxas output")]
    names = _demangle(list(usage))
    return [
        KernelReport(f"{label}:{name.split('(')[0]}", "cuda", target, "ok", u.registers, u.spill_stores,
                     u.spill_loads, u.static_smem)
        for name, u in zip(names, usage.values(), strict=True)
    ]  # fmt: skip


def cuda_reports(
    sources: list[Path] | None = None,
    targets=tuple(TARGETS),
    jobs: int | None = None,
    include_dir: Path | None = None,
) -> list[KernelReport]:
    """Build each .cu (default: csrc/cuda/*.cu) with nvcc for every target; one row per kernel and target, or one
    'skipped' row per file and target when nvcc is missing. Shared memory is the static amount only: dynamic
    shared memory is set at launch and ptxas cannot see it."""
    sources = cuda_sources() if sources is None else list(sources)
    include_dir = _sources.include_dir() if include_dir is None else include_dir
    nvcc = find_nvcc()
    if nvcc is None:
        reason = "nvcc not found (set NVCC or put it on PATH)"
        return [KernelReport(p.name, "cuda", t, "skipped", reason=reason) for p in sources for t in targets]
    tasks = [(p, t) for p in sources for t in targets]
    with ThreadPoolExecutor(min(jobs or os.cpu_count() or 1, max(len(tasks), 1))) as pool:
        rows = pool.map(lambda task: _build_cuda(*task, nvcc, include_dir), tasks)
        return [row for file_rows in rows for row in file_rows]


# Report -----------------------------------------------------------------------------------------------------------


def _cell(value) -> str:
    return "-" if value is None else str(value)


def format_table(rows: list[KernelReport]) -> str:
    header = ("kernel", "source", "target", "registers", "spills st/ld (B)", "shared (B)", "check")
    body = []
    for r in rows:
        spills = "-" if r.spill_stores is None else f"{r.spill_stores}/{r.spill_loads}"
        check = "; ".join(r.problems) or ("ok" if r.status == "ok" else f"{r.status}: {r.reason}")
        body.append((r.kernel, r.source, r.target, _cell(r.registers), spills, _cell(r.shared_bytes), check))
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def exit_code(rows: list[KernelReport]) -> int:
    return 1 if any(r.problems for r in rows) else 0


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="accelkit gpu-report", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="only this target (repeatable)")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="parallel builds (default: CPU count)")
    parser.add_argument(
        "--ci-subset",
        action="store_true",
        help="only the Triton specs marked ci_build, the ones tests/test_gpu_build.py compiles (default: all)",
    )
    parser.add_argument("--worker", metavar="REQUEST", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        return _worker(args.worker)
    targets = tuple(args.target or TARGETS)
    try:
        triton_rows = triton_reports(targets=targets, jobs=args.jobs, ci_only=args.ci_subset)
        rows = triton_rows + cuda_reports(targets=targets, jobs=args.jobs)
    except FileNotFoundError as exc:
        print(f"accelkit gpu-report: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{**asdict(r), "problems": r.problems} for r in rows], indent=2))
    else:
        print(format_table(rows))
        failed = sum(bool(r.problems) for r in rows)
        print(f"\n{len(rows)} builds, {failed} failing the check")
    return exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())
