"""The CUDA C binary kernels (csrc/cuda/binary_gemm.cu) against kernels/binary/reference.py.

The device tests carry the cuda marker (conftest skips them without a GPU). The build test needs only nvcc: it
compiles the file the way accelkit/gpu_report.py does and checks the entry points and register use.
"""

import re
import shutil
import subprocess

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given
from strategies import float_dtypes, layouts, make_tensor, seeds, sizes
from tolerance import assert_close

from accelkit._sources import cuda_source, include_dir
from accelkit.kernels.binary import reference as ref

SOURCE = cuda_source("binary_gemm.cu")
ENTRY_POINTS = ("accelkit_binary_pack_f32", "accelkit_binary_pack_f64", "accelkit_binary_gemm", "accelkit_spike_gemm")
_SIGNED = {32: np.int32, 64: np.int64}


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_cu_compiles_without_spills(arch, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    cmd = [nvcc, "-cubin", f"-arch={arch}", "-I", str(include_dir()), "-Xptxas", "-v", str(SOURCE)]
    res = subprocess.run([*cmd, "-o", str(tmp_path / "binary.cubin")], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    log = res.stdout + res.stderr
    compiled = set(re.findall(r"Compiling entry function '(\w+)'", log))
    assert compiled == set(ENTRY_POINTS), f"unmangled entry points {sorted(compiled)}"
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", log)]
    assert len(spills) == 2 * len(ENTRY_POINTS) and not any(spills), log
    registers = [int(n) for n in re.findall(r"Used (\d+) registers", log)]
    # __launch_bounds__(256) on the GEMMs caps them at 255; 128 keeps 2+ blocks of 256 threads per SM.
    assert registers and max(registers) <= 128, log


def _cuda():
    pytest.importorskip("cupy", reason="the CUDA launchers need cupy")
    from accelkit.kernels.binary import cuda

    return cuda


def _on_gpu(words: np.ndarray, word_bits: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(words).view(_SIGNED[word_bits])).cuda()


def _int32(x) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x).astype(np.int32))


@pytest.mark.cuda
@given(
    lead=st.lists(sizes(4, min_value=0), max_size=2),
    k=sizes(300),
    dtype=float_dtypes,
    layout=layouts,
    seed=seeds,
    word_bits=st.sampled_from((32, 64)),
)
def test_pack_cuda_matches_oracle(lead, k, dtype, layout, seed, word_bits):
    x = make_tensor((*lead, k), dtype, seed=seed, layout=layout)
    out = _cuda().binary_pack_cuda(x.cuda(), word_bits)
    expected = ref.pack_bits(x.double().numpy(), word_bits).view(_SIGNED[word_bits])
    assert_close("pack cuda", torch.from_numpy(np.ascontiguousarray(expected)), out.cpu())


@pytest.mark.cuda
@given(m=sizes(129), n=sizes(129), k=sizes(2100), seed=seeds, word_bits=st.sampled_from((32, 64)))
def test_binary_gemm_cuda_matches_oracle(m, n, k, seed, word_bits):
    rng = np.random.default_rng(seed)
    a, w = rng.standard_normal((m, k)), rng.standard_normal((n, k))
    a_bits, w_bits = (_on_gpu(ref.pack_bits(t, word_bits), word_bits) for t in (a, w))
    out = _cuda().binary_gemm_cuda(a_bits, w_bits, k)
    assert_close("binary_gemm cuda", _int32(ref.binary_matmul(a, w)), out.cpu())


@pytest.mark.cuda
@given(m=sizes(129), n=sizes(129), k=sizes(2100), seed=seeds, word_bits=st.sampled_from((32, 64)))
def test_spike_gemm_cuda_matches_oracle(m, n, k, seed, word_bits):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((m, k)) < 0.3).astype(np.float64)
    w = rng.standard_normal((n, k))
    s_bits, w_bits = (
        _on_gpu(ref.pack_bits(-spikes, word_bits), word_bits),
        _on_gpu(ref.pack_bits(w, word_bits), word_bits),
    )
    out = _cuda().spike_gemm_cuda(s_bits, w_bits)
    assert_close("spike_gemm cuda", _int32(ref.spike_matmul(spikes, w)), out.cpu())


@pytest.mark.cuda
def test_gemm_cuda_large_and_leading_dims():
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((2, 70, 1000)), rng.standard_normal((133, 1000))
    a_bits, w_bits = _on_gpu(ref.pack_bits(a, 64), 64), _on_gpu(ref.pack_bits(w, 64), 64)
    out = _cuda().binary_gemm_cuda(a_bits, w_bits, 1000)
    assert out.shape == (2, 70, 133)
    assert_close("binary_gemm cuda 3-D", _int32(ref.binary_matmul(a, w)), out.cpu())


@pytest.mark.cuda
def test_gemm_cuda_rejects_bad_k():
    words = torch.zeros(3, 2, dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match="k=65"):
        _cuda().binary_gemm_cuda(words, words, 65)
    with pytest.raises(TypeError, match="k must be an int"):
        _cuda().binary_gemm_cuda(words, words, 64.0)
    with pytest.raises(TypeError, match="word_bits must be an int"):
        _cuda().binary_pack_cuda(torch.zeros(2, 3, device="cuda"), 64.0)


@pytest.mark.cuda
@pytest.mark.parametrize("word_bits", [32, 64])
@pytest.mark.parametrize("k", [1, 33, 65, 100])
def test_gemm_cuda_ignores_padding_bits(k, word_bits):
    # All-ones words set every padding bit as well: only the k real bits may count (k = 33 in 64-bit words used
    # to give -95 on the CPU).
    words = ref.num_words(k, word_bits)
    ones = torch.full((5, words), -1, dtype=torch.int32 if word_bits == 32 else torch.int64, device="cuda")
    out = _cuda().binary_gemm_cuda(ones, torch.zeros_like(ones[:3]), k)
    assert_close("ones x zeros", np.full((5, 3), -k), out.cpu())
    assert_close("ones x ones", np.full((5, 5), k), _cuda().binary_gemm_cuda(ones, ones, k).cpu())


@pytest.mark.cuda
def test_cuda_launch_orders_with_torch_stream():
    # Inputs made by torch on a side stream, the launch on that stream: the result must see the finished inputs.
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        x = torch.randn(512, 4096, device="cuda")
        w = torch.randn(256, 4096, device="cuda")
        a_bits = _cuda().binary_pack_cuda(x.t().contiguous().t(), 64)
        w_bits = _cuda().binary_pack_cuda(w, 64)
        out = _cuda().binary_gemm_cuda(a_bits, w_bits, 4096)
    stream.synchronize()
    assert_close("on a side stream", _int32(ref.binary_matmul(x.cpu().numpy(), w.cpu().numpy())), out.cpu())
