"""Ahead-of-time registry: which Triton kernel configurations the build check and `accelkit gpu-report` compile.

Convention: every `accelkit.kernels.<op>.triton_kernels` module defines a module-level
`AOT_SPECS: list[AotSpec]` holding the configurations its launchers actually launch (same constexprs, num_warps and
num_stages). `discover()` imports each such module and collects the specs, so a new op joins the GPU build check by
defining AOT_SPECS; no test or report needs editing.

This module does not import triton: `compile_spec` imports it when called, and it only works in a process where
the Triton interpreter is off (TRITON_INTERPRET unset before triton's first import), because the interpreter
replaces every `@triton.jit` function with a Python one that has no compiler front end.
"""

import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

KERNELS_PACKAGE = "accelkit.kernels"
# Not `triton`: a module of that name inside a package shadows the triton package for code that runs from the
# folder (scripts, doctests), so each op keeps its Triton kernels in `<op>/triton_kernels.py`.
TRITON_MODULE = "triton_kernels"


@dataclass(frozen=True)
class AotSpec:
    """One compiled configuration of a Triton kernel.

    signature maps every kernel parameter to a Triton type string ("*fp32", "i32", ...) or "constexpr";
    constexprs gives the value of each "constexpr" parameter. `name` must be unique within its op; it defaults
    to the kernel's name, so an op that compiles one kernel several ways names each configuration.
    """

    kernel: Any
    signature: Mapping[str, str]
    constexprs: Mapping[str, Any] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 3
    name: str = ""
    # Mark pointer parameters 16-byte aligned, as the JIT does at launch for torch's allocations (the CUDA caching
    # allocator hands out 512-byte aligned blocks), so the AOT build sees the same vectorised loads.
    aligned_pointers: bool = True
    # Whether tests/test_gpu_build.py compiles it inside `make test`; `accelkit gpu-report` compiles every spec. An op
    # whose full list would cost CI minutes marks the configurations that only repeat another's code (the same kernel
    # body with other loop counts or another 16-bit load type) False, and says which in its triton_kernels.py.
    ci_build: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "signature", MappingProxyType(dict(self.signature)))
        object.__setattr__(self, "constexprs", MappingProxyType(dict(self.constexprs)))
        if not self.name:
            object.__setattr__(self, "name", self.kernel_name)
        self._validate()

    def _validate(self) -> None:
        params = list(getattr(self.kernel, "arg_names", []))
        if params and list(self.signature) != params:
            raise ValueError(f"{self.name}: signature keys {list(self.signature)} != kernel parameters {params}")
        declared = {p for p, t in self.signature.items() if t == "constexpr"}
        if declared != set(self.constexprs):
            raise ValueError(f"{self.name}: constexpr parameters {sorted(declared)} != given {sorted(self.constexprs)}")

    @property
    def kernel_name(self) -> str:
        return self.kernel.__name__

    @property
    def op(self) -> str:
        """The op folder the kernel lives in, e.g. 'binary' for accelkit.kernels.binary.triton_kernels."""
        module = self.kernel.fn.__module__
        prefix = KERNELS_PACKAGE + "."
        return module.removeprefix(prefix).removesuffix("." + TRITON_MODULE) if module.startswith(prefix) else module

    @property
    def id(self) -> str:
        """Stable, unique name across ops, e.g. 'binary/binary_gemm_kernel[w32]'."""
        return f"{self.op}/{self.name}"


def triton_modules() -> list[str]:
    """Names of every `accelkit.kernels.<op>.triton_kernels` module, sorted."""
    package = importlib.import_module(KERNELS_PACKAGE)
    names = []
    for info in pkgutil.iter_modules(package.__path__, KERNELS_PACKAGE + "."):
        module = f"{info.name}.{TRITON_MODULE}"
        if info.ispkg and importlib.util.find_spec(module) is not None:
            names.append(module)
    return sorted(names)


def discover() -> list[AotSpec]:
    """Import every kernel module and return all their AOT_SPECS; raise on a duplicate id.

    Import errors propagate on purpose: a kernel module that fails to import must fail the build check rather
    than silently drop out of it.
    """
    specs: list[AotSpec] = []
    for name in triton_modules():
        specs.extend(getattr(importlib.import_module(name), "AOT_SPECS", []))
    ids = [s.id for s in specs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate AOT spec ids: {duplicates}")
    return specs


def compile_spec(spec: AotSpec, arch: int) -> Any:
    """triton.compile the spec for CUDA compute capability `arch` (80, 90, ...); returns Triton's CompiledKernel
    (`.asm["ptx"]`, `.asm["cubin"]`, `.metadata.shared`, `.metadata.num_warps`)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if not isinstance(spec.kernel, triton.runtime.JITFunction):
        raise RuntimeError(
            f"{spec.id}: kernel is a {type(spec.kernel).__name__}, not a JITFunction; TRITON_INTERPRET was set when "
            "triton was imported, so compile in a process without it"
        )
    attrs = {}
    if spec.aligned_pointers:
        attrs = {(i,): [["tt.divisibility", 16]] for i, t in enumerate(spec.signature.values()) if t.startswith("*")}
    source = ASTSource(spec.kernel, dict(spec.signature), dict(spec.constexprs), attrs)
    options = {"num_warps": spec.num_warps, "num_stages": spec.num_stages}
    # Warp size 32 is the same on every NVIDIA target.
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
