"""Build the `accelkit._C` extension from csrc/ and map kernels/ and sim/ into the accelkit package.

Flags stay portable (no -march=native): the AVX2 and AVX-512 paths are compiled per function with target
attributes and chosen at run time from CPUID, so one wheel runs on any x86-64 machine.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

ROOT = Path(__file__).parent
PACKAGE_DIRS = {"accelkit": "accelkit", "accelkit.kernels": "kernels", "accelkit.sim": "sim"}
# csrc/ ships inside the wheel as accelkit/_csrc/ (found at run time through accelkit._sources): gpu-report builds
# the .cu files with nvcc and the CuPy launcher compiles them with NVRTC, both with the headers of include/.
SOURCES_PACKAGE = "accelkit._csrc"
PACKAGE_DATA = {
    SOURCES_PACKAGE: ["*.cpp", "*.h", "include/accelkit/*.h", "cuda/*.cu"],
    # Each op's README holds its derivation; the simulator's documents its model.
    "accelkit.kernels": ["*/README.md"],
    "accelkit.sim": ["README.md"],
}


def _packages() -> list[str]:
    found = []
    for pkg, folder in PACKAGE_DIRS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            found.append(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    return found


def _has_openmp() -> bool:
    """True when the C++ compiler accepts -fopenmp (gcc does; Apple clang does not)."""
    cxx = os.environ.get("CXX", "c++")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.cpp"
        src.write_text("#include <omp.h>\nint main(){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        try:
            res = subprocess.run([cxx, "-fopenmp", str(src), "-o", str(Path(tmp) / "t")], capture_output=True)
        except OSError:
            return False
        return res.returncode == 0


def _extension() -> Pybind11Extension:
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.cpp"))
    compile_args = ["-O3", "-fno-math-errno"]
    link_args = []
    if sys.platform != "win32" and _has_openmp():
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    return Pybind11Extension(
        "accelkit._C",
        sources,
        include_dirs=[str(ROOT / "csrc" / "include")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        cxx_std=17,
    )


setup(
    package_dir={**PACKAGE_DIRS, SOURCES_PACKAGE: "csrc"},
    packages=[*_packages(), SOURCES_PACKAGE],
    package_data=PACKAGE_DATA,
    ext_modules=[_extension()],
    cmdclass={"build_ext": build_ext},
)
