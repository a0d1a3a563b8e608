"""Where the kernel sources that accelkit compiles at run time live: the one resolver for csrc/.

`accelkit gpu-report` builds csrc/cuda/*.cu with nvcc and the CuPy launcher compiles them with NVRTC, so both need
the .cu files and the framework-free headers of csrc/include/ after installation, not only in a checkout. A wheel
ships csrc/ as package data at accelkit/_csrc/ (setup.py maps it there); an editable install or a checkout reads
the repository's csrc/ beside the accelkit/ folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

import accelkit

_PACKAGE_DIR = Path(accelkit.__file__).resolve().parent


@functools.cache
def csrc_dir() -> Path:
    """The csrc/ tree (include/accelkit/*.h, cuda/*.cu, *.cpp) of this installation."""
    for candidate in (_PACKAGE_DIR / "_csrc", _PACKAGE_DIR.parent / "csrc"):
        if (candidate / "include" / "accelkit").is_dir():
            return candidate
    raise FileNotFoundError(
        f"accelkit's kernel sources are missing: neither {_PACKAGE_DIR / '_csrc'} nor {_PACKAGE_DIR.parent / 'csrc'} "
        "holds include/accelkit/; reinstall accelkit from a wheel or a full source tree"
    )


def include_dir() -> Path:
    """The folder to pass as -I so that `#include "accelkit/<name>.h"` resolves."""
    return csrc_dir() / "include"


def cuda_sources() -> list[Path]:
    """Every CUDA C source (csrc/cuda/*.cu), sorted by name."""
    return sorted((csrc_dir() / "cuda").glob("*.cu"))


def cuda_source(name: str) -> Path:
    """One CUDA C source by file name, e.g. "binary_gemm.cu"; FileNotFoundError names the path when it is absent."""
    path = csrc_dir() / "cuda" / name
    if not path.is_file():
        raise FileNotFoundError(f"CUDA source {path} is missing from this accelkit installation")
    return path
