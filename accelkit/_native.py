"""Loader for the C++ extension `accelkit._C`, built from csrc/ at install time."""

import functools
from types import ModuleType


@functools.cache
def native() -> ModuleType:
    """The compiled extension; raises ImportError with a hint when the build is missing."""
    try:
        from accelkit import _C
    except ImportError as exc:  # pragma: no cover - only without a build
        raise ImportError(
            "accelkit's C++ extension (accelkit._C) is not built; run `make setup` or `pip install -e .`"
        ) from exc
    return _C


@functools.cache
def available() -> bool:
    """Whether the extension loads; asked once per process, so hot paths may call it freely."""
    try:
        native()
    except ImportError:
        return False
    return True
