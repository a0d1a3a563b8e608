"""Every Triton kernel in the AOT registry and every csrc/cuda/*.cu file builds for sm_80 and sm_90 without spills
and within the targets' register and shared-memory limits. No GPU is needed.

Kernels join by defining AOT_SPECS in their kernels/<op>/triton_kernels.py; this file never lists them. This process
runs the Triton interpreter (conftest.py), so gpu_report compiles in worker processes with TRITON_INTERPRET removed.

Only the specs with `ci_build` set are compiled here, to keep `make test` within CI's limit; `accelkit gpu-report`
builds every spec with the same check. delta_rule is the op that uses it: its 180 specs took 4.7 minutes with two
jobs on the 2-core development machine, so CI compiles 80 of them, every kernel of both rules in fp16 and fp32 at
d = 64 and d = 256 (d changes only loop counts in its chunk kernels, and bf16 is fp16's code with another
conversion; see kernels/delta_rule/triton_kernels.py).
"""

import os
import re
from pathlib import Path

import pytest

from accelkit import gpu_report
from accelkit.kernels._common import aot

SPECS = aot.discover()
CI_SPECS = [s for s in SPECS if s.ci_build]
CUDA_SOURCES = gpu_report.cuda_sources()
NVCC = gpu_report.find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found (set NVCC or put it on PATH)")


@pytest.fixture(scope="module")
def triton_builds() -> dict:
    """(spec id, target) -> TritonBuild, all built once in parallel workers."""
    builds = gpu_report.compile_triton([s.id for s in CI_SPECS], jobs=min(2, os.cpu_count() or 1))
    return {(b.report.kernel, b.report.target): b for b in builds}


def test_discovery_finds_the_binary_kernels():
    ids = {s.id for s in SPECS}
    for bits in (32, 64):
        assert f"binary/binary_gemm_kernel[w{bits}]" in ids
        for dtype in ("fp32", "fp64", "fp16", "bf16"):
            assert f"binary/binary_pack_kernel[{dtype},w{bits}]" in ids
    assert "accelkit.kernels.binary.triton_kernels" in aot.triton_modules()


def test_no_op_module_shadows_triton():
    # kernels/<op>/triton.py would shadow the triton package for scripts run from that folder.
    kernels = Path(aot.__file__).resolve().parents[1]
    assert not sorted(kernels.glob("*/triton.py")), "name Triton kernel modules triton_kernels.py"


@pytest.mark.parametrize("target", list(gpu_report.TARGETS))
@pytest.mark.parametrize("spec", CI_SPECS, ids=lambda s: s.id)
def test_triton_kernel_builds_within_limits(spec, target, triton_builds):
    report = triton_builds[(spec.id, target)].report
    assert report.status == "ok", report.reason
    assert report.registers and report.registers > 0
    assert not report.problems, f"{spec.id} on {target}: {report.problems}"


@pytest.mark.parametrize("target", list(gpu_report.TARGETS))
@pytest.mark.parametrize("bits", [32, 64])
def test_swar_popcount_compiles_to_popc(bits, target, triton_builds):
    # bits.py relies on LLVM folding the SWAR sequence into one popc per word; a change that breaks the idiom
    # still computes the right counts, so only the PTX shows it.
    ptx = triton_builds[(f"binary/binary_gemm_kernel[w{bits}]", target)].ptx
    assert re.search(rf"popc\.b{bits}\b", ptx), "SWAR popcount was not folded into popc"
    first_mask = {32: 0x55555555, 64: 0x5555555555555555}[bits]
    assert str(first_mask) not in ptx and hex(first_mask) not in ptx.lower(), "SWAR masks left in the PTX"


@needs_nvcc
@pytest.mark.parametrize("path", CUDA_SOURCES, ids=lambda p: p.name)
def test_cuda_source_builds_within_limits(path):
    rows = gpu_report.cuda_reports([path], jobs=2)
    assert {r.target for r in rows} == set(gpu_report.TARGETS)
    for r in rows:
        assert r.status == "ok", f"{r.kernel} on {r.target}: {r.reason}"
        assert not r.problems, f"{r.kernel} on {r.target}: {r.problems}"


@needs_nvcc
def test_cuda_report_reads_ptxas_counts(tmp_path):
    # A kernel whose static shared memory is known exactly (1024 floats) checks the nvcc path end to end.
    src = tmp_path / "probe.cu"
    src.write_text(
        "__global__ void probe(float* out) {\n"
        "  __shared__ float tile[1024];\n"
        "  tile[threadIdx.x] = out[threadIdx.x];\n"
        "  __syncthreads();\n"
        "  out[threadIdx.x] = tile[1023 - threadIdx.x];\n"
        "}\n"
    )
    rows = gpu_report.cuda_reports([src], targets=("sm_80",), include_dir=tmp_path)
    assert [(r.kernel, r.status, r.shared_bytes) for r in rows] == [("probe.cu:probe", "ok", 4096)]
    assert rows[0].registers > 0 and rows[0].spill_stores == 0


def test_cuda_build_error_fails_the_check(tmp_path):
    src = tmp_path / "broken.cu"
    src.write_text("__global__ void broken() { undeclared(); }\n")
    rows = gpu_report.cuda_reports([src], targets=("sm_80",), include_dir=tmp_path)
    expected_status = "error" if NVCC else "skipped"
    assert [r.status for r in rows] == [expected_status]
    assert gpu_report.exit_code(rows) == (1 if NVCC else 0)


def test_limit_check_flags_each_limit():
    def row(**fields):
        base = {"kernel": "k", "source": "triton", "target": "sm_80", "status": "ok", "registers": 64,
                "spill_stores": 0, "spill_loads": 0, "shared_bytes": 1024}  # fmt: skip
        return gpu_report.KernelReport(**{**base, **fields})

    assert row().problems == []
    assert row(registers=255, shared_bytes=166912).problems == []
    assert len(row(registers=256).problems) == 1
    assert len(row(spill_loads=4).problems) == 1
    assert len(row(shared_bytes=166913).problems) == 1
    assert row(shared_bytes=166913).problems != row(shared_bytes=166913, target="sm_90").problems
    assert gpu_report.exit_code([row(), row(spill_stores=8)]) == 1
    assert gpu_report.exit_code([row(), row()]) == 0


def test_parse_ptxas_attributes_spills_to_their_entry():
    log = (
        "ptxas info    : Compiling entry function 'a' for 'sm_80'\n"
        "ptxas info    : Function properties for a\n"
        "    8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 255 registers, used 1 barriers, 512 bytes smem, 356 bytes cmem[0]\n"
        "ptxas info    : Compiling entry function 'b' for 'sm_80'\n"
        "ptxas info    : Function properties for b\n"
        "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
        "ptxas info    : Used 10 registers, used 0 barriers, 356 bytes cmem[0]\n"
    )
    usage = gpu_report.parse_ptxas(log)
    assert usage == {"a": gpu_report.PtxasUsage(255, 8, 4, 512), "b": gpu_report.PtxasUsage(10, 0, 0, 0)}


def test_aot_spec_rejects_a_signature_that_drifted_from_the_kernel():
    spec = next(s for s in SPECS if s.id == "binary/binary_gemm_kernel[w32]")
    with pytest.raises(ValueError, match="signature"):
        aot.AotSpec(spec.kernel, {k: v for k, v in spec.signature.items() if k != "k"}, spec.constexprs)
    with pytest.raises(ValueError, match="constexpr"):
        aot.AotSpec(spec.kernel, spec.signature, {**spec.constexprs, "BLOCK_M": 64, "EXTRA": 1})
