"""Test harness: the Triton interpreter without a GPU, NaN-filled uninitialised memory, hypothesis profiles."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    # Must precede the first `import triton`: the same kernel source then runs on NumPy.
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Silences Triton 3.9's deprecation warning by keeping its current default.
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

# With deterministic algorithms on, torch.empty and friends fill floats with NaN (integers with their max), so a
# kernel that leaves part of its output unwritten fails its test instead of passing on leftover zeros.
torch.use_deterministic_algorithms(True, warn_only=True)
torch.utils.deterministic.fill_uninitialized_memory = True

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_cuda)
